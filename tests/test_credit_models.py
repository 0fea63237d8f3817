"""Credit models of outcome attribution (analysis/credit_models.py, data_driven.py) on small
journeys with hand-computed credit, plus properties on random journeys."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accountlens.analysis import credit_models
from accountlens.analysis.attribution_rules import AttributionRules
from accountlens.analysis.credit_models import (
    HEURISTIC_MODELS,
    MODELS,
    NO_TOUCH,
    attribute,
    encode_touches,
    touch_shares,
)
from accountlens.analysis.data_driven import (
    OTHER,
    conversion_probabilities,
    markov_chain,
)

RULES = AttributionRules()  # stages decision ≤ 30 d, evaluation ≤ 90 d, adoption; half-life 30 d


def frames(journeys: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(touches, journeys) from readable journeys: account, value, converted and touches as
    (channel, days_before, stage, role) tuples in seq order. Channel defaults to the role."""
    journey_rows, touch_rows = [], []
    for j, journey in enumerate(journeys):
        journey_rows.append({"journey": j, "account_id": journey.get("account", f"acc{j}"),
                             "value": float(journey.get("value", 1.0)),
                             "converted": journey.get("converted", True)})
        for seq, (channel, days, stage, role) in enumerate(journey.get("touches", [])):
            touch_rows.append({"journey": j, "account_id": journey_rows[-1]["account_id"],
                               "seq": seq, "days_before": float(days), "role": role, "stage": stage,
                               "channel": channel})
    columns = ["journey", "account_id", "seq", "days_before", "role", "stage", "channel"]
    touches = pd.DataFrame(touch_rows, columns=columns).astype({"journey": "int64", "seq": "int64",
                                                                "days_before": float})
    return touches, pd.DataFrame(journey_rows).astype({"journey": "int64"})


def touch(channel: str, days: float = 0, stage: str = "decision", role: str | None = None):
    return (channel, days, stage, role or channel)


# Channel = role. J0 (account A, 100): admin 120 d adoption, user 60 d evaluation, user 20 d
# decision, admin 0 d decision. J1 (A, 50): user 30 d decision, viewer 0 d decision. J2 (B): a
# null journey (ignored by heuristics). J3 (C, 30): converted, no touches → (no touches).
STORY = [
    {"account": "A", "value": 100, "touches": [touch("admin", 120, "adoption"),
                                               touch("user", 60, "evaluation"),
                                               touch("user", 20, "decision"), touch("admin", 0)]},
    {"account": "A", "value": 50, "touches": [touch("user", 30), touch("viewer", 0)]},
    {"account": "B", "value": 0, "converted": False, "touches": [touch("admin", 10)]},
    {"account": "C", "value": 30},
]
DECAY_J0 = [2**-4, 2**-2, 2 ** (-20 / 30), 1]  # 2^(−days/30) of J0's touches
ROLE_RULES = AttributionRules(role_weights={"admin": 3, "viewer": 0},
                              stage_role_weights={"decision": {"user": 2}})
EXPECTED = {  # channel → credit, by hand
    "first_touch": {"admin": 100, "user": 50, "viewer": 0},
    "last_touch": {"admin": 100, "user": 0, "viewer": 50},
    "linear": {"admin": 50, "user": 50 + 25, "viewer": 25},
    "time_decay": {"admin": 100 * (DECAY_J0[0] + DECAY_J0[3]) / sum(DECAY_J0),
                   "user": 100 * (DECAY_J0[1] + DECAY_J0[2]) / sum(DECAY_J0) + 50 * 0.5 / 1.5,
                   "viewer": 50 * 1 / 1.5},
    # J0: first .4 + last .4 admin, the two middle users .1 each. J1 two touches: 50/50.
    "u_shaped": {"admin": 80, "user": 20 + 25, "viewer": 25},
    # J0: milestone = seq 1 (evaluation): admin .3+.3, user .3+.1. J1: the milestone is the first
    # touch (decision) → .6 and last .3, the .1 of "others" has no touch: 2/3 and 1/3.
    "w_shaped": {"admin": 60, "user": 40 + 50 * 2 / 3, "viewer": 50 / 3},
    # J0: first, milestone 1 (seq 1), milestone 2 (seq 2, first decision), last: .225 each, no
    # others → ¼ each. J1: seq 0 is first + both milestones (.675), last .225 → ¾ and ¼.
    "full_path": {"admin": 50, "user": 50 + 37.5, "viewer": 12.5},
}
ROLE_EXPECTED = {  # J0 weights admin 3, user 1, user 2 (decision), admin 3; J1 user 2, viewer 0
    "admin": 100 * 6 / 9, "user": 100 * 3 / 9 + 50, "viewer": 0}


def credit_of(result) -> dict[str, float]:
    return dict(zip(result.frame["channel"], result.frame["credit"], strict=True))


@pytest.mark.parametrize("model", list(EXPECTED))
def test_heuristic_credit_by_hand(model):
    touches, journeys = frames(STORY)
    result = attribute(touches, journeys, model, RULES)
    assert credit_of(result) == pytest.approx({**EXPECTED[model], NO_TOUCH: 30})
    assert result.total == 180
    assert result.frame["credit"].sum() == pytest.approx(180)
    assert result.frame["ci_low"].isna().all() and result.frame["ci_high"].isna().all()


def test_role_weighted_with_stage_weights_by_hand():
    touches, journeys = frames(STORY)
    assert credit_of(attribute(touches, journeys, "role_weighted", ROLE_RULES)) == pytest.approx(
        {**ROLE_EXPECTED, NO_TOUCH: 30})
    # All weights 0 in a journey (viewers only): linear.
    touches, _ = frames([{"touches": [touch("viewer"), touch("viewer"), touch("admin")]},
                         {"touches": [touch("viewer"), touch("viewer")]}])
    assert touch_shares(touches, "role_weighted", ROLE_RULES) == pytest.approx(
        [0, 0, 1, 0.5, 0.5])


def test_frame_columns_counts_and_order():
    touches, journeys = frames(STORY)
    frame = attribute(touches, journeys, "linear", RULES).frame
    assert list(frame.columns) == ["channel", "credit", "ci_low", "ci_high", "share", "touches",
                                   "journeys"]
    assert list(frame["channel"]) == ["user", "admin", NO_TOUCH, "viewer"]  # credit desc
    rows = frame.set_index("channel")
    # admin's touch in the null journey J2 is not counted.
    assert rows.loc["admin", ["touches", "journeys"]].tolist() == [2, 1]
    assert rows.loc["user", ["touches", "journeys"]].tolist() == [3, 2]
    assert rows.loc[NO_TOUCH, ["touches", "journeys"]].tolist() == [0, 1]
    assert rows.loc["user", "share"] == pytest.approx(75 / 180)


def shares(model: str, stages: list[str], rules: AttributionRules = RULES) -> list[float]:
    touches, _ = frames([{"touches": [touch(f"c{i}", stage=s) for i, s in enumerate(stages)]}])
    result = touch_shares(touches, model, rules)
    assert result.sum() == pytest.approx(1)
    return list(result)


def test_u_shaped_small_journeys():
    assert shares("u_shaped", ["decision"]) == pytest.approx([1])
    assert shares("u_shaped", ["decision"] * 2) == pytest.approx([0.5, 0.5])
    assert shares("u_shaped", ["decision"] * 4) == pytest.approx([0.4, 0.1, 0.1, 0.4])
    skewed = AttributionRules(u_shaped=(0.2, 0.6))
    assert shares("u_shaped", ["decision"] * 2, skewed) == pytest.approx([0.25, 0.75])
    assert shares("u_shaped", ["decision"] * 4, skewed) == pytest.approx([0.2, 0.1, 0.1, 0.6])


def test_w_shaped_tie_rules():
    adoption, evaluation, decision = "adoption", "evaluation", "decision"
    # Milestone in the middle: .3/.3/.3 and the .1 of the others has no touch → ⅓ each.
    assert shares("w_shaped", [adoption, evaluation, adoption]) == pytest.approx([1 / 3] * 3)
    # A decision touch is "evaluation or closer": the milestone is the first such touch.
    assert shares("w_shaped", [adoption, adoption, decision, evaluation, adoption]) == \
        pytest.approx([0.3, 0.05, 0.3, 0.05, 0.3])
    # Milestone = first touch: it holds both shares (.6), middle .1, last .3.
    assert shares("w_shaped", [evaluation, adoption, adoption]) == pytest.approx([0.6, 0.1, 0.3])
    # Milestone = last touch.
    assert shares("w_shaped", [adoption, adoption, decision]) == pytest.approx([0.3, 0.1, 0.6])
    # No milestone: first .3, middle .1, last .3 over .7.
    assert shares("w_shaped", [adoption] * 3) == pytest.approx([3 / 7, 1 / 7, 3 / 7])
    assert shares("w_shaped", [adoption] * 2) == pytest.approx([0.5, 0.5])
    assert shares("w_shaped", [adoption]) == pytest.approx([1])
    assert shares("w_shaped", [decision]) == pytest.approx([1])
    # Two touches, milestone on the first: .6 and .3 → ⅔, ⅓.
    assert shares("w_shaped", [decision, adoption]) == pytest.approx([2 / 3, 1 / 3])


def test_full_path_tie_rules():
    adoption, evaluation, decision = "adoption", "evaluation", "decision"
    # All four positions on distinct touches, one other touch: .225 ×4 and .1.
    assert shares("full_path", [adoption, evaluation, adoption, decision, adoption]) == \
        pytest.approx([0.225, 0.225, 0.1, 0.225, 0.225])
    # Both milestones on the same touch (the first decision touch, no evaluation before it).
    assert shares("full_path", [adoption, adoption, decision, adoption]) == \
        pytest.approx([0.225, 0.1, 0.45, 0.225])
    # No milestone: first and last .225 each, two others .1 → over .55.
    assert shares("full_path", [adoption] * 4) == pytest.approx(
        [0.225 / 0.55, 0.05 / 0.55, 0.05 / 0.55, 0.225 / 0.55])
    assert shares("full_path", [decision]) == pytest.approx([1])


def test_time_decay_far_journey_does_not_underflow():
    touches, _ = frames([{"touches": [touch("a", 3000), touch("b", 3030)]}])
    assert touch_shares(touches, "time_decay", RULES) == pytest.approx([2 / 3, 1 / 3])


def test_touch_order_is_seq_not_row_order():
    touches, journeys = frames(STORY)
    shuffled = touches.sample(frac=1, random_state=3)
    for model in MODELS:
        expected = attribute(touches, journeys, model, ROLE_RULES).frame
        pd.testing.assert_frame_equal(attribute(shuffled, journeys, model, ROLE_RULES).frame,
                                      expected)


# --- Markov -------------------------------------------------------------------------------------


def test_markov_removal_effects_by_hand():
    # Paths: "a a b" → conversion (40; the repeat collapses), "a" → null, "b" → conversion (40),
    # "b" → null. Transitions: start → a ½, start → b ½; a → b ½, a → null ½; b → conv ⅔, null ⅓.
    # P = ½·½·⅔ + ½·⅔ = ½. Without a: ½·⅔ = ⅓ → effect 1 − ⅓/½ = ⅓. Without b: 0 → effect 1.
    # Credit of the 80: a ⅓/(4/3) = ¼ → 20, b ¾ → 60.
    touches, journeys = frames([
        {"value": 40, "touches": [touch("a"), touch("a"), touch("b")]},
        {"value": 0, "converted": False, "touches": [touch("a")]},
        {"value": 40, "touches": [touch("b")]},
        {"value": 0, "converted": False, "touches": [touch("b")]},
    ])
    assert credit_of(attribute(touches, journeys, "markov", RULES)) == pytest.approx(
        {"a": 20, "b": 60})


def test_markov_order_two_remembers_where_a_path_came_from():
    # "a c" converts, "b c" does not. Order 1: c → conv ½ whatever came before; P = ½·½ + ½·½
    # = ½; without a: ¼ (effect ½), without b: ¼ (½), without c: 0 (1) → a ¼, b ¼, c ½.
    # Order 2: (a,c) → conv 1, (b,c) → null 1; P = ½; without a 0 (effect 1), without b ½ (0),
    # without c 0 (1) → a ½, b 0, c ½.
    touches, journeys = frames([
        {"value": 1, "touches": [touch("a"), touch("c")]},
        {"value": 0, "converted": False, "touches": [touch("b"), touch("c")]},
    ])
    first = attribute(touches, journeys, "markov", RULES)
    second = attribute(touches, journeys, "markov", AttributionRules(markov_order=2))
    assert credit_of(first) == pytest.approx({"a": 0.25, "b": 0.25, "c": 0.5})
    assert credit_of(second) == pytest.approx({"a": 0.5, "b": 0, "c": 0.5})


@pytest.mark.parametrize("order", [1, 2, 3])
def test_removal_by_first_entry_equals_solving_each_reduced_chain(order):
    touches, journeys = frames(random_story(13, 6, 400))
    enc, _ = encode_touches(touches, journeys)
    chain = markov_chain(enc, order)
    weights = np.random.default_rng(2).integers(0, 3, (4, enc.n_accounts)).astype(float)
    got = conversion_probabilities(chain, weights)
    n = chain.n_transient
    for row, probabilities in enumerate(chain.probabilities(weights)):
        q, r = probabilities[:, :n], probabilities[:, n]
        # Removing c: transitions into states holding c go to (null) — drop those columns.
        for column, kept in enumerate([np.ones(n, dtype=bool), *~chain.contains.T]):
            x = np.linalg.solve(np.eye(n) - q * kept[None, :], r)
            assert got[row, column] == pytest.approx(x[0], abs=1e-12)


def test_a_markov_chain_with_too_many_states_is_refused_with_what_to_change():
    # 40 channels, journeys of 8 touches: at order 4 nearly every touch is a state of its own
    rng = np.random.default_rng(3)
    names = [f"ch{i:02d}" for i in range(40)]
    story = [{"converted": bool(j % 2), "touches": [touch(names[c]) for c in rng.integers(0, 40, 8)]}
             for j in range(400)]
    touches, journeys = frames(story)
    assert credit_of(attribute(touches, journeys, "markov", AttributionRules(max_channels=40)))
    with pytest.raises(ValueError, match=r"order-4 Markov chain .* states over 40 channels.*"
                                         r"lower the rule set's markov_order or max_channels"):
        attribute(touches, journeys, "markov", AttributionRules(markov_order=4, max_channels=40))


def test_markov_without_converting_touches_falls_back_to_linear_and_says_so():
    # Only a null journey has touches: P = 0, no removal effect; the 5 go to (no touches).
    touches, journeys = frames([{"value": 5}, {"value": 0, "converted": False,
                                               "touches": [touch("a"), touch("b")]}])
    result = attribute(touches, journeys, "markov", RULES)
    assert credit_of(result) == {NO_TOUCH: 5, "a": 0, "b": 0}
    assert result.notes == ["no channel has a Markov removal effect: linear credit instead"]


def test_data_driven_group_rare_channels_as_other():
    touches, journeys = frames([
        {"touches": [touch("a"), touch("a"), touch("b")]},
        {"touches": [touch("b"), touch("c")]},
        {"touches": [touch("d"), touch("a")]},
    ])
    result = attribute(touches, journeys, "shapley", AttributionRules(max_channels=2))
    # a (3 touches) and b (2) kept; c and d → (other). Each journey has two distinct channels:
    # {a, b}, {b, (other)}, {(other), a} → ½ each.
    assert credit_of(result) == pytest.approx({"a": 1, "b": 1, OTHER: 1})
    assert "2 channels with the fewest touches grouped as (other)" in result.notes


# --- Shapley ------------------------------------------------------------------------------------


def test_shapley_exact_three_channels_by_hand():
    # Sets {a} 10, {a,b} 20, {a,b,c} 30, {b} null. v(a)=10, v(ab)=30, v(ac)=10, v(abc)=60, else
    # 0. Marginal contributions of a over the 6 orders abc acb bac bca cab cba: 10 10 30 60 10 60
    # → 30; b: 20 50 0 0 50 0 → 20; c: 30 0 30 0 0 0 → 10.
    touches, journeys = frames([
        {"value": 10, "touches": [touch("a")]},
        {"value": 20, "touches": [touch("b"), touch("a"), touch("b")]},
        {"value": 30, "touches": [touch("c"), touch("a"), touch("b")]},
        {"value": 0, "converted": False, "touches": [touch("b")]},
    ])
    result = attribute(touches, journeys, "shapley", RULES)
    assert credit_of(result) == pytest.approx({"a": 30, "b": 20, "c": 10})
    assert result.notes == ["exact Shapley values (3 channels)"]


def random_story(seed: int, n_channels: int, n_journeys: int = 300) -> list[dict]:
    rng = np.random.default_rng(seed)
    names = [f"ch{i:02d}" for i in range(n_channels)]
    return [{"account": f"acc{rng.integers(60)}", "value": float(rng.integers(1, 100)),
             "converted": bool(rng.random() < 0.7),
             "touches": [touch(names[c], float(rng.uniform(0, 200)),
                               str(rng.choice(["decision", "evaluation", "adoption"])),
                               str(rng.choice(["admin", "user"])))
                         for c in rng.integers(0, n_channels, rng.integers(0, 6))]}
            for _ in range(n_journeys)]


def equal_split(touches: pd.DataFrame, journeys: pd.DataFrame) -> dict[str, float]:
    """The exact Shapley value of v(S) = Σ value of journeys within S, computed independently:
    a sum of unanimity games, each journey's value split equally over its distinct channels."""
    converted = journeys[journeys["converted"]].set_index("journey")["value"]
    pairs = touches[touches["journey"].isin(converted.index)][["journey", "channel"]].drop_duplicates()
    per = pairs["journey"].map(converted) / pairs.groupby("journey")["channel"].transform("size")
    return per.groupby(pairs["channel"]).sum().to_dict()


def enumerated_shapley(touches: pd.DataFrame, journeys: pd.DataFrame) -> dict[str, float]:
    """The Shapley values of v(S) = Σ value of the converted journeys within S by the textbook
    formula over all 2ⁿ coalitions (v of every coalition from a subset-sum transform)."""
    converted = journeys[journeys["converted"]].set_index("journey")["value"]
    channels = sorted(touches["channel"].unique())
    n = len(channels)
    bit = {c: 1 << i for i, c in enumerate(channels)}
    masks = touches[touches["journey"].isin(converted.index)].groupby("journey")["channel"].agg(
        lambda cs: sum(bit[c] for c in set(cs)))
    v = np.bincount(masks.to_numpy(), weights=converted[masks.index].to_numpy(), minlength=1 << n)
    for b in range(n):  # v[S] = Σ over subsets T of S
        view = v.reshape(-1, 2, 1 << b)
        view[:, 1, :] += view[:, 0, :]
    coalitions = np.arange(1 << n)
    size = np.array([bin(c).count("1") for c in coalitions])
    weight = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)])
    values = {}
    for i, channel in enumerate(channels):
        without = coalitions[(coalitions >> i) & 1 == 0]
        values[channel] = float((weight[size[without]] * (v[without | (1 << i)] - v[without])).sum())
    return values


def test_exact_shapley_equals_the_enumeration_of_every_coalition():
    touches, journeys = frames(random_story(7, 14, 600))
    result = attribute(touches, journeys, "shapley", AttributionRules(max_channels=30))
    assert "exact Shapley values (14 channels)" in result.notes[0]
    ours = {c: v for c, v in credit_of(result).items() if c != NO_TOUCH}
    assert ours == pytest.approx(enumerated_shapley(touches, journeys))
    assert ours == pytest.approx(equal_split(touches, journeys))


# --- Properties and bootstrap -------------------------------------------------------------------

journey_strategy = st.fixed_dictionaries({
    "account": st.sampled_from(["A", "B", "C", "D"]),
    "value": st.floats(0, 1000),
    "converted": st.booleans(),
    "touches": st.lists(st.tuples(st.sampled_from("abcde"), st.floats(0, 400),
                                  st.sampled_from(["decision", "evaluation", "adoption"]),
                                  st.sampled_from(["admin", "user", "viewer"])), max_size=6),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(journey_strategy, min_size=1, max_size=12))
def test_credit_adds_up_to_the_converted_value_for_every_model(story):
    for journey in story:
        if not journey["converted"]:
            journey["value"] = 0.0
    touches, journeys = frames(story)
    total = sum(j["value"] for j in story if j["converted"])
    rules = AttributionRules(role_weights={"viewer": 0}, max_channels=3)
    for model in MODELS:
        result = attribute(touches, journeys, model, rules)
        assert result.total == pytest.approx(total)
        assert result.frame["credit"].sum() == pytest.approx(total, abs=1e-6), model
        assert (result.frame["credit"] >= -1e-9).all(), model
    for model in HEURISTIC_MODELS:
        per_journey = pd.Series(touch_shares(touches, model, rules)).groupby(
            touches["journey"].to_numpy()).sum()
        assert np.allclose(per_journey, 1), model


@pytest.mark.parametrize("model", MODELS)
def test_bootstrap_intervals_are_seeded_and_contain_the_estimate(model):
    touches, journeys = frames(random_story(11, 5))
    first = attribute(touches, journeys, model, ROLE_RULES, resamples=200, seed=4)
    again = attribute(touches, journeys, model, ROLE_RULES, resamples=200, seed=4)
    other = attribute(touches, journeys, model, ROLE_RULES, resamples=200, seed=5)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert not np.allclose(first.frame["ci_low"], other.frame["ci_low"])
    frame = first.frame
    assert (frame["ci_low"] <= frame["credit"] + 1e-9).all()
    assert (frame["credit"] <= frame["ci_high"] + 1e-9).all()
    assert (frame["ci_high"] > frame["ci_low"]).any()
    accounts = journeys["account_id"].nunique()
    assert first.notes[-1] == f"bootstrap: 200 resamples of {accounts} accounts, 95% percentile intervals"
    point = attribute(touches, journeys, model, ROLE_RULES)
    pd.testing.assert_series_equal(frame["credit"], point.frame["credit"])


@pytest.mark.parametrize("model", ["linear", "markov", "shapley"])
def test_bootstrap_by_blocks_of_channels_and_resamples_is_the_same(model, monkeypatch):
    touches, journeys = frames(random_story(17, 5))
    whole = attribute(touches, journeys, model, RULES, resamples=40, seed=1)
    monkeypatch.setattr(credit_models, "WEIGHTS_PER_CHUNK", 90)  # 2 columns, 1 resample a time
    pd.testing.assert_frame_equal(attribute(touches, journeys, model, RULES, resamples=40,
                                            seed=1).frame, whole.frame)


@pytest.mark.parametrize("model", MODELS)
def test_bootstrap_resamples_accounts_not_journeys(model):
    # One account carries every journey: every resample draws it once, so the intervals have no
    # width — resampling journeys would have given wide ones.
    story = [{**journey, "account": "only"} for journey in random_story(3, 4, 80)]
    touches, journeys = frames(story)
    frame = attribute(touches, journeys, model, RULES, resamples=50).frame
    assert np.allclose(frame["ci_low"], frame["credit"])
    assert np.allclose(frame["ci_high"], frame["credit"])


def test_unknown_model_and_empty_input():
    touches, journeys = frames(STORY)
    with pytest.raises(ValueError, match="unknown credit model 'nope'"):
        attribute(touches, journeys, "nope", RULES)
    empty_touches, journeys = frames([{"value": 5}, {"value": 0, "converted": False}])
    for model in MODELS:
        result = attribute(empty_touches, journeys, model, RULES, resamples=10)
        assert credit_of(result) == {NO_TOUCH: 5}
        assert not math.isnan(result.frame["ci_low"].iloc[0])
