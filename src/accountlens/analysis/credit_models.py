"""Credit models of outcome attribution: how much of the value of account outcomes (renewals,
expansions…) each channel of the touches before them earns, with bootstrap intervals over accounts.

Heuristic models give each touch a share of its journey's value (shares of a journey add up to 1;
only converted journeys count). In seq order, for a journey of n touches:

- first_touch / last_touch: all to the first / last touch. linear: 1/n each.
- time_decay: weight 2^(−days_before / half_life_days), normalised within the journey.
- u_shaped, w_shaped, full_path: positional. Each position (first touch; milestone; milestone 2;
  last touch) has a share from the rule set, and the touches that hold no position share the rest
  equally. The milestone of W-shaped (and milestone 1 of full path) is the first touch in
  `milestone_stages[0]` or a stage closer to the outcome; milestone 2 of full path is the same
  with `milestone_stages[1]`. Tie rule: a touch holding several positions (a one-touch journey is
  first and last; a milestone that is the first touch) gets all their shares; a share with no
  touch to go to (a missing milestone, no touch between the positions) is redistributed over the
  others in proportion to their shares — that is, each touch gets its shares ÷ the sum of the
  shares that found a touch. So U-shaped gives 100 % to a lone touch and splits a two-touch
  journey first:last (50/50 by default); W-shaped with the milestone on the first of 3 touches
  gives .6/.1/.3 (every share found a touch), and on the middle of 3 touches .3/.3/.3 → ⅓ each
  (the .1 of "the others" has no touch). If every share that found a touch is 0, the journey
  falls back to linear.
- role_weighted: weight role_weights[role] × stage_role_weights[stage][role] (unlisted: 1),
  normalised within the journey; a journey whose weights are all 0 falls back to linear.

Channel credit = Σ share × journey value. Converted journeys without touches credit
"(no touches)", so credit always adds up to the converted journeys' value. The data-driven
models (markov, shapley) are in data_driven.py.

Bootstrap: accounts are resampled with replacement (an account's journeys move together), and
intervals are percentiles of the resampled credit. Every model is computed from per-account
aggregates once, and all resamples at once from a (resamples × accounts) count matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
from scipy import sparse

from accountlens.analysis.attribution_rules import AttributionRules
from accountlens.analysis.data_driven import (
    CreditModel,
    Encoded,
    group_channels,
    markov_credit,
    shapley_credit,
)

HEURISTIC_MODELS = ("first_touch", "last_touch", "linear", "time_decay", "u_shaped", "w_shaped",
                    "full_path", "role_weighted")
DATA_DRIVEN_MODELS = ("markov", "shapley")
MODELS = HEURISTIC_MODELS + DATA_DRIVEN_MODELS
NO_TOUCH = "(no touches)"  # the channel credited with converted journeys that have no touches
CREDIT_COLUMNS = ["channel", "credit", "ci_low", "ci_high", "share", "touches", "journeys"]


@dataclass(frozen=True)
class _Touches:
    """The columns the heuristic models read, as arrays."""

    frame: pd.DataFrame
    journey: np.ndarray
    seq: np.ndarray
    size: np.ndarray  # per touch: its journey's number of touches
    n_journeys: int


def _normalised(t: _Touches, weight: np.ndarray) -> np.ndarray:
    """Weights ÷ their journey's sum; linear where a journey's weights add up to 0."""
    total = np.bincount(t.journey, weights=weight, minlength=t.n_journeys)[t.journey]
    return np.where(total > 0, weight / np.where(total > 0, total, 1), 1 / t.size)


def mapped(column: pd.Series, mapping: dict[str, float], default: float) -> np.ndarray:
    """`mapping[value]` of each row (`default` when absent), through the categories when the
    column is categorical (millions of touches, a handful of roles)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        per_category = np.array([mapping.get(str(c), default) for c in column.cat.categories]
                                + [default], dtype=float)
        return per_category[column.cat.codes.to_numpy()]  # code -1 (missing) takes the default
    return column.map(mapping).fillna(default).to_numpy(float)


def _milestone(t: _Touches, rules: AttributionRules, stage: str) -> np.ndarray:
    """Mask of each journey's first touch in `stage` or a stage closer to the outcome."""
    rank = {s.name: float(i) for i, s in enumerate(rules.stages)}
    stage_rank = mapped(t.frame["stage"], rank, len(rank))
    candidate = np.where(stage_rank <= rank[stage], t.seq, np.iinfo(np.int64).max)
    first = pd.Series(candidate).groupby(t.journey).transform("min").to_numpy()
    return (stage_rank <= rank[stage]) & (t.seq == first)


def _positional(t: _Touches, positions: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Each touch's shares of the positions it holds, the rest split over the touches holding
    none; then normalised (the tie rule of the module docstring)."""
    weight = np.zeros(len(t.journey))
    holds = np.zeros(len(t.journey), dtype=bool)
    for mask, share in positions:
        weight += mask * share
        holds |= mask
    rest = max(0.0, 1.0 - sum(share for _, share in positions))
    others = np.bincount(t.journey[~holds], minlength=t.n_journeys)[t.journey]
    weight += np.where(holds, 0.0, rest / np.maximum(others, 1))
    return _normalised(t, weight)


def _first(t: _Touches) -> np.ndarray:
    return t.seq == 0


def _last(t: _Touches) -> np.ndarray:
    return t.seq == t.size - 1


def _first_touch(t: _Touches, rules: AttributionRules) -> np.ndarray:
    return _first(t).astype(float)


def _last_touch(t: _Touches, rules: AttributionRules) -> np.ndarray:
    return _last(t).astype(float)


def _linear(t: _Touches, rules: AttributionRules) -> np.ndarray:
    return 1 / t.size


def _time_decay(t: _Touches, rules: AttributionRules) -> np.ndarray:
    days = t.frame["days_before"].to_numpy(float)
    # Relative to the journey's closest touch, so far-away journeys do not underflow to 0.
    closest = pd.Series(days).groupby(t.journey).transform("min").to_numpy()
    return _normalised(t, np.exp2(-(days - closest) / rules.half_life_days))


def _u_shaped(t: _Touches, rules: AttributionRules) -> np.ndarray:
    first, last = rules.u_shaped
    return _positional(t, [(_first(t), first), (_last(t), last)])


def _w_shaped(t: _Touches, rules: AttributionRules) -> np.ndarray:
    first, milestone, last = rules.w_shaped
    return _positional(t, [(_first(t), first),
                           (_milestone(t, rules, rules.milestone_stages[0]), milestone),
                           (_last(t), last)])


def _full_path(t: _Touches, rules: AttributionRules) -> np.ndarray:
    first, milestone, milestone2, last = rules.full_path
    return _positional(t, [(_first(t), first),
                           (_milestone(t, rules, rules.milestone_stages[0]), milestone),
                           (_milestone(t, rules, rules.milestone_stages[1]), milestone2),
                           (_last(t), last)])


def _role_weighted(t: _Touches, rules: AttributionRules) -> np.ndarray:
    roles = t.frame["role"]
    role_weight = mapped(roles, rules.role_weights, 1.0)
    stage_weight = np.ones(len(roles))
    stages = t.frame["stage"].to_numpy()
    for stage, weights in rules.stage_role_weights.items():
        here = stages == stage
        stage_weight[here] = mapped(roles, weights, 1.0)[here]
    return _normalised(t, role_weight * stage_weight)


_SHARES: dict[str, Callable[[_Touches, AttributionRules], np.ndarray]] = {
    "first_touch": _first_touch, "last_touch": _last_touch, "linear": _linear,
    "time_decay": _time_decay, "u_shaped": _u_shaped, "w_shaped": _w_shaped,
    "full_path": _full_path, "role_weighted": _role_weighted,
}
assert tuple(_SHARES) == HEURISTIC_MODELS


def touch_shares(touches: pd.DataFrame, model: str, rules: AttributionRules) -> np.ndarray:
    """Each touch's share of its journey's value (a heuristic model); shares of each journey sum
    to 1. `touches` holds journey, seq (0..n-1 within the journey), days_before, role, stage."""
    if model not in _SHARES:
        raise ValueError(f"{model!r} is not a heuristic model: use one of {', '.join(HEURISTIC_MODELS)}")
    journey = touches["journey"].to_numpy(np.int64)
    if not len(journey):
        return np.zeros(0)
    n_journeys = int(journey.max()) + 1
    size = np.bincount(journey, minlength=n_journeys)[journey]
    t = _Touches(touches.reset_index(drop=True), journey, touches["seq"].to_numpy(np.int64), size,
                 n_journeys)
    return np.asarray(_SHARES[model](t, rules), dtype=float)


@dataclass
class Credit:
    """Credit per channel: one row per channel (channel, credit, ci_low, ci_high, share of the
    total, touches and journeys of converted journeys in it), by credit descending."""

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    total: float = 0.0  # the converted journeys' value; frame.credit adds up to it


def _heuristic(model: str, enc: Encoded, touches: pd.DataFrame, rules: AttributionRules,
               seed: int) -> CreditModel:
    shares = touch_shares(touches, model, rules)
    amount = shares * (enc.value * enc.converted)[enc.journey]
    # Sparse: by user, most of the many channels belong to a single account.
    per_account = sparse.csc_matrix((amount, (enc.account[enc.journey], enc.channel)),
                                    shape=(enc.n_accounts, len(enc.channels)))

    def resample(weights: np.ndarray, columns: slice) -> np.ndarray:
        return np.asarray(per_account[:, columns].T @ weights.T).T

    return CreditModel(np.asarray(per_account.sum(axis=0)).ravel(), resample, [])


def _markov(enc: Encoded, touches: pd.DataFrame, rules: AttributionRules, seed: int) -> CreditModel:
    return markov_credit(enc, rules.markov_order)


def _shapley(enc: Encoded, touches: pd.DataFrame, rules: AttributionRules, seed: int) -> CreditModel:
    return shapley_credit(enc, seed)


# model → (journeys, touches, rules, seed) → its credit per channel
_CREDIT: dict[str, Callable[[Encoded, pd.DataFrame, AttributionRules, int], CreditModel]] = {
    **{model: partial(_heuristic, model) for model in HEURISTIC_MODELS},
    "markov": _markov, "shapley": _shapley,
}
assert tuple(_CREDIT) == MODELS

# Resamples are drawn in chunks of at most this many account weights (8 bytes each) in memory.
WEIGHTS_PER_CHUNK = 5_000_000


def encode_touches(touches: pd.DataFrame, journeys: pd.DataFrame) -> tuple[Encoded, pd.DataFrame]:
    """Integer arrays of the journeys and touches (touches put in (journey, seq) order)."""
    journey, seq = touches["journey"].to_numpy(), touches["seq"].to_numpy()
    if not ((journey[1:] > journey[:-1])
            | ((journey[1:] == journey[:-1]) & (seq[1:] > seq[:-1]))).all():
        touches = touches.sort_values(["journey", "seq"], kind="stable")
    touches = touches.reset_index(drop=True)
    ids = journeys["journey"].to_numpy(np.int64)
    n_journeys = int(max(ids.max(initial=-1), touches["journey"].max() if len(touches) else -1)) + 1
    account_index, _ = pd.factorize(journeys["account_id"].astype(str))
    account = np.zeros(n_journeys, dtype=np.int64)
    account[ids] = account_index
    value = np.zeros(n_journeys)
    value[ids] = journeys["value"].to_numpy(float)
    converted = np.zeros(n_journeys, dtype=bool)
    converted[ids] = journeys["converted"].to_numpy(bool)
    channel_index, channels = _sorted_codes(touches["channel"])
    enc = Encoded(account=account, value=value, converted=converted,
                  n_accounts=int(account_index.max(initial=-1)) + 1,
                  journey=touches["journey"].to_numpy(np.int64),
                  channel=channel_index, channels=channels)
    return enc, touches


def _sorted_codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(code per row, the distinct values as text in sorted order): codes follow the sorted
    labels whatever the column's dtype (plain or categorical)."""
    codes, uniques = pd.factorize(column)
    labels = np.array([str(u) for u in uniques], dtype=object)
    order = np.argsort(labels, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], [str(label) for label in labels[order]]


def resample_weights(rng: np.random.Generator, n_accounts: int, resamples: int) -> np.ndarray:
    """Resamples × accounts: how often each account is drawn in each bootstrap resample (n
    draws with replacement; a multinomial, counted from uniform draws, which is much faster
    than numpy's multinomial sampler for thousands of accounts)."""
    draws = rng.integers(0, n_accounts, size=(resamples, n_accounts))
    draws += np.arange(resamples)[:, None] * n_accounts
    return np.bincount(draws.ravel(), minlength=resamples * n_accounts).reshape(
        resamples, n_accounts).astype(float)


def _intervals(model: CreditModel, no_touch: np.ndarray, resamples: int, confidence: float,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of the credit (channels + no touches) over resamples of the accounts
    drawn with replacement. Computed by blocks of channels, each drawing the same seeded
    resamples, so that memory stays bounded with many channels (by user)."""
    n_accounts, n_channels = len(no_touch), len(model.point)
    tail = (1 - confidence) / 2
    block = max(1, WEIGHTS_PER_CHUNK // resamples)
    low, high = np.empty(n_channels + 1), np.empty(n_channels + 1)
    for first in range(0, n_channels + 1, block):
        last = min(first + block, n_channels + 1)
        channels = slice(min(first, n_channels), min(last, n_channels))
        rng = np.random.default_rng(seed)
        rows = max(1, WEIGHTS_PER_CHUNK // max(n_accounts, last - first))
        parts = []
        for begin in range(0, resamples, rows):
            weights = resample_weights(rng, n_accounts, min(rows, resamples - begin))
            credit = model.resample(weights, channels)
            if last > n_channels:  # the block ends with "(no touches)"
                credit = np.column_stack([credit, weights @ no_touch])
            parts.append(credit)
        low[first:last], high[first:last] = np.quantile(np.vstack(parts), [tail, 1 - tail], axis=0)
    return low, high


def attribute(touches: pd.DataFrame, journeys: pd.DataFrame, model: str, rules: AttributionRules,
              resamples: int = 0, confidence: float = 0.95, seed: int = 0) -> Credit:
    """Credit per channel of the converted journeys' value under `model`, with percentile
    intervals from `resamples` bootstrap resamples of the accounts (NaN when 0)."""
    if model not in MODELS:
        raise ValueError(f"unknown credit model {model!r}: use one of {', '.join(MODELS)}")
    if resamples < 0 or not 0 < confidence < 1:
        raise ValueError("resamples must be ≥ 0 and confidence between 0 and 1 (e.g. 0.95)")
    enc, touches = encode_touches(touches, journeys)
    notes: list[str] = []
    if model in DATA_DRIVEN_MODELS:
        enc, notes = group_channels(enc, rules.max_channels)
    if enc.channels:
        credit_model = _CREDIT[model](enc, touches, rules, seed)
    else:  # no touches at all: everything is "(no touches)"
        credit_model = CreditModel(np.zeros(0), lambda w, columns: np.zeros((len(w), 0)), [])
    notes += credit_model.notes
    untouched = np.bincount(enc.account, weights=enc.value * enc.converted * ~enc.touched(),
                            minlength=enc.n_accounts)
    point = np.r_[credit_model.point, untouched.sum()]
    if resamples and enc.n_accounts:
        low, high = _intervals(credit_model, untouched, resamples, confidence, seed)
        notes.append(f"bootstrap: {resamples:,} resamples of {enc.n_accounts:,} accounts, "
                     f"{confidence:.0%} percentile intervals")
    else:
        low = high = np.full(len(point), np.nan)
    return Credit(_frame(enc, point, low, high), notes, float(enc.value[enc.converted].sum()))


def _frame(enc: Encoded, credit: np.ndarray, low: np.ndarray, high: np.ndarray) -> pd.DataFrame:
    n_channels = len(enc.channels)
    in_converted = enc.converted[enc.journey]
    touches = np.bincount(enc.channel[in_converted], minlength=n_channels)
    pairs = np.unique(enc.journey[in_converted] * max(n_channels, 1) + enc.channel[in_converted])
    journeys = np.bincount(pairs % max(n_channels, 1), minlength=n_channels)
    untouched = int((enc.converted & ~enc.touched()).sum())
    frame = pd.DataFrame({
        "channel": [*enc.channels, NO_TOUCH], "credit": credit, "ci_low": low, "ci_high": high,
        "touches": np.r_[touches, 0].astype(np.int64),
        "journeys": np.r_[journeys, untouched].astype(np.int64)})
    if not untouched:
        frame = frame.iloc[:-1]
    total = float(enc.value[enc.converted].sum())
    frame["share"] = frame["credit"] / total if total > 0 else 0.0
    frame = frame.sort_values(["credit", "channel"], ascending=[False, True], ignore_index=True)
    return frame[CREDIT_COLUMNS]
