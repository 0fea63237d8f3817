"""Activity over time (docs/web-api.md): active accounts, active human users and active events per
day or week, zero-filled, over the days (as_of − days, as_of]; the overview page's series.

Read from the daily activity rollup (model/rollup.py), made current the way metrics make it
(else computed from the events inline), so a year of days is one grouped scan of the rollup.
Only events attributed to an account count; account filters keep the accounts they select.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis.features import SEGMENTS, AccountFilters, account_features, filtered
from accountlens.analysis.registry import MAX_ROWS, Analysis, register, resolve_as_of
from accountlens.store.base import Store
from accountlens.store.catalog import ACCOUNT_DAYS

if TYPE_CHECKING:
    import pandas as pd

MAX_DAYS = 1095


def rollup_current(store: Store, settings: Any) -> bool:
    """Make the daily activity rollup current as metrics do (metrics/registry.py `prepare`);
    False when it cannot be (a read-only store): read the events inline then."""
    from accountlens.model import rollup

    try:
        return rollup.ensure_fresh(store, settings=settings.metrics)
    except Exception:  # noqa: BLE001 - a read-only store cannot build it: read the events inline
        return False


def rollup_relation(store: Store, settings: Any) -> str:
    """SQL of the daily activity rollup as a relation (`day`, `account_id`, `user_id`,
    `unit_id`, `role`, `name`, `product`, `actor_kind`, `events`, `first_at`, `last_at`): the
    materialized table, made current as metrics make it, or (a read-only store whose rollup is
    stale) the same computed from the events."""
    return rollup_sql(rollup_current(store, settings))


def rollup_sql(fresh: bool, table_name: str | None = None) -> str:
    """SQL of the rollup (or of `account_days`, `table_name`) as a relation: the stored table
    when `fresh`, else its expression over the events."""
    import ibis

    from accountlens.model import rollup
    from accountlens.store.catalog import table

    name = table_name or rollup.ROLLUP
    if fresh:
        return name
    rows = rollup.rollup_expression(table("events"))
    if name != rollup.ROLLUP:
        rows = rollup.derived(name, rows, inline=True)
    return f"({ibis.to_sql(rows, dialect='duckdb')})"


class ActivityRequest(AccountFilters):
    level: Literal["account"] = Field(default="account", description="accounts (the only level)")
    grain: Literal["day", "week"] = Field(default="day", description=(
        "day: one row per day; week: one row per week (its Monday), the window's first and "
        "last week counting only their days inside the window"))
    days: int = Field(default=90, ge=1, le=MAX_DAYS, description=(
        "the window: the days (as_of − days, as_of]"))
    limit: int = Field(default=MAX_DAYS, ge=1, le=MAX_ROWS, description=(
        "at most this many rows (default: every period)"))


# Accounts and events from `account_days` (one row per account and day); distinct users from
# the rollup (a user active on several days of a week counts once).
_SERIES_SQL = """
WITH accounts AS (
    SELECT {period} AS period, count(DISTINCT account_id) AS active_accounts,
           sum(events) AS events
    FROM {days}
    WHERE day >= $first AND day <= $day AND account_id IS NOT NULL
      AND ($everyone OR account_id IN (SELECT account_id FROM {kept}))
    GROUP BY ALL
),
users AS (
    SELECT {period} AS period, count(DISTINCT user_id) AS active_users
    FROM {source}
    WHERE day >= $first AND day <= $day AND account_id IS NOT NULL
      AND actor_kind = 'human' AND user_id IS NOT NULL
      AND ($everyone OR account_id IN (SELECT account_id FROM {kept}))
    GROUP BY ALL
)
SELECT period, active_accounts, active_users, events FROM accounts FULL JOIN users USING (period)
"""


def periods(as_of: dt.date, days: int, grain: str) -> list[dt.date]:
    """The periods of the window (as_of − days, as_of], oldest first: its days, or the Mondays
    of the weeks it touches."""
    first = as_of - dt.timedelta(days=days - 1)
    if grain == "day":
        return [first + dt.timedelta(days=k) for k in range(days)]
    monday = first - dt.timedelta(days=first.weekday())
    weeks = (as_of - monday).days // 7 + 1
    return [monday + dt.timedelta(weeks=k) for k in range(weeks)]


def kept_accounts(store: Store, settings: Any, request: AccountFilters,
                  as_of: dt.date) -> list[str] | None:
    """The account ids the request's filters keep (None: every account). Attribute filters
    read the account features as of the day (analysis/features.py)."""
    if all(getattr(request, name, None) is None for name in SEGMENTS):
        return None if request.account is None else [request.account]
    return [str(a) for a in filtered(account_features(store, settings, as_of), request)["account_id"]]


def run(store: Store, settings: Any, request: ActivityRequest) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    as_of = resolve_as_of(store, request.as_of)
    days = min(request.days, (as_of - dt.date.min).days + 1)  # the calendar's first days
    fresh = rollup_current(store, settings)
    kept = kept_accounts(store, settings, request, as_of)
    period = "day" if request.grain == "day" else "CAST(date_trunc('week', day) AS DATE)"
    with store.registered("_activity_kept", pa.table(
            {"account_id": pa.array(kept or [], pa.string())})) as view:
        sql = _SERIES_SQL.format(period=period, source=rollup_sql(fresh), kept=view,
                                 days=rollup_sql(fresh, ACCOUNT_DAYS))
        counts = store.df(sql, {
            "first": as_of - dt.timedelta(days=days - 1), "day": as_of,
            "everyone": kept is None})
    frame = pd.DataFrame({"period": periods(as_of, days, request.grain)})
    counts["period"] = [d.date() if isinstance(d, dt.datetime) else d for d in counts["period"]]
    frame = frame.merge(counts, on="period", how="left")
    for column in ("active_accounts", "active_users", "events"):
        frame[column] = frame[column].fillna(0).astype("int64")
    frame.attrs["notes"] = [] if kept is None else [
        f"{len(kept)} account(s) pass the filters"]
    return frame


register(Analysis(
    name="activity",
    summary="Active accounts, active human users and active events per day or week over the "
            "last --days days ending on as_of, zero-filled (the accounts the filters keep).",
    request=ActivityRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
