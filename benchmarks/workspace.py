"""The analytics workspace shared by the metric, analysis, scaling and dashboard benchmarks:
generated events with matching CRM data, imported once per size and run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from accountlens.model import rollup
from accountlens.workspace import DB_FILE, Workspace
from benchmarks.datagen import END, connect, dataset, entities, scale
from benchmarks.registry import Context, Row, benchmark


@dataclass(frozen=True)
class BenchWorkspace:
    """A built, closed workspace folder (benchmarks open it, in this process or in children)."""

    path: Path
    events: int
    accounts: int
    users: int
    generate_seconds: float
    import_seconds: float
    rollup_seconds: float


def _write_outcomes(n_accounts: int, path: Path) -> None:
    """Every account has one outcome in the last 150 days (spread by account number, so the
    outcome benchmarks' cut-offs have labels): renewal for two thirds, churn otherwise."""
    con = connect()
    try:
        con.execute(
            f"""COPY (SELECT 'acct-' || a AS account_id,
                      CASE WHEN a % 3 = 0 THEN 'churn' ELSE 'renewal' END AS kind,
                      DATE '{END[:10]}' - CAST((a * 37) % 150 AS INTEGER) AS date FROM range({n_accounts}) t(a)) TO ? (HEADER)""",
            [str(path)])
    finally:
        con.close()


def _build(ctx: Context, events: int, population: int) -> BenchWorkspace:
    started = time.perf_counter()
    data = dataset(ctx, events, population, parquet=False)
    generate_seconds = time.perf_counter() - started
    folder = ctx.scratch(f"workspace-{events}")
    ws = Workspace.init(folder / "ws", name=f"bench-{events}")
    try:
        for kind, path in entities(population, folder).items():
            ws.import_entities(kind, path)
        n_accounts, n_users = scale(population)
        _write_outcomes(n_accounts, folder / "outcomes.csv")
        ws.import_entities("outcomes", folder / "outcomes.csv")
        started = time.perf_counter()
        ws.import_events(data.jsonl)
        import_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rollup.ensure_fresh(ws.store, settings=ws.config.metrics)  # else on the first query
        ws.store.execute("CHECKPOINT")
        rollup_seconds = time.perf_counter() - started
    finally:
        ws.close()
    if not ctx.keep_data and events != ctx.ingest_events:
        data.jsonl.unlink(missing_ok=True)  # imported, and no ingestion benchmark reads it
    return BenchWorkspace(folder / "ws", events, n_accounts, n_users, generate_seconds,
                          import_seconds, rollup_seconds)


def bench_workspace(ctx: Context, events: int | None = None) -> BenchWorkspace:
    """The run's workspace of `events` (default `ctx.events`) events, built on first use.

    Smaller sizes draw their events from the population of the full size, so a scaling
    comparison changes the number of events only."""
    events = events or ctx.events
    population = max(events, ctx.events)
    return ctx.cached(f"workspace-{events}", lambda: _build(ctx, events, population))


@benchmark("workspace", "Analytics workspace", order=50)
def workspace_benchmark(ctx: Context) -> list[Row]:
    """The workspace every metric, analysis and dashboard benchmark reads: the generated events
    (JSONL, imported through `Workspace.import_events`) with accounts, one membership per user
    (role), one subscription per account (seats, ARR) and one outcome per account in the last
    150 days (renewal for two thirds, churn otherwise). The daily rollup is built once after the import, as the
    first metric query would."""
    bw = bench_workspace(ctx)
    size = (bw.path / DB_FILE).stat().st_size
    return [
        Row("workspace.events", "events in the workspace", bw.events, "events",
            note=f"{bw.accounts:,} accounts, {bw.users:,} users"),
        Row("workspace.generate", "generating the events", bw.generate_seconds, "s"),
        Row("workspace.import_rate", "import_events(JSONL)", bw.events / bw.import_seconds,
            "events/s", note=f"{bw.import_seconds:.1f} s"),
        Row("workspace.rollup", "building the daily rollup", bw.rollup_seconds, "s"),
        Row("workspace.size", "DuckDB file size", size / 1e6, "MB"),
    ]
