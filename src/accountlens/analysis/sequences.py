"""Influence sequences: ordered multi-user behaviours inside an account that precede an outcome.

A *case* is one outcome of an account (renewal, expansion, contraction, churn, conversion);
its window is the `sequences.lookback_days` before the outcome date. A *step* is
`role: event` (role at event time). A pair `A → B` holds in a case when, after the first A in
the window, the next B comes within `sequences.span_days`; a triple extends a pair the same
way. For the target outcome K, each pattern P reports: cases with P and K, cases with P,
support = cases(P and K) / cases, confidence = cases(P and K) / cases(P), and
lift = confidence / (cases(K) / cases), and the one-sided Fisher exact p-value (with a
Benjamini–Hochberg q-value) by which patterns are ranked. Only *productive* patterns are
listed: more predictive (higher confidence) than each of their sub-patterns.

`view=unlocks` answers "does junior activity unlock supervisor interest": for each role pair
(junior J, more senior S, order from `roles.seniority`), how often the first activity of S in
an account comes within the span after activity of J.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from accountlens.analysis.registry import (
    Analysis,
    AnalysisRequest,
    day_end,
    elapsed_sql,
    register,
    resolve_as_of,
    within_days_sql,
)
from accountlens.model.entities import OUTCOME_KINDS
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd


class SequencesRequest(AnalysisRequest):
    level: Literal["role"] = Field(default="role", description="steps are `role: event` (only level)")
    outcome: Literal[OUTCOME_KINDS] = Field(  # type: ignore[valid-type]
        default="renewal", description="the outcome whose precursors are sought")
    view: Literal["patterns", "unlocks"] = Field(default="patterns", description="patterns or unlocks")
    length: int = Field(default=3, ge=2, le=3, description="longest pattern: pairs (2) or also triples (3)")
    span_days: int | None = Field(default=None, ge=1, le=3650, description="max days between steps (config default)")
    min_support: int | None = Field(default=None, ge=1, description="least cases with pattern and outcome")
    all_patterns: bool = Field(default=False, description="also list patterns no more predictive than their parts")


def _cases_and_steps(store: Store, settings, request: SequencesRequest, as_of: dt.date) -> None:
    """Temp tables `_cases`, `_steps` (the `max_tokens` steps seen in most cases, numbered),
    `_firsts` (first and last time of each step in each case) and `_occ` (every occurrence).
    Steps are integers from here on: joins and ASOF lookups on them are far cheaper than on
    `role: event` strings, and the strings are built once per step, not per event."""
    cfg = settings.sequences
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _cases AS
        SELECT CAST(row_number() OVER (ORDER BY account_id, date, kind) AS INTEGER) AS case_id,
               account_id, kind, CAST(date AS TIMESTAMPTZ) AS outcome_at,
               CAST(date AS TIMESTAMPTZ) - to_days(CAST($lookback AS INTEGER)) AS window_start
        FROM outcomes
        WHERE date <= $as_of AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
        """,
        {"as_of": as_of, "account": request.account, "lookback": cfg.lookback_days},
    )
    case_events = """
        FROM _cases c JOIN events e
          ON e.account_id = c.account_id AND e.timestamp < c.outcome_at
         AND e.timestamp >= c.window_start
    """
    case_filter = "e.type IN ('track', 'page', 'screen') AND e.role IS NOT NULL AND e.name IS NOT NULL"
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _case_steps AS
        SELECT c.case_id, e.role, e.name, min(e.timestamp) AS ts, max(e.timestamp) AS last_ts
        {case_events} WHERE {case_filter} GROUP BY ALL
        """
    )
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _steps AS
        SELECT CAST(row_number() OVER (ORDER BY cases DESC, step) AS INTEGER) AS step_id, *
        FROM (SELECT role, name, role || ': ' || name AS step, count(*) AS cases
              FROM _case_steps GROUP BY role, name ORDER BY cases DESC, step LIMIT ?)
        """,
        [cfg.max_tokens],
    )
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _firsts AS
        SELECT f.case_id, s.step_id AS step, f.ts, f.last_ts
        FROM _case_steps f JOIN _steps s USING (role, name)
        """
    )
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _occ AS
        SELECT c.case_id, s.step_id AS step, e.timestamp AS ts
        {case_events} JOIN _steps s ON s.role = e.role AND s.name = e.name
        WHERE {case_filter}
        """
    )


def _first_after(asof: bool, probes: str, alias: str, key: str, after: str, found: str) -> str:
    """SQL: the rows of `probes` (columns `case_id`, `key`, `after`, ...) with `found`, the
    first occurrence (`_occ`) of step `key` in the case after `after`. DuckDB finds it by an
    ASOF join; Spark, which has none, by the minimum over the later occurrences."""
    on = f"o.case_id = {alias}.case_id AND o.step = {alias}.{key} AND o.ts > {alias}.{after}"
    if asof:
        return f"SELECT {alias}.*, o.ts AS {found} FROM ({probes}) {alias} ASOF JOIN _occ o ON {on}"
    return (f"SELECT {alias}.*, min(o.ts) AS {found} FROM ({probes}) {alias} "
            f"JOIN _occ o ON {on} GROUP BY ALL")


def _asof(store: Store) -> bool:
    return store.engine_name == "duckdb"  # the one engine with ASOF joins


def _pairs_sql(span: int, asof: bool = True) -> str:
    """Pairs A → B per case: the first B after the first A, within the span. When B's first
    occurrence is already after A it is the answer; only the rest need the ASOF join."""
    later = _first_after(asof, "SELECT case_id, a, b, a_ts FROM probes WHERE b_first <= a_ts",
                         "p", "b", "a_ts", "b_ts")
    return f"""
        CREATE OR REPLACE TEMP TABLE _pairs AS
        WITH probes AS (
            SELECT a.case_id, a.step AS a, b.step AS b, a.ts AS a_ts, b.ts AS b_first
            FROM _firsts a JOIN _firsts b
              ON a.case_id = b.case_id AND a.step <> b.step AND b.last_ts > a.ts
        ),
        later AS ({later})
        SELECT * FROM (
            SELECT case_id, a, b, a_ts, b_first AS b_ts FROM probes WHERE b_first > a_ts
            UNION ALL SELECT * FROM later
        ) WHERE {within_days_sql("a_ts", "b_ts", int(span))}
    """


def _triples_sql(span: int, asof: bool = True) -> str:
    """Triples A → B → C: the first C after the B of a seed pair, within the span (the same
    shortcut as for pairs: C's first occurrence after B needs no lookup)."""
    later = _first_after(asof, "SELECT case_id, a, b, c, b_ts FROM probes WHERE c_first <= b_ts",
                         "q", "c", "b_ts", "c_ts")
    return f"""
        CREATE OR REPLACE TEMP TABLE _triples AS
        WITH probes AS (
            SELECT p.case_id, p.a, p.b, c.step AS c, p.b_ts, c.ts AS c_first
            FROM _pairs p JOIN _frequent_pairs f ON f.a = p.a AND f.b = p.b
            JOIN _firsts c ON c.case_id = p.case_id AND c.step <> p.a AND c.step <> p.b
                          AND c.last_ts > p.b_ts
        ),
        later AS ({later})
        SELECT case_id, a, b, c FROM (
            SELECT case_id, a, b, c, b_ts, c_first AS c_ts FROM probes WHERE c_first > b_ts
            UNION ALL SELECT * FROM later
        ) WHERE {within_days_sql("b_ts", "c_ts", int(span))}
    """


# Per-pattern case counts, grouped on the integer step columns; each (case, pattern) row is
# unique, so plain counts suffice. Names are joined to the (few) groups afterwards.
_COUNTED = """
    SELECT {cols}, count(*) AS pattern_cases, count(*) FILTER (WHERE k.kind = $target) AS outcome_cases
    FROM {source} JOIN _cases k USING (case_id) GROUP BY {cols}
"""
COUNTS_SQL = {
    1: f"""SELECT sa.step AS pattern, 1 AS steps, pattern_cases, outcome_cases
           FROM ({_COUNTED.format(cols="step", source="_firsts")}) n
           JOIN _steps sa ON sa.step_id = n.step""",
    2: f"""SELECT sa.step || ' → ' || sb.step AS pattern, 2 AS steps, pattern_cases, outcome_cases
           FROM ({_COUNTED.format(cols="a, b", source="_pairs")}) n
           JOIN _steps sa ON sa.step_id = n.a JOIN _steps sb ON sb.step_id = n.b""",
    3: f"""SELECT sa.step || ' → ' || sb.step || ' → ' || sc.step AS pattern, 3 AS steps,
                  pattern_cases, outcome_cases
           FROM ({_COUNTED.format(cols="a, b, c", source="_triples")}) n
           JOIN _steps sa ON sa.step_id = n.a JOIN _steps sb ON sb.step_id = n.b
           JOIN _steps sc ON sc.step_id = n.c""",
}
TRIPLE_SEEDS = 30  # triples grow from this many of the most significant productive pairs


def _counts(store: Store, length: int, target: str, cases: int, target_cases: int) -> pd.DataFrame:
    stats = store.df(COUNTS_SQL[length], {"target": target})
    stats["cases"] = cases
    stats["support"] = (stats.outcome_cases / cases).round(4)
    stats["confidence"] = (stats.outcome_cases / stats.pattern_cases).round(4)
    stats["lift"] = (stats.confidence / (target_cases / cases)).round(3)
    return stats


def _patterns(store: Store, settings, request: SequencesRequest) -> pd.DataFrame:
    cfg = settings.sequences
    span = request.span_days or cfg.span_days
    min_support = request.min_support or cfg.min_support
    cases = store.scalar("SELECT count(*) FROM _cases")
    target_cases = store.scalar("SELECT count(*) FROM _cases WHERE kind = ?", [request.outcome])
    import pandas as pd
    import pyarrow as pa

    if not target_cases:
        return pd.DataFrame()
    store.execute(_pairs_sql(span, _asof(store)))
    stats = pd.concat([_counts(store, n, request.outcome, cases, target_cases) for n in (1, 2)])
    if request.length == 3:
        # Triples extend only the most significant (productive) pairs: every pair is frequent
        # when there are thousands of cases, and growing all of them does not scale.
        seeds = _rank(_productive(stats, min_support, request.all_patterns), target_cases,
                      TRIPLE_SEEDS)
        ids: dict[str, int] = dict(store.df("SELECT step, step_id FROM _steps")
                                   .itertuples(index=False))
        pairs = [p.split(" → ") for p in seeds.pattern] if not seeds.empty else []
        frequent = pa.table({"a": pa.array([ids[p[0]] for p in pairs], pa.int32()),
                             "b": pa.array([ids[p[1]] for p in pairs], pa.int32())})
        with store.registered("_seed_pairs", frequent):
            store.execute("CREATE OR REPLACE TEMP TABLE _frequent_pairs AS SELECT * FROM _seed_pairs")
        store.execute(_triples_sql(span, _asof(store)))
        stats = pd.concat([stats, _counts(store, 3, request.outcome, cases, target_cases)])
    stats = _productive(stats.reset_index(drop=True), min_support, request.all_patterns)
    return _rank(stats, target_cases, request.limit)


def _sub_patterns(pattern: str) -> list[str]:
    """Generalizations that hold in every case the pattern holds in: its single steps and, for
    a triple A → B → C, the pair A → B it was grown from (A → C, B → C need not hold)."""
    steps = pattern.split(" → ")
    subs = list(steps)
    if len(steps) == 3:
        subs.append(f"{steps[0]} → {steps[1]}")
    return subs


def _productive(stats: pd.DataFrame, min_support: int, keep_all: bool) -> pd.DataFrame:
    """Keep multi-step patterns significantly more predictive than every generalization.

    `trainer: Training Completed → approver: Workflow Approved` only restates "a trainer
    completed training" when approvals happen everywhere. For each pattern P, G is its
    sub-pattern with the highest confidence; `improvement` = confidence(P) − confidence(G) and
    `improvement_p` is the one-sided Fisher exact test, among the cases with G, of "P present"
    vs the outcome (Webb's productive rules). Kept: improvement > 0 and improvement_p < 0.01
    (stricter than the usual 0.05 because many patterns are tried).
    """
    import numpy as np
    from scipy import stats as sps

    by_name = stats.set_index("pattern")
    confidence = dict(zip(stats.pattern, stats.confidence))  # plain dict: 100k+ lookups
    multi = stats[(stats.steps >= 2) & (stats.outcome_cases >= min_support)].copy()
    best_sub = []
    for pattern in multi.pattern:
        subs = [s for s in _sub_patterns(pattern) if s in confidence]
        best_sub.append(max(subs, key=confidence.__getitem__) if subs else None)
    multi["generalization"] = best_sub
    known = multi.generalization.notna()
    g_cases = multi.generalization.map(by_name.pattern_cases).where(known, multi.cases)
    g_outcome = multi.generalization.map(by_name.outcome_cases).where(known, multi.outcome_cases)
    multi["improvement"] = (multi.confidence - g_outcome / g_cases).round(4)
    multi["improvement_p"] = np.round(sps.hypergeom.sf(
        multi.outcome_cases - 1, g_cases, g_outcome, multi.pattern_cases), 6)
    if keep_all or multi.empty:
        return multi
    return multi[(multi.improvement > 0) & (multi.improvement_p < 0.01)]


def _rank(stats: pd.DataFrame, target_cases: int, limit: int) -> pd.DataFrame:
    """Rank patterns by significance, not lift alone: a rare pattern seen in three renewals has
    a high lift by chance. p_value is the one-sided Fisher exact test (hypergeometric tail) of
    pattern vs outcome; q_value controls the false discovery rate over all patterns tested."""
    import numpy as np
    from scipy import stats as sps

    if stats.empty:
        return stats.assign(p_value=[], q_value=[]).reset_index(drop=True)
    p = sps.hypergeom.sf(stats.outcome_cases - 1, stats.cases, target_cases, stats.pattern_cases)
    stats = stats.assign(p_value=np.round(p, 6),
                         q_value=np.round(sps.false_discovery_control(p), 6))
    stats = stats.sort_values(["p_value", "steps", "lift", "pattern"],
                              ascending=[True, True, False, True])
    return stats.head(limit).reset_index(drop=True)


def _unlocks(store: Store, settings, request: SequencesRequest, as_of: dt.date) -> pd.DataFrame:
    span = request.span_days or settings.sequences.span_days
    within = within_days_sql("p.junior_ts", "p.first_ts", int(span))
    seniority = list(settings.roles.seniority)
    end = day_end(as_of)
    # The roles and their ranks as a VALUES list of parameters (every engine reads it).
    roles = {f"role_{rank}": role for rank, role in enumerate(seniority, start=1)}
    ranks = ", ".join(f"(CAST(${name} AS VARCHAR), {rank})"
                      for rank, name in enumerate(roles, start=1)) or "(CAST(NULL AS VARCHAR), 0)"
    if _asof(store):
        preceded = """SELECT p.*, a.ts AS junior_ts FROM probes p ASOF JOIN activity a
              ON a.account_id = p.account_id AND a.role = p.junior AND a.ts < p.first_ts"""
    else:  # the latest junior activity before, as a maximum (no ASOF join)
        preceded = """SELECT p.*, max(a.ts) AS junior_ts FROM probes p JOIN activity a
              ON a.account_id = p.account_id AND a.role = p.junior AND a.ts < p.first_ts
              GROUP BY ALL"""
    return store.df(
        f"""
        WITH ranks AS (SELECT * FROM (VALUES {ranks}) AS r(role, rank)),
        activity AS (
            SELECT e.account_id, e.role, e.timestamp AS ts FROM events e JOIN ranks USING (role)
            WHERE e.type IN ('track', 'page', 'screen') AND e.actor_kind = 'human'
              AND e.account_id IS NOT NULL AND e.timestamp < $end
              AND (CAST($account AS VARCHAR) IS NULL OR e.account_id = $account)
        ),
        firsts AS (SELECT account_id, role, min(ts) AS first_ts FROM activity GROUP BY ALL),
        probes AS (  -- every senior role's first activity, paired with every more junior role
            SELECT s.account_id, j.role AS junior, s.role AS senior, s.first_ts
            FROM firsts s JOIN ranks rs ON rs.role = s.role
            JOIN ranks j ON j.rank < rs.rank
        ),
        preceded AS ({preceded}),
        junior_accounts AS (SELECT role AS junior, count(*) AS accounts FROM firsts GROUP BY ALL)
        SELECT p.junior, p.senior, any_value(ja.accounts) AS accounts_with_junior,
               count(*) FILTER (WHERE {within}) AS senior_first_active_after,
               round(count(*) FILTER (WHERE {within}) / any_value(ja.accounts), 4) AS share,
               round(median({elapsed_sql("p.junior_ts", "p.first_ts", "days")})
                     FILTER (WHERE {within}), 2) AS median_lag_days
        FROM preceded p JOIN junior_accounts ja USING (junior)
        GROUP BY p.junior, p.senior
        ORDER BY share DESC, senior_first_active_after DESC, p.junior, p.senior
        LIMIT $limit
        """,
        {**roles, "end": end, "account": request.account, "limit": request.limit},
    )


def run(store: Store, settings, request: SequencesRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    if request.view == "unlocks":
        return _unlocks(store, settings, request, as_of)
    try:
        _cases_and_steps(store, settings, request, as_of)
        return _patterns(store, settings, request)
    finally:
        for table in ("_cases", "_case_steps", "_steps", "_occ", "_firsts", "_pairs",
                      "_frequent_pairs", "_triples"):
            store.execute(f"DROP TABLE IF EXISTS {table}")


register(Analysis(
    name="sequences",
    summary="Ordered (role: event) pairs and triples inside accounts that precede an outcome "
            "more often than baseline (support, confidence, lift), and junior→senior unlocks.",
    request=SequencesRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
