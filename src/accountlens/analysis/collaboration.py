"""Collaboration intensity per account or org unit, the who-works-with-whom graph, and how
concentrated it is (is the account dependent on one champion?)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from accountlens.analysis.handoffs import drop_handoff_tables, handoff_tables
from accountlens.analysis.registry import (
    Analysis,
    AnalysisRequest,
    register,
    unit_level_sql,
)
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd


class CollaborationRequest(AnalysisRequest):
    level: Literal["account", "unit", "team", "department", "business_unit"] = Field(
        default="account", description="group results by account, unit, team, department or business_unit")
    view: Literal["summary", "graph"] = Field(
        default="summary", description="summary per group, or graph edges (who works with whom)"
    )
    nodes: Literal["user", "role"] = Field(default="user", description="graph nodes: user or role")
    lookback_days: int | None = Field(default=None, ge=1, le=36500, description="days of history (config default)")


def _group_unit(level: str, side: str) -> tuple[str, str]:
    """(join, expression): the org unit a handoff's `side` ('from' or 'to') belongs to at a unit
    `level` (NULL: none; at account level no unit)."""
    if level == "account":
        return "", "NULL::VARCHAR"
    if level == "unit":
        return "", f"h.{side}_unit"
    alias = f"g_{side}"
    join = f"LEFT JOIN ({unit_level_sql(level)}) {alias} ON {alias}.unit_id = h.{side}_unit"
    return join, f"{alias}.level_unit_id"


def _summary(store: Store, request: CollaborationRequest) -> pd.DataFrame:
    # A handoff belongs to the group (account, and unit at unit levels) of the user who received
    # the object.
    join, unit = _group_unit(request.level, "to")
    team_join = f"LEFT JOIN ({unit_level_sql('team')}) tf ON tf.unit_id = h.from_unit " \
                f"LEFT JOIN ({unit_level_sql('team')}) tt ON tt.unit_id = h.to_unit"
    dept_join = f"LEFT JOIN ({unit_level_sql('department')}) df ON df.unit_id = h.from_unit " \
                f"LEFT JOIN ({unit_level_sql('department')}) dt ON dt.unit_id = h.to_unit"
    return store.df(
        f"""
        WITH h AS (
            SELECT h.*, h.account_id || '/' || coalesce({unit}, '') AS grp, {unit} AS grp_unit,
                   tf.level_name IS DISTINCT FROM tt.level_name AS cross_team,
                   df.level_name IS DISTINCT FROM dt.level_name AS cross_department
            FROM _handoffs h {join} {team_join} {dept_join}
        ),
        participation AS (  -- how many handoffs each user takes part in, per group
            SELECT grp, user_id, count(*) AS n FROM (
                SELECT grp, from_user AS user_id FROM h UNION ALL SELECT grp, to_user FROM h
            ) GROUP BY ALL
        ),
        concentration AS (
            SELECT grp, arg_min(user_id, (-n, user_id)) AS most_connected_user,
                   max(n) / sum(n) AS top_user_share,
                   sum((n / total) * (n / total)) AS participation_hhi
            FROM (SELECT *, sum(n) OVER (PARTITION BY grp) AS total FROM participation)
            GROUP BY grp
        ),
        collaborators AS (
            SELECT grp, count(DISTINCT user_id) AS collaborators,
                   count(DISTINCT object_key) AS shared_objects
            FROM (SELECT grp, from_user AS user_id, account_id || '/' || object_id AS object_key FROM h
                  UNION ALL SELECT grp, to_user, account_id || '/' || object_id FROM h)
            GROUP BY grp
        )
        SELECT any_value(h.account_id) AS account_id,{" any_value(h.grp_unit) AS unit_id," if request.level != "account" else ""}
               count(*) AS handoffs,
               any_value(c.collaborators) AS collaborators,
               any_value(c.shared_objects) AS shared_objects,
               count(*) FILTER (WHERE cross_team) AS cross_team_handoffs,
               round(avg(CAST(cross_team AS INTEGER)), 4) AS cross_team_share,
               count(*) FILTER (WHERE cross_department) AS cross_department_handoffs,
               round(avg(CAST(cross_department AS INTEGER)), 4) AS cross_department_share,
               round(median(latency_hours), 3) AS median_latency_hours,
               any_value(k.most_connected_user) AS most_connected_user,
               round(any_value(k.top_user_share), 4) AS top_user_share,
               round(any_value(k.participation_hhi), 4) AS participation_hhi,
               any_value(k.top_user_share) >= 0.5 AS champion_dependent
        FROM h JOIN collaborators c USING (grp) JOIN concentration k USING (grp)
        GROUP BY h.grp ORDER BY handoffs DESC, h.grp LIMIT ?
        """,
        [request.limit],
    )


def _graph(store: Store, request: CollaborationRequest) -> pd.DataFrame:
    return store.df(
        """
        SELECT account_id, from_actor AS source, to_actor AS target, count(*) AS weight,
               round(median(latency_hours), 3) AS median_latency_hours
        FROM _handoffs GROUP BY ALL ORDER BY weight DESC, account_id, source, target LIMIT ?
        """,
        [request.limit],
    )


def run(store: Store, settings, request: CollaborationRequest) -> pd.DataFrame:
    try:
        handoff_tables(store, settings, request.as_of, request.nodes, request.account,
                       request.lookback_days, view="graph")
        return (_graph if request.view == "graph" else _summary)(store, request)
    finally:
        drop_handoff_tables(store)


register(Analysis(
    name="collaboration",
    summary="Collaboration intensity per account or unit: collaborators on shared objects, "
            "cross-team and cross-department handoffs, who-works-with-whom graph, concentration.",
    request=CollaborationRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
