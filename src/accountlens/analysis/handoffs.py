"""Handoffs (SPEC §5): who passes shared objects to whom, how fast, and where work stalls.

A handoff is two consecutive events on the same `object_id` (within one account) by different
users; its latency is the time between them. Role, unit and user are those at event time.
A stall is an object whose last event is older than `handoffs.stall_after_days` and that never
reached one of `handoffs.final_events`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from accountlens.analysis.registry import (
    Analysis,
    AnalysisRequest,
    actor_events_sql,
    elapsed_sql,
    minus_days,
    register,
    resolve_as_of,
    window,
)
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd


class HandoffsRequest(AnalysisRequest):
    level: Literal["role", "user", "unit", "team", "department", "business_unit"] = Field(
        default="role", description="who hands off to whom: role, user, unit, team, department, business_unit")
    view: Literal["pairs", "bottlenecks", "stalls", "chains"] = Field(
        default="pairs", description="pairs, bottlenecks, stalls or chains (per object)"
    )
    lookback_days: int | None = Field(default=None, ge=1, le=36500, description="days of history (config default)")
    min_handoffs: int = Field(default=5, ge=1, description="bottlenecks: least handoffs for a pair to rank")


def _stalled(over: str = "") -> str:
    """SQL: an object is stalled — none of its events is final and its last one is before
    `$stall_before`. Aggregates over its events; `over`: a window clause, as window aggregates."""
    return (f"NOT bool_or(list_contains($finals, name)){over} "
            f"AND max(timestamp){over} < $stall_before")


def stalled_per_account(store: Store, settings, as_of: dt.date) -> pd.DataFrame:
    """`account_id`, `open_stalls`: how many objects of each account the `stalls` view lists
    (same window and rule), counted without building its tables (a tenth of the time)."""
    cfg = settings.handoffs
    start, end = window(as_of, cfg.lookback_days)
    return store.df(
        f"""
        SELECT account_id, count(*) AS open_stalls FROM (
            SELECT account_id, object_id FROM ({actor_events_sql("user")}) ev
            WHERE object_id IS NOT NULL
            GROUP BY account_id, object_id HAVING {_stalled()}
        ) GROUP BY account_id
        """,
        {"start": start, "end": end, "account": None, "finals": cfg.final_events,
         "stall_before": minus_days(end, cfg.stall_after_days)},
    )


def handoff_tables(store: Store, settings, as_of: dt.date | None, level: str,
                   account: str | None = None, lookback_days: int | None = None,
                   view: str = "pairs") -> dt.date:
    """Create the temp tables `view` needs, with actors labelled at `level`: `_handoffs` (one
    row per handoff: object, step, actors, latency, whether its object stalled; users,
    events, times and units too unless `view` is one of PAIR_VIEWS) always; for the views of
    VIEWS `_last_handoff` (each object's last handoff, and whether the object stalled); for
    `stalls` and `chains`, which report objects, `_objects` (one per object: events, users,
    times, last actor, reached final, stalled); for `chains` `_object_events` (every event on
    an object with its step). Returns the day it was computed as of.

    `_objects` reads the events a second time (grouped per object) rather than from one
    materialized ordered table: at 10M events, writing the wide ordered table cost more than
    the second scan.
    """
    as_of = resolve_as_of(store, as_of)
    cfg = settings.handoffs
    start, end = window(as_of, lookback_days or cfg.lookback_days)
    events = {"start": start, "end": end, "account": account}
    stall = {"finals": cfg.final_events, "stall_before": minus_days(end, cfg.stall_after_days)}
    # Views of actor pairs need only the actors and times of each handoff; the collaboration
    # summary and chains also read its users, events and units (each lag widens the sort).
    full = view not in PAIR_VIEWS
    extra = "name, unit_id," if full else ""
    extra_lags = ("lag(name) OVER w AS prev_name, lag(unit_id) OVER w AS prev_unit,"
                  if full else "")
    # Whether each object stalled, from the same sorted partitions (no second pass over the
    # events for the pair views): no final event, and its last event before `stall_before`.
    stalled = f"{_stalled(' OVER whole')} AS object_stalled," if view in VIEWS else ""
    ordered = f"""
        SELECT account_id, object_id, user_id, actor, timestamp, {extra} {stalled}
               lag(user_id) OVER w AS prev_user, lag(actor) OVER w AS prev_actor,
               lag(timestamp) OVER w AS prev_ts, {extra_lags}
               row_number() OVER w AS step
        FROM ({actor_events_sql(level)}) ev
        WHERE object_id IS NOT NULL
        WINDOW w AS (PARTITION BY account_id, object_id ORDER BY timestamp, message_id),
               whole AS (PARTITION BY account_id, object_id ORDER BY timestamp, message_id
                         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    """
    params = {**events, **stall} if stalled else events
    if view == "chains":
        store.execute(f"CREATE OR REPLACE TEMP TABLE _object_events AS {ordered}", params)
        ordered = "SELECT * FROM _object_events"
    detail = ("prev_user AS from_user, user_id AS to_user, prev_name AS from_event, "
              "name AS to_event, prev_ts AS from_ts, timestamp AS to_ts, "
              "prev_unit AS from_unit, unit_id AS to_unit," if full else "")
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _handoffs AS
        SELECT account_id, object_id, step, prev_actor AS from_actor, actor AS to_actor, {detail}
               {"object_stalled," if stalled else ""}
               {elapsed_sql("prev_ts", "timestamp")} AS latency_hours
        FROM ({ordered}) WHERE prev_user IS NOT NULL AND prev_user <> user_id
        """,
        None if view == "chains" else params,
    )
    if view not in VIEWS:  # e.g. the collaboration graph: handoffs only
        return as_of
    if view in ("stalls", "chains"):  # views that report objects
        # Distinct users and the last actor are the costly aggregates: only where shown.
        detail = ("count(DISTINCT user_id) AS users, arg_max(actor, (timestamp, message_id)) "
                  "AS last_actor,")
        store.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _objects AS
            SELECT account_id, object_id, count(*) AS events, {detail}
                   min(timestamp) AS first_ts, max(timestamp) AS last_ts,
                   bool_or(list_contains($finals, name)) AS reached_final,
                   {_stalled()} AS stalled
            FROM ({actor_events_sql(level)}) ev
            WHERE object_id IS NOT NULL
            GROUP BY account_id, object_id
            """,
            {**events, **stall},
        )
    # The last handoff of each object: where a stalled object is waiting.
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _last_handoff AS
        SELECT account_id, object_id, arg_max(from_actor, step) AS from_actor,
               arg_max(to_actor, step) AS to_actor, bool_or(object_stalled) AS stalled
        FROM _handoffs GROUP BY account_id, object_id
        """
    )
    return as_of


def drop_handoff_tables(store: Store) -> None:
    for table in ("_object_events", "_handoffs", "_objects", "_last_handoff"):
        store.execute(f"DROP TABLE IF EXISTS {table}")


PAIRS_SQL = """
    WITH per_pair AS (  -- the handoffs grouped first: the joins below see one row per pair
        SELECT from_actor, to_actor, count(*) AS handoffs,
               median(latency_hours) AS median_latency,
               quantile_cont(latency_hours, 0.9) AS p90, avg(latency_hours) AS mean_latency
        FROM _handoffs GROUP BY ALL
    ),
    objects AS (
        SELECT from_actor, to_actor, count(*) AS objects, count(DISTINCT account_id) AS accounts
        FROM (SELECT DISTINCT from_actor, to_actor, account_id, object_id FROM _handoffs)
        GROUP BY ALL
    ),
    stalls AS (
        SELECT from_actor, to_actor, count(*) AS stalled_objects
        FROM _last_handoff WHERE stalled GROUP BY ALL
    )
    SELECT p.from_actor, p.to_actor, p.handoffs, ob.objects, ob.accounts,
           round(p.median_latency, 3) AS median_latency_hours,
           round(p.p90, 3) AS p90_latency_hours,
           round(p.mean_latency, 3) AS mean_latency_hours,
           coalesce(s.stalled_objects, 0) AS stalled_objects,
           round(coalesce(s.stalled_objects, 0) / ob.objects, 4) AS stall_rate
    FROM per_pair p
    JOIN objects ob USING (from_actor, to_actor)
    LEFT JOIN stalls s USING (from_actor, to_actor)
"""


def _pairs(store: Store, request: HandoffsRequest) -> pd.DataFrame:
    return store.df(PAIRS_SQL + " ORDER BY handoffs DESC, from_actor, to_actor LIMIT ?",
                    [request.limit])


def _bottlenecks(store: Store, request: HandoffsRequest) -> pd.DataFrame:
    """Pairs ranked by how much slower than the typical handoff they are, and how often work
    stalls after them; with the accounts that lose the most time there."""
    return store.df(
        f"""
        WITH pairs AS ({PAIRS_SQL}),
        overall AS (SELECT median(latency_hours) AS median_all FROM _handoffs),
        excess AS (
            SELECT h.from_actor, h.to_actor, h.account_id,
                   sum(greatest(h.latency_hours - o.median_all, 0)) AS excess_hours,
                   count(*) AS n
            FROM _handoffs h, overall o GROUP BY ALL
        ),
        top_accounts AS (
            SELECT from_actor, to_actor,
                   string_agg(account_id || ' (' || CAST(round(excess_hours) AS BIGINT) || 'h)', ', '
                              ORDER BY excess_hours DESC) FILTER (WHERE rank <= 3) AS most_affected_accounts
            FROM (SELECT *, row_number() OVER (PARTITION BY from_actor, to_actor
                                               ORDER BY excess_hours DESC, account_id) AS rank
                  FROM excess)
            GROUP BY ALL
        )
        SELECT row_number() OVER (ORDER BY latency_ratio DESC, stall_rate DESC, from_actor,
                                          to_actor) AS rank, *
        FROM (
            SELECT p.from_actor, p.to_actor, p.handoffs, p.median_latency_hours,
                   p.p90_latency_hours,
                   round(p.median_latency_hours / nullif(o.median_all, 0), 2) AS latency_ratio,
                   p.stall_rate, p.stalled_objects, t.most_affected_accounts
            FROM pairs p CROSS JOIN overall o
            LEFT JOIN top_accounts t USING (from_actor, to_actor)
            WHERE p.handoffs >= ?
        )
        ORDER BY rank LIMIT ?
        """,
        [request.min_handoffs, request.limit],
    )


def _stalls(store: Store, request: HandoffsRequest) -> pd.DataFrame:
    return store.df(
        """
        SELECT o.account_id, o.object_id, o.events, o.users, o.last_actor AS waiting_after,
               strftime(o.last_ts, '%Y-%m-%dT%H:%M:%SZ') AS last_event_at,
               l.from_actor || ' → ' || l.to_actor AS last_handoff
        FROM _objects o LEFT JOIN _last_handoff l USING (account_id, object_id)
        WHERE o.stalled ORDER BY o.last_ts, o.account_id, o.object_id LIMIT ?
        """,
        [request.limit],
    )


def _chains(store: Store, request: HandoffsRequest) -> pd.DataFrame:
    return store.df(
        f"""
        WITH runs AS (  -- collapse consecutive events by the same actor label
            SELECT account_id, object_id, step, actor,
                   actor IS DISTINCT FROM lag(actor) OVER (
                       PARTITION BY account_id, object_id ORDER BY step) AS new_run
            FROM _object_events
        )
        ,
        per_object AS (  -- a join, not a correlated subquery: Spark has none inside aggregates
            SELECT account_id, object_id, count(*) AS handoffs FROM _handoffs
            GROUP BY account_id, object_id
        )
        SELECT r.account_id, r.object_id,
               string_agg(r.actor, ' → ' ORDER BY r.step) FILTER (WHERE r.new_run) AS chain,
               any_value(o.users) AS users,
               coalesce(any_value(h.handoffs), 0) AS handoffs,
               round({elapsed_sql("any_value(o.first_ts)", "any_value(o.last_ts)")}, 3)
                   AS elapsed_hours,
               any_value(o.reached_final) AS reached_final, any_value(o.stalled) AS stalled
        FROM runs r JOIN _objects o USING (account_id, object_id)
        LEFT JOIN per_object h USING (account_id, object_id)
        GROUP BY r.account_id, r.object_id
        ORDER BY r.account_id, r.object_id LIMIT ?
        """,
        [request.limit],
    )


VIEWS = {"pairs": _pairs, "bottlenecks": _bottlenecks, "stalls": _stalls, "chains": _chains}
PAIR_VIEWS = ("pairs", "bottlenecks", "stalls")  # read only the actors and times of handoffs


def run(store: Store, settings, request: HandoffsRequest) -> pd.DataFrame:
    # Temp tables live on this thread's own cursor, so concurrent runs do not collide.
    try:
        handoff_tables(store, settings, request.as_of, request.level, request.account,
                       request.lookback_days, request.view)
        return VIEWS[request.view](store, request)
    finally:
        drop_handoff_tables(store)


register(Analysis(
    name="handoffs",
    summary="Handoffs of shared objects between roles/units/users: count, median and p90 "
            "latency, stall rate; bottlenecks ranked; stalled objects; per-object chains.",
    request=HandoffsRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
