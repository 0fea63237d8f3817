"""Onboarding paths per role and time-to-value by role or department.

A user's onboarding path in an account is the sequence of their first `steps` distinct
consecutive active events there (repeats collapsed); the role is the one at their first event.
A user is *activated* when they perform one of `metrics.value_events` within `activation_days`
of that first event; time-to-value is the days until their first value event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from accountlens.analysis.registry import (
    Analysis,
    AnalysisRequest,
    day_end,
    elapsed_sql,
    register,
    resolve_as_of,
    unit_level_sql,
    within_days_sql,
)
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd


class PathsRequest(AnalysisRequest):
    level: Literal["role", "department", "team", "business_unit"] = Field(
        default="role", description="ttv view: group by role, department, team or business_unit")
    view: Literal["paths", "ttv"] = Field(default="paths", description="paths, or ttv (time-to-value)")
    role: str | None = Field(default=None, description="only users in this role")
    steps: int = Field(default=3, ge=1, le=10, description="events per path")
    activation_days: int = Field(default=14, ge=1, le=3650, description="days after the first event to activate")


def _users_sql(level: str) -> str:
    """Per (account, user): first event time, role and group at it, first value event time."""
    if level in ("department", "team", "business_unit"):
        group_join = f"LEFT JOIN ({unit_level_sql(level)}) g ON g.unit_id = f.first_unit"
        group = f"coalesce(g.level_name, '(no {level})')"
    else:
        group_join, group = "", "coalesce(f.first_role, '(no role)')"
    return f"""
        WITH active AS (
            SELECT account_id, user_id, role, unit_id, name, timestamp, message_id FROM events
            WHERE type IN ('track', 'page', 'screen') AND actor_kind = 'human'
              AND user_id IS NOT NULL AND account_id IS NOT NULL AND timestamp < $end
              AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
        ),
        f AS (
            SELECT account_id, user_id, min(timestamp) AS first_ts,
                   arg_min(role, (timestamp, message_id)) AS first_role,
                   arg_min(unit_id, (timestamp, message_id)) AS first_unit,
                   min(timestamp) FILTER (WHERE list_contains($value_events, name)) AS value_ts
            FROM active GROUP BY ALL
        )
        SELECT f.*, {group} AS grp,
               value_ts IS NOT NULL
                   AND {within_days_sql("first_ts", "value_ts", "$activation_days")} AS activated,
               {elapsed_sql("first_ts", "value_ts", "days")} AS ttv_days
        FROM f {group_join}
    """


def _paths(store: Store, params: dict, request: PathsRequest) -> pd.DataFrame:
    return store.df(
        f"""
        WITH users AS ({_users_sql("role")}),
        ordered AS (
            SELECT account_id, user_id, name, timestamp, message_id,
                   name IS DISTINCT FROM lag(name) OVER (
                       PARTITION BY account_id, user_id ORDER BY timestamp, message_id) AS new_step
            FROM events
            WHERE type IN ('track', 'page', 'screen') AND actor_kind = 'human'
              AND user_id IS NOT NULL AND account_id IS NOT NULL AND timestamp < $end
              AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
        ),
        steps AS (
            SELECT account_id, user_id, name, row_number() OVER (
                       PARTITION BY account_id, user_id ORDER BY timestamp, message_id) AS n
            FROM ordered WHERE new_step
        ),
        paths AS (
            SELECT account_id, user_id, string_agg(name, ' → ' ORDER BY n) AS path
            FROM steps WHERE n <= $steps GROUP BY ALL
        )
        SELECT u.grp AS role, p.path, count(*) AS users,
               count(*) FILTER (WHERE u.activated) AS activated_users,
               round(avg(CAST(u.activated AS INTEGER)), 4) AS activation_rate,
               round(median(u.ttv_days), 2) AS median_ttv_days
        FROM paths p JOIN users u USING (account_id, user_id)
        WHERE CAST($role AS VARCHAR) IS NULL OR u.first_role = $role
        GROUP BY ALL ORDER BY role, users DESC, path LIMIT $limit
        """,
        {**params, "steps": request.steps, "role": request.role, "limit": request.limit},
    )


def _ttv(store: Store, params: dict, request: PathsRequest) -> pd.DataFrame:
    return store.df(
        f"""
        WITH users AS ({_users_sql(request.level)})
        SELECT grp AS "{request.level}", count(*) AS users,
               count(ttv_days) AS reached_value, round(count(ttv_days) / count(*), 4) AS reached_share,
               round(avg(CAST(activated AS INTEGER)), 4) AS activation_rate,
               round(median(ttv_days), 2) AS median_ttv_days,
               round(quantile_cont(ttv_days, 0.75), 2) AS p75_ttv_days
        FROM users
        WHERE CAST($role AS VARCHAR) IS NULL OR first_role = $role
        GROUP BY grp ORDER BY users DESC, grp LIMIT $limit
        """,
        {**params, "role": request.role, "limit": request.limit},
    )


def run(store: Store, settings, request: PathsRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    params = {
        "end": day_end(as_of),
        "account": request.account,
        "value_events": settings.metrics.value_events,
        "activation_days": request.activation_days,
    }
    return (_ttv if request.view == "ttv" else _paths)(store, params, request)


register(Analysis(
    name="paths",
    summary="Most common first-N-event onboarding paths per role with activation rates; "
            "time-to-value by role or department.",
    request=PathsRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
