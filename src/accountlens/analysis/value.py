"""Cost of delay of activation and the projected value-realization date of each customer account
(docs/signals.md), as of a day, point-in-time (SPEC §8).

Activation and time-to-value are the metrics of metrics/activation.py (SPEC §5): an account
realizes value when `metrics.min_users` distinct users have performed value events; it is
`activated` when that happened within `metrics.account_activation_days` of acquisition. The
benchmark is the median time-to-value of the accounts that realized value by as_of; the delay is
how far an account is behind it, its cost the ARR paid meanwhile (an estimate).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis.features import (
    SEGMENTS,
    AccountFilters,
    account_features,
    filtered,
)
from accountlens.analysis.registry import (
    Analysis,
    AnalysisError,
    day_end,
    register,
    resolve_as_of,
)
from accountlens.metrics.registry import MetricError
from accountlens.metrics.table import run_table
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

# A segment's own benchmark needs this many accounts that realized value (else the overall one).
MIN_SEGMENT_ACCOUNTS = 5
BASES = ("reached", "pace", "benchmark", "overdue", "before_tracking", "none")

COLUMNS = ("account_id", "plan", "arr", "acquired_on", "acquired_before_tracking", "value_users",
           "needed_users", "activated", "activated_on", "value_reached_on", "time_to_value_days",
           "days_since_acquisition", "expected_ttv_days", "benchmark_segment",
           "benchmark_accounts", "delay_days", "cost_of_delay", "projected_value_date",
           "projection_basis")
TABLE_COLUMNS = ("account_id", "arr", "value_users", "delay_days", "cost_of_delay",
                 "projected_value_date", "projection_basis")

_VALUE_USERS_SQL = """
WITH firsts AS (  -- each user's first value event in the account, before the end of as_of
    SELECT account_id, user_id, min(timestamp) AS first_value_at
    FROM events
    WHERE type IN ('track', 'page', 'screen') AND actor_kind = 'human'
      AND user_id IS NOT NULL AND account_id IS NOT NULL AND timestamp < $end
      AND list_contains(CAST($value_events AS VARCHAR[]), name)
    GROUP BY ALL
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY account_id ORDER BY first_value_at, user_id) AS rank
    FROM firsts
)
SELECT account_id, count(*) AS value_users,
       strftime(max(first_value_at) FILTER (WHERE rank = $min_users), '%Y-%m-%d') AS value_reached_on
FROM ranked GROUP BY ALL
"""

_FIRST_TRACKED_SQL = """
SELECT strftime(min(timestamp), '%Y-%m-%d') AS first_day FROM events
WHERE type IN ('track', 'page', 'screen') AND timestamp < $end
"""


class ValueRequest(AccountFilters):
    level: Literal["account"] = Field(default="account", description="accounts (the only level)")
    benchmark_by: Literal["plan", "industry", "region", "size_band", "none"] = Field(
        default="plan", description=(
            f"the segment whose median time-to-value an account is compared with, when it has "
            f"≥ {MIN_SEGMENT_ACCOUNTS} accounts that realized value (none: always all accounts)"))


def run(store: Store, settings: Any, request: ValueRequest) -> pd.DataFrame:
    import pandas as pd

    as_of = resolve_as_of(store, request.as_of)
    end = day_end(as_of)
    metrics = settings.metrics
    try:
        features = account_features(store, settings, as_of)
        measured = run_table(store, metrics, settings.analysis, ["activation", "time_to_value"],
                             "account", as_of).frame
    except MetricError as exc:
        raise AnalysisError(f"value needs the activation metrics: {exc}") from exc
    measured = measured[["account_id", "acquired_on", "activated", "activated_on",
                         "time_to_value_days"]]
    users = store.df(_VALUE_USERS_SQL, {"end": end, "value_events": list(metrics.value_events),
                                        "min_users": metrics.min_users})
    first = store.rows(_FIRST_TRACKED_SQL, {"end": end})[0]["first_day"]
    first_tracked = dt.date.fromisoformat(first) if first else None

    features = features[["account_id", "customer", "arr", *SEGMENTS]]
    known = features.merge(measured, on="account_id", how="inner").merge(
        users, on="account_id", how="left")
    known["value_users"] = known["value_users"].fillna(0).astype(int)
    known["acquired_before_tracking"] = [
        first_tracked is not None and isinstance(acquired, dt.date) and acquired < first_tracked
        for acquired in known["acquired_on"]]
    segment = None if request.benchmark_by == "none" else request.benchmark_by
    benchmarks = _benchmarks(known, segment)

    rows = filtered(known[known["customer"]], request)
    out = pd.DataFrame([_row(r, as_of, metrics.min_users, benchmarks, segment)
                        for r in rows.to_dict(orient="records")], columns=list(COLUMNS))
    for column in ("benchmark_accounts", "days_since_acquisition"):
        out[column] = out[column].astype("Int64")
    for column in ("time_to_value_days", "expected_ttv_days", "delay_days", "cost_of_delay"):
        out[column] = out[column].astype(float)
    out = out.sort_values(["cost_of_delay", "delay_days", "account_id"],
                          ascending=[False, False, True], na_position="last")
    out = out.reset_index(drop=True)
    out.attrs["notes"] = _notes(out, as_of, first_tracked, benchmarks)
    out.attrs["table_columns"] = list(TABLE_COLUMNS)
    return out


def _benchmarks(known: pd.DataFrame, segment: str | None) -> dict[str | None, tuple[float, int]]:
    """(median time-to-value, accounts) overall (key None) and per value of `segment`, over every
    account known on as_of that realized value, tracked from its acquisition (the request's
    filters do not change the benchmark)."""
    reached = known[known["time_to_value_days"].notna() & ~known["acquired_before_tracking"]]
    out: dict[str | None, tuple[float, int]] = {}
    if len(reached):
        out[None] = (float(reached["time_to_value_days"].median()), len(reached))
    if segment is not None:
        for value, group in reached.groupby(segment):
            if len(group) >= MIN_SEGMENT_ACCOUNTS:
                out[str(value)] = (float(group["time_to_value_days"].median()), len(group))
    return out


def _row(r: dict, as_of: dt.date, min_users: int, benchmarks: dict, segment: str | None) -> dict:
    acquired: dt.date = r["acquired_on"]
    age = (as_of - acquired).days
    ttv = r["time_to_value_days"]
    text = r["value_reached_on"]
    reached_on = dt.date.fromisoformat(text) if isinstance(text, str) else None
    reached = reached_on is not None and ttv is not None and not math.isnan(ttv)
    own = None if segment is None else benchmarks.get(str(r[segment]))
    expected, count = own or benchmarks.get(None, (None, None))
    label = f"{segment}={r[segment]}" if own else ("all" if expected is not None else None)
    untracked = bool(r["acquired_before_tracking"])

    delay = None
    if expected is not None and not untracked:
        delay = max(0.0, (ttv if reached else age) - expected)
    cost = None if delay is None else float(r["arr"]) / 365 * delay

    projected, basis = None, "none"
    if reached:
        projected, basis = reached_on, "reached"
    elif untracked:
        basis = "before_tracking"
    elif r["value_users"] > 0:
        # the pace so far (days per value user since acquisition) carried on to min_users users
        days = math.ceil(min_users * age / r["value_users"])
        projected, basis = max(acquired + dt.timedelta(days=days), as_of + dt.timedelta(days=1)), "pace"
    elif expected is not None:
        due = acquired + dt.timedelta(days=math.ceil(expected))
        projected, basis = (due, "benchmark") if due > as_of else (None, "overdue")

    return {
        "account_id": r["account_id"], "plan": r["plan"], "arr": float(r["arr"]),
        "acquired_on": acquired, "acquired_before_tracking": untracked,
        "value_users": int(r["value_users"]), "needed_users": min_users,
        "activated": bool(r["activated"]),
        "activated_on": r["activated_on"] if isinstance(r["activated_on"], dt.date) else None,
        "value_reached_on": reached_on if reached else None,
        "time_to_value_days": ttv if reached else None, "days_since_acquisition": age,
        "expected_ttv_days": expected, "benchmark_segment": label, "benchmark_accounts": count,
        "delay_days": delay, "cost_of_delay": cost,
        "projected_value_date": projected, "projection_basis": basis,
    }


def _notes(out: pd.DataFrame, as_of: dt.date, first_tracked: dt.date | None,
           benchmarks: dict) -> list[str]:
    notes = []
    early = int(out["acquired_before_tracking"].sum())
    if early:
        notes.append(f"{early} of {len(out)} accounts were acquired before the first tracked event "
                     f"({first_tracked}): their time-to-value is not measured from acquisition, "
                     "so they have no delay, cost or projection and are not in the benchmark")
    if None not in benchmarks and len(out):
        notes.append(f"no account tracked from its acquisition realized value by {as_of}: no "
                     "expected time-to-value, so no delay or cost")
    if len(out):
        notes.append("cost_of_delay is an estimate: ARR in force ÷ 365 × delay_days, the ARR "
                     "paid while value lags the benchmark")
    return notes


register(Analysis(
    name="value",
    summary="Each customer account's activation, time-to-value against the median of accounts "
            "like it, the cost of its delay (ARR paid while value lags) and the projected date it "
            "realizes value.",
    request=ValueRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
