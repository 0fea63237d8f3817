"""Churn / renewal / expansion prediction (analysis/predict.py, docs/prediction.md) on a generated
workspace with a planted churn driver and a planted null (tests/outcome_world.py): the model
finds the driver and beats the health score, gives the null no weight, explains each account
exactly, reads nothing after the day it predicts from, and says so when outcomes are too few."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from accountlens.analysis import evaluation, features, learning, predict
from accountlens.analysis.labels import known_outcomes, training_set
from tests import outcome_world

D = dt.date(2024, 11, 15)  # the world runs to 2024-12-31: there is a future to hide
PREDICTION = {"max_training_cutoffs": 6, "backtest_cutoffs": 2}  # 10 feature days, not 19
# Features that carry the planted driver (the users' activity) in some form.
ACTIVITY = ("mau", "seat_utilization", "active_user_trend", "events_30d", "event_trend",
            "stickiness", "breadth", "depth", "adoption_velocity", "champion_share",
            "champion_present", "days_since_active", "activated", "time_to_value_days")
NULL = "trait_shoe_size"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    ws = outcome_world.build(tmp_path_factory.mktemp("outcomes"), prediction=PREDICTION)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def churn(world) -> pd.DataFrame:
    return world.analysis("predict", outcome="churn", as_of=D, limit=100_000)


def test_the_model_beats_the_health_score_and_foretells_churn(world, churn) -> None:
    backtest = evaluation.backtest(world.store, world.config, "churn", D)
    used, why = backtest.choice()
    assert used in learning.CANDIDATES and set(churn["source"]) == {used}
    model, health = backtest.pooled(used), backtest.pooled("health")
    assert model["auc"] > 0.75 and model["auc"] > health["auc"] + 0.15
    assert f"pooled AUC {model['auc']:.3f} vs the health score's {health['auc']:.3f}" in why
    assert churn.attrs["notes"][0] == why
    # the customers on D: sorted by probability, deciles 1..10
    customers = features.account_features(world.store, world.config, D)
    assert sorted(churn["account_id"]) == sorted(customers.loc[customers["customer"], "account_id"])
    assert churn["probability"].is_monotonic_decreasing and churn["probability"].between(0, 1).all()
    assert set(churn["decile"]) == set(range(1, 11)) and churn["decile"].is_monotonic_increasing
    # out of time: the accounts the generator set to decline into a renewal within the horizon
    # after D (their fate lies after D, never in the training) are the ones found at risk
    truth = outcome_world.generate()
    declining = {account for account, renewal in truth.decliners
                 if D < renewal <= D + dt.timedelta(days=90)}
    assert len(declining) >= 15
    assert roc_auc_score(churn["account_id"].isin(declining), churn["probability"]) > 0.8


def test_the_planted_null_gets_no_weight(world) -> None:
    training = training_set(world.store, world.config, "churn", D, known_outcomes(world.store, D))
    for kind in learning.CANDIDATES:
        model = learning.fit(kind, training, seed=0)
        parts, _ = model.contributions(training.frame)
        size = pd.Series(np.abs(parts).mean(axis=0), index=model.columns)
        activity = size[[c for c in ACTIVITY if c in size.index]].sum()
        assert size[NULL] < 0.2 * activity, (kind, size.sort_values().tail(8).to_dict())
    weights = pd.Series(learning.fit("logistic", training, seed=0).weights()).abs()
    assert weights[NULL] < 0.5 * weights[[c for c in ACTIVITY if c in weights.index]].max()


def test_drivers_are_exact_shares_of_the_log_odds(world) -> None:
    training = training_set(world.store, world.config, "churn", D, known_outcomes(world.store, D))
    rows = features.account_features(world.store, world.config, D)
    for kind in learning.CANDIDATES:
        model = learning.fit(kind, training, seed=0)
        parts, base = model.contributions(rows)
        x = learning.matrix(rows, model.columns)
        raw = (model.estimator.decision_function(x) if kind == "logistic"
               else model.estimator.predict(x, raw_score=True))
        np.testing.assert_allclose(parts.sum(axis=1) + base, raw, atol=1e-9)
    # as shown: every feature's contribution listed (sorted by size) adds up with base to a
    # log-odds whose order is the probability's (the calibration is monotone)
    shown = world.analysis("predict", outcome="churn", model="logistic", drivers=50, as_of=D,
                           limit=100_000)
    totals = shown["base"] + shown["drivers"].map(lambda d: sum(x["contribution"] for x in d))
    assert spearmanr(totals, shown["probability"]).statistic > 0.999
    first = shown["drivers"].iloc[0]
    sizes = [abs(d["contribution"]) for d in first]
    assert sizes == sorted(sizes, reverse=True) and set(first[0]) == {"feature", "value", "contribution"}
    top = world.analysis("predict", outcome="churn", model="logistic", as_of=D, limit=100_000)
    assert top["drivers"].map(len).eq(5).all()
    assert [d["feature"] for d in top["drivers"].iloc[0]] == [d["feature"] for d in first[:5]]


def test_survival_columns(churn) -> None:
    assert churn["survival_churn_probability"].between(0, 1).all()
    assert spearmanr(churn["survival_churn_probability"], churn["probability"]).statistic > 0.3
    median = churn["median_days_to_churn"].dropna()
    assert len(median) and (median > 0).all()
    assert any("Cox" in note for note in churn.attrs["notes"])


def test_health_model_filters_and_other_outcomes(world, churn) -> None:
    health = world.analysis("predict", outcome="churn", model="health", as_of=D, limit=100_000)
    assert set(health["source"]) == {"health"}
    scored = health.dropna(subset=["health_score"])
    # churn probability falls (or rises) with the score, strictly: one logistic curve
    assert abs(spearmanr(scored["health_score"], scored["probability"]).statistic) > 0.999
    assert {d["feature"] for ds in health["drivers"] for d in ds} <= {"shoe_size", "members"}
    assert "the health score as asked; backtest" in health.attrs["notes"][0]
    emea = world.analysis("predict", outcome="churn", region="emea", as_of=D, limit=100_000)
    assert len(emea) and set(emea["region"]) == {"emea"}
    assert emea.set_index("account_id")["probability"].equals(
        churn.set_index("account_id").loc[emea["account_id"], "probability"])
    for outcome in ("renewal", "expansion"):
        rows = world.analysis("predict", outcome=outcome, as_of=D, limit=100_000)
        assert len(rows) == len(churn) and set(rows["outcome"]) == {outcome}
        assert "survival_churn_probability" not in rows.columns
    assert any("given a renewal decision" in n for n in
               world.analysis("predict", outcome="renewal", as_of=D).attrs["notes"])


def test_nothing_after_the_day_is_read(world, churn, tmp_path_factory) -> None:
    """SPEC §8: a workspace whose future (after D) is rewritten — outcomes flipped, later events,
    contracts and memberships dropped, later end dates moved — predicts exactly the same."""
    rewritten = outcome_world.build(tmp_path_factory.mktemp("truncated"), truncate=D,
                                    prediction=PREDICTION)
    try:
        later = rewritten.store.df("SELECT count(*) AS n FROM outcomes WHERE date > $d", {"d": D})
        assert later["n"][0] > 10  # the flipped future is there to be misread
        asks = [("churn", "auto"), ("churn", "logistic"), ("renewal", "auto"),
                ("expansion", "auto")]
        for outcome, model in asks:
            before = (churn if (outcome, model) == ("churn", "auto") else world.analysis(
                "predict", outcome=outcome, model=model, as_of=D, limit=100_000))
            after = rewritten.analysis("predict", outcome=outcome, model=model, as_of=D,
                                       limit=100_000)
            assert len(before) > 100
            pd.testing.assert_frame_equal(before.drop(columns="drivers"),
                                          after.drop(columns="drivers"), check_exact=False,
                                          rtol=1e-9, atol=1e-12)
            assert _drivers_close(before["drivers"], after["drivers"])
            assert before.attrs["notes"] == after.attrs["notes"]
    finally:
        rewritten.close()


def _drivers_close(left: pd.Series, right: pd.Series) -> bool:
    for a, b in zip(left, right):
        if [d["feature"] for d in a] != [d["feature"] for d in b]:
            return False
        for x, y in zip(a, b):
            if x["value"] != y["value"] or not np.isclose(x["contribution"], y["contribution"],
                                                          rtol=1e-9, atol=1e-12):
                return False
    return True


def test_too_few_outcomes_predicts_nothing_and_says_why(world, tmp_path_factory) -> None:
    small = outcome_world.build(tmp_path_factory.mktemp("small"), accounts=12)
    try:
        for outcome in ("churn", "renewal"):
            rows = small.analysis("predict", outcome=outcome)
            assert len(rows) == 0
            note = rows.attrs["notes"][0]
            assert note.startswith(f"too few outcomes to learn {outcome}")
            assert re.search(r"at most \d+ account\(s\) with a positive", note)
            assert "prediction.min_class" in note
        assert predict.probabilities(small.store, small.config, "churn", D).empty
    finally:
        small.close()
    # enough of each class, too few labelled rows in all: decided on the training set's counts
    strict = world.config.model_copy(update={"prediction": world.config.prediction.model_copy(
        update={"min_outcomes": 1_000_000})})
    frame = predict.probabilities(world.store, strict, "churn", D)
    assert frame.empty
    found = re.search(r"(\d+) labelled rows \((\d+) positive, (\d+) negative; (\d+) different "
                      r"accounts positive, (\d+) negative\) at 6 cut-off", frame.attrs["notes"][0])
    assert found and int(found[1]) == int(found[2]) + int(found[3]) > 1000
    assert 10 <= int(found[4]) < int(found[2]) and int(found[5]) > 200


def test_no_backtest_means_no_auto_model() -> None:
    empty = evaluation.Backtest("churn", D, pd.DataFrame(columns=["cutoff", "account_id", "label"]),
                                notes=["test cut-off 2024-08-17 not measured: too few outcomes"])
    used, why = empty.choice()
    assert used is None and "nothing to test on" in why and "2024-08-17" in why


def test_caches_are_exposed_and_bounded() -> None:
    assert predict.CACHES and all(hasattr(c, "clear") and c.size <= 64 for c in predict.CACHES)


def test_renewals_price_the_renewal_probabilities(world) -> None:
    """`renewals` (analysis/renewals.py) takes the renewal model's probability as of the day and
    prices it: expected renewal ARR + ARR at risk = the ARR due, per account and per segment."""
    rows = world.analysis("renewals", as_of=D, days=90, limit=100_000)
    assert len(rows) > 10
    renewal = world.analysis("predict", outcome="renewal", as_of=D, limit=100_000)
    expected = renewal.set_index("account_id")["probability"]
    got = rows.set_index("account_id")["renewal_probability"]
    assert np.allclose(got, expected.loc[got.index])
    assert set(rows["probability_source"]) == {f"renewal: {s}" for s in set(renewal["source"])}
    assert np.allclose(rows["expected_renewal_arr"] + rows["arr_at_risk"], rows["renewal_arr"])
    assert np.allclose(rows["expected_renewal_arr"],
                       rows["renewal_probability"] * rows["renewal_arr"])
    assert (rows["days_to_renewal"].between(1, 90)).all()
    segments = world.analysis("renewals", as_of=D, days=90, view="segments", by="region")
    total = segments.set_index("segment").loc["(all)"]
    assert total["renewals"] == len(rows)
    assert total["arr_at_risk"] == pytest.approx(rows["arr_at_risk"].sum())
    parts = segments[segments["segment"] != "(all)"]
    assert parts["renewal_arr"].sum() == pytest.approx(total["renewal_arr"])
