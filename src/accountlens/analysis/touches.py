"""The journeys of outcome attribution (docs/attribution.md): each outcome of the kind asked
about, with the touches that preceded it inside its account, and the "null" journeys — the same
accounts' decisions that went another way — that the data-driven models compare them with.

Point-in-time (SPEC §8): only outcomes dated on or before as_of are read, and a journey's
touches are events before the end of its outcome's day, so nothing after as_of is ever seen.

- A journey ends at the end of its outcome's day; its touches are the active events of the
  account in the `lookback_days` before that (human only unless the rules say otherwise),
  at the rule set's grain: every event, or a user's (and feature's) first event of a day.
- Touches are ordered by time, then message id: `seq` 0 is the first touch.
- Null journeys, per kind: a renewal's are the churns and contractions; an expansion's the
  renewals, contractions and churns; a contraction's the renewals and expansions; a churn's the
  renewals, expansions and contractions; a conversion's are the accounts active in the period
  that have not converted by as_of (their journey ends with as_of).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accountlens.analysis.activity import rollup_relation
from accountlens.analysis.attribution_rules import AttributionRules
from accountlens.analysis.registry import (
    AnalysisError,
    EngineUnavailable,
    day_end,
    level_label_sql,
)
from accountlens.model.entities import ACTIVE_EVENT_TYPES, UNIT_KINDS
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

# The outcomes that count as "went the other way" for each kind (the docstring's list).
NULL_KINDS: dict[str, tuple[str, ...]] = {
    "renewal": ("churn", "contraction"),
    "expansion": ("renewal", "contraction", "churn"),
    "contraction": ("renewal", "expansion"),
    "churn": ("renewal", "expansion", "contraction"),
    "conversion": (),
}
# What a touch's channel can be: its column in the touches query.
CHANNELS = ("role", "unit", *UNIT_KINDS, "user", "feature", "stage")
_US_PER_DAY = 86_400_000_000
# The engines that may read the `event` grain's touches: one row per raw event reaches pandas.
# The other grains are rows of the daily rollup (a user's first event of a feature a day), read
# from the rollup, so they run on every engine; Spark must not collect raw events to its driver.
RAW_TOUCH_ENGINES = ("duckdb",)
# A view name per call: requests served at once share the store's connection.
_CALLS = itertools.count()


@dataclass
class Journeys:
    journeys: pd.DataFrame  # journey, account_id, date, kind, value, converted
    touches: pd.DataFrame   # journey, account_id, seq, days_before, role, stage, channel, user_id
    notes: list[str]


def _channel_sql(by: str) -> tuple[str, str]:
    """(join, label expression) of the channel `by` for the rows `e`: the entity at that level
    (analysis/registry.py), an automation's touches under `(automation)` by user, the event
    name by feature; the stage is set afterwards."""
    if by in ("feature", "stage", "user"):
        return "", {"feature": "e.name", "stage": "''",
                    "user": "coalesce(e.user_id, '(automation)')"}[by]
    return level_label_sql(by)


def _journeys_sql(kind: str) -> str:
    if kind != "conversion":
        return """
            SELECT account_id, date, kind, arr_delta, kind = $outcome AS converted
            FROM outcomes
            WHERE date > $since AND date <= $as_of AND list_contains($kinds, kind)
              AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)"""
    # accounts active in the period that have not converted by as_of end with as_of
    return """
            SELECT account_id, date, kind, arr_delta, true AS converted
            FROM outcomes
            WHERE date > $since AND date <= $as_of AND kind = 'conversion'
              AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
            UNION ALL
            SELECT account_id, $as_of AS date, NULL AS kind, NULL AS arr_delta, false AS converted
            FROM (SELECT DISTINCT account_id FROM account_days
                  WHERE day > $since AND day <= $as_of AND account_id IS NOT NULL
                    AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)) active
            WHERE account_id NOT IN (SELECT account_id FROM outcomes
                                     WHERE kind = 'conversion' AND date <= $as_of)"""


def _touches_sql(rules: AttributionRules, by: str, view: str, rollup: str) -> str:
    """The touches of the journeys in `view`, ordered by journey and time.

    The `user_feature_day` grain is the daily activity rollup's row (a user's first event of an
    event name a day, per role and unit held): read from the rollup (`rollup`), never from the
    raw events — at 10M events about ten times cheaper than grouping them. `user_day` groups
    those rows per user and day. Journeys end at midnight, so a day is wholly in a journey or
    out of it. `event` reads the raw events. Ties in time are ordered by user, event name and
    role (rollup) or message id (events)."""
    join, label = _channel_sql(by)
    filters = f"""{"AND e.actor_kind = 'human' AND e.user_id IS NOT NULL" if rules.humans_only else ""}
              AND (array_length($include) = 0 OR list_contains($include, e.name))
              AND NOT list_contains($exclude, e.name)"""
    if rules.touch == "event":
        return f"""
            SELECT j.journey, (j.end_us - epoch_us(e.timestamp)) / {_US_PER_DAY}.0 AS days_before,
                   coalesce(e.role, '(no role)') AS role, {label} AS channel
            FROM {view} j JOIN events e ON e.account_id = j.account_id
             AND e.timestamp >= j.start_ts AND e.timestamp < j.end_ts
            {join}
            WHERE e.type IN {ACTIVE_EVENT_TYPES} {filters}
            ORDER BY j.journey, e.timestamp, e.message_id"""
    rows = f"""
            SELECT j.journey, j.end_us, e.first_at, e.day, coalesce(e.user_id, '(automation)') AS actor,
                   e.name, coalesce(e.role, '(no role)') AS role, {label} AS channel
            FROM {view} j JOIN {rollup} e ON e.account_id = j.account_id
             AND e.first_at >= j.start_ts AND e.first_at < j.end_ts
            {join}
            WHERE true {filters}"""
    if rules.touch == "user_day":
        rows = f"""
            SELECT journey, end_us, min(first_at) AS first_at, day, actor, min(name) AS name,
                   arg_min(role, first_at) AS role, arg_min(channel, first_at) AS channel
            FROM ({rows}) GROUP BY journey, end_us, actor, day"""
    return f"""
        SELECT journey, (end_us - epoch_us(first_at)) / {_US_PER_DAY}.0 AS days_before, role, channel
        FROM ({rows}) ORDER BY journey, first_at, actor, name, role
    """


def journeys(store: Store, settings: Any, rules: AttributionRules, outcome: str, by: str,
             as_of: dt.date, since: dt.date, value: str, account: str | None = None) -> Journeys:
    """The journeys ending in `outcome` (converted) and in its null kinds between `since`
    (exclusive) and `as_of` (inclusive), with their touches and the channel `by`."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if by not in CHANNELS:
        raise AnalysisError(f"cannot attribute by {by!r}; one of {', '.join(CHANNELS)}")
    if rules.touch == "event" and store.engine_name not in RAW_TOUCH_ENGINES:
        raise EngineUnavailable(
            f"the rule set's touch grain `event` reads every raw event of a journey into memory, "
            f"which {store.engine_name} must not collect to its driver: run it on "
            f"{' or '.join(RAW_TOUCH_ENGINES)}, or use a rule set with touch `user_feature_day` "
            "or `user_day` (read from the daily rollup)")
    kinds = [outcome, *NULL_KINDS[outcome]]
    params: dict[str, Any] = {"since": since, "as_of": as_of, "account": account}
    if outcome != "conversion":
        params |= {"outcome": outcome, "kinds": kinds}
    frame = store.df(_journeys_sql(outcome) + " ORDER BY account_id, date, kind NULLS LAST", params)
    frame.insert(0, "journey", np.arange(len(frame), dtype="int64"))
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    notes: list[str] = []
    if value == "arr":
        missing = frame["converted"] & frame["arr_delta"].isna()
        if missing.any():
            notes.append(f"{int(missing.sum())} {outcome} outcomes have no arr_delta: valued 0")
        frame["value"] = frame["arr_delta"].abs().fillna(0.0)
    else:
        frame["value"] = 1.0
    frame.loc[~frame["converted"], "value"] = 0.0
    ends = [day_end(d) for d in frame["date"]]
    lookback = dt.timedelta(days=rules.lookback_days)
    table = pa.table({
        "journey": pa.array(frame["journey"], pa.int64()),
        "account_id": pa.array(frame["account_id"], pa.string()),
        "start_ts": pa.array([e - lookback for e in ends], pa.timestamp("us", tz="UTC")),
        "end_ts": pa.array(ends, pa.timestamp("us", tz="UTC")),
        "end_us": pa.array([int(e.timestamp() * 1_000_000) for e in ends], pa.int64()),
    })
    with store.registered(f"_journeys_{next(_CALLS)}", table) as view:
        sql = _touches_sql(rules, by, view, rollup_relation(store, settings))
        arrow = store.arrow(sql, {
            "include": rules.include_events, "exclude": rules.exclude_events})
    # categorical labels: millions of touches share a handful of roles and channels
    touches = arrow.to_pandas(strings_to_categorical=True)
    journey = touches["journey"].to_numpy(np.int64)
    codes, accounts = pd.factorize(frame["account_id"])
    touches["account_id"] = pd.Categorical.from_codes(codes[journey], categories=accounts)
    first = np.r_[0, np.flatnonzero(journey[1:] != journey[:-1]) + 1] if len(journey) else journey
    touches["seq"] = np.arange(len(journey)) - np.repeat(first, np.diff(np.r_[first, len(journey)]))
    touches["stage"] = _stages(rules, touches["days_before"].to_numpy())
    if by == "stage":
        touches["channel"] = touches["stage"]
    return Journeys(frame.drop(columns=["arr_delta"]), touches, notes)


def _stages(rules: AttributionRules, days_before):
    """The stage of each touch (rules.stages, closest to the outcome first), categorical."""
    import numpy as np
    import pandas as pd

    names = [s.name for s in rules.stages]
    limits = [s.days_before for s in rules.stages if s.days_before is not None]
    codes = np.minimum(np.searchsorted(np.array(limits, dtype=float), days_before, side="left"),
                       len(names) - 1)
    return pd.Categorical.from_codes(codes.astype(np.int64), dtype=pd.CategoricalDtype(names))
