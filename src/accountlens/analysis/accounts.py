"""The accounts list (docs/web-api.md): one row per account known on as_of with its attributes,
contract, health and a 12-week sparkline of active users, filtered, searched and sorted.

Point-in-time (SPEC §8) like its sources: the account features (analysis/features.py), the health
score and its trend (analysis/health.py), the metrics' maturity and deployment-scale slices
(metrics/levels.py, computed by the same expression), subscriptions in force on as_of by their
dates (half-open), and the effective memberships (model/memberships.py). Everything per account
comes from set-based queries over all accounts at once, kept while the data and settings are
unchanged, so filters, search, sorting and paging re-read no data.
"""

from __future__ import annotations

import bisect
import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis.activity import rollup_current, rollup_relation
from accountlens.analysis.features import AccountFilters, account_features, filtered
from accountlens.analysis.health import GRADES
from accountlens.analysis.registry import (
    MAX_ROWS,
    Analysis,
    day_end,
    days_before,
    register,
    resolve_as_of,
    run_analysis,
)
from accountlens.model.memberships import effective_memberships_sql
from accountlens.store.base import Store
from accountlens.store.cache import BoundedCache

if TYPE_CHECKING:
    import pandas as pd

WEEKS = 12  # the sparkline: weekly active users, the 12 weeks ending on as_of
COLUMNS = ("account_id", "account_name", "domain", "parent_account_id", "industry", "region",
           "plan", "size_band", "maturity", "deployment_scale", "owner", "customer", "arr",
           "seats", "mau", "seat_utilization", "health_score", "health_grade", "health_trend",
           "renewal_date", "days_to_renewal", "last_active_day", "activity", "users")
SORTABLE = tuple(c for c in COLUMNS if c != "activity")
TABLE_COLUMNS = ("account_id", "account_name", "plan", "customer", "arr", "seats", "mau",
                 "health_score", "health_grade", "health_trend", "renewal_date",
                 "last_active_day", "activity", "users")

_CACHE = BoundedCache(16)

_PER_ACCOUNT_SQL = f"""
WITH effective AS ({effective_memberships_sql("$end")}),
members AS (  -- users whose membership stands at the end of as_of
    SELECT account_id, count(DISTINCT user_id) FILTER (WHERE valid_to IS NULL) AS users
    FROM effective GROUP BY ALL
),
live AS (  -- subscriptions in force on as_of, [start, end) by the dates alone
    SELECT account_id, min(end_date) AS renewal_date FROM subscriptions
    WHERE start_date <= $day AND (end_date IS NULL OR end_date > $day)
    GROUP BY ALL
),
weekly AS (  -- distinct active human users per week; week {WEEKS - 1} ends on as_of
    SELECT account_id, CAST({WEEKS - 1} - date_diff('day', day, $day) // 7 AS INTEGER) AS week,
           count(DISTINCT user_id) AS active
    FROM {{source}}
    WHERE day > $since AND day <= $day AND account_id IS NOT NULL
      AND user_id IS NOT NULL AND actor_kind = 'human'
    GROUP BY ALL
),
sparks AS (
    SELECT a.account_id, list(coalesce(w.active, 0) ORDER BY g.week) AS activity
    FROM (SELECT DISTINCT account_id FROM weekly) a CROSS JOIN (VALUES {', '.join(f'({w})' for w in range(WEEKS))}) g(week)
    LEFT JOIN weekly w ON w.account_id = a.account_id AND w.week = g.week
    GROUP BY a.account_id
)
SELECT a.account_id, a.name AS account_name, a.domain, coalesce(m.users, 0) AS users,
       l.renewal_date, s.activity
FROM accounts a LEFT JOIN members m USING (account_id) LEFT JOIN live l USING (account_id)
LEFT JOIN sparks s USING (account_id)
"""


class AccountsRequest(AccountFilters):
    level: Literal["account"] = Field(default="account", description="accounts (the only level)")
    maturity: str | None = Field(default=None, description=(
        "only accounts of this maturity band (metrics.maturity_bands_months, e.g. '3-11 months')"))
    deployment_scale: str | None = Field(default=None, description=(
        "only accounts of this deployment scale (metrics.deployment_scale_bands, e.g. '5-19 users')"))
    grade: Literal[(*GRADES, "unknown")] | None = Field(  # type: ignore[valid-type]
        default=None, description="only accounts of this health grade")
    q: str | None = Field(default=None, description=(
        "search: accounts whose name, domain or id contains this text (any case)"))
    customers_only: bool = Field(default=False, description=(
        "only customers (a subscription in force on as_of)"))
    sort: Literal[SORTABLE] = Field(  # type: ignore[valid-type]
        default="arr", description="the column rows are sorted by (ties: account_id)")
    descending: bool = Field(default=True, description="sort from the largest value down")


def band_label(value: float, edges: list[int], suffix: str = "") -> str:
    """The band of `value` as metrics/levels.py's `band` labels it."""
    from accountlens.metrics.levels import band_labels

    return band_labels(edges, suffix)[bisect.bisect_right(edges, value)]


def account_table(store: Store, settings: Any, as_of: dt.date) -> pd.DataFrame:
    """Every account known on `as_of` with the columns of the list (unfiltered, by account_id).
    Kept while the store's data and the settings are unchanged."""
    key = (store.instance, store.data_version, as_of, settings.model_dump_json())
    return _CACHE.kept(key, lambda: _compute(store, settings, as_of)).copy()


def _compute(store: Store, settings: Any, as_of: dt.date) -> pd.DataFrame:
    features = account_features(store, settings, as_of)
    frame = features[["account_id", "parent_account_id", "industry", "region", "plan",
                      "size_band", "owner", "customer", "arr", "seats", "mau",
                      "seat_utilization", "days_since_active"]]
    per_account = store.df(_PER_ACCOUNT_SQL.format(source=rollup_relation(store, settings)),
                           {"day": as_of, "end": day_end(as_of),
                            "since": days_before(as_of, 7 * WEEKS)})
    frame = frame.merge(per_account, on="account_id", how="left")
    frame = frame.merge(_slices(store, settings, as_of), on="account_id", how="left")
    metrics = settings.metrics
    frame["maturity"] = frame["maturity"].fillna("(none)")  # no contract started by as_of
    frame["deployment_scale"] = frame["deployment_scale"].fillna(
        band_label(0, metrics.deployment_scale_bands, " users"))  # no activity by as_of
    health = run_analysis(store, settings, "health", as_of=as_of, limit=MAX_ROWS).frame
    health = health[["account_id", "score", "grade", "trend"]].rename(columns={
        "score": "health_score", "grade": "health_grade", "trend": "health_trend"})
    frame = frame.merge(health, on="account_id", how="left")
    frame["health_grade"] = frame["health_grade"].fillna("unknown")
    frame["days_to_renewal"] = [
        (d - as_of).days if isinstance(d, dt.date) else None for d in frame["renewal_date"]]
    frame["last_active_day"] = [
        as_of - dt.timedelta(days=int(d)) if d == d else None for d in frame["days_since_active"]]
    frame["activity"] = [[int(v) for v in a] if hasattr(a, "__len__") else [0] * WEEKS
                         for a in frame["activity"]]  # no active user in the 12 weeks: zeros
    frame["users"] = frame["users"].fillna(0)
    for column in ("seats", "mau", "users", "days_to_renewal"):
        frame[column] = frame[column].astype("Int64")
    return frame[list(COLUMNS)].sort_values("account_id").reset_index(drop=True)


def _slices(store: Store, settings: Any, as_of: dt.date) -> pd.DataFrame:
    """Each account's maturity and deployment scale, by the metrics' own expression."""
    from accountlens.metrics import levels as lv
    from accountlens.metrics.registry import compiled, fetch
    from accountlens.model import rollup
    from accountlens.store.catalog import table

    inline = not rollup_current(store, settings)

    def build():
        source = rollup.rollup_expression(table("events")) if inline else table(rollup.ROLLUP)
        upto = source.filter(source.day <= as_of)
        firsts = rollup.derived(rollup.FIRSTS, upto, inline)
        # the metrics' windows reach 30 days back: at the calendar's first days, none exists
        attributes = lv.account_attributes(max(as_of, dt.date(1, 2, 1)), upto, firsts,
                                           settings.metrics,
                                           frozenset({"maturity", "deployment_scale"}))
        return attributes.select("account_id", "maturity", "deployment_scale")

    sql, schema = compiled(store, ("accounts:slices", as_of, inline,
                                   settings.metrics.model_dump_json()), build)
    return fetch(store, sql, schema)


def _search(frame: pd.DataFrame, text: str) -> pd.Series:
    found = frame["account_id"].astype("string").str.contains(text, case=False, regex=False)
    for column in ("account_name", "domain"):
        found |= frame[column].astype("string").str.contains(text, case=False, regex=False)
    return found.fillna(False).astype(bool)


def run(store: Store, settings: Any, request: AccountsRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    frame = filtered(account_table(store, settings, as_of), request)
    for name in ("maturity", "deployment_scale"):
        wanted = getattr(request, name)
        if wanted is not None:
            frame = frame[frame[name] == wanted]
    if request.grade is not None:
        frame = frame[frame["health_grade"] == request.grade]
    if request.customers_only:
        frame = frame[frame["customer"].astype(bool)]
    if request.q:
        frame = frame[_search(frame, request.q)]
    frame = frame.sort_values([request.sort, "account_id"], ascending=[not request.descending, True],
                              na_position="last", kind="stable").reset_index(drop=True)
    frame.attrs["table_columns"] = list(TABLE_COLUMNS)
    return frame


register(Analysis(
    name="accounts",
    summary="Every account known on as_of with its attributes, contract, health, renewal date and "
            "a 12-week sparkline of active users; filter, search (--q), sort and page it.",
    request=AccountsRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
