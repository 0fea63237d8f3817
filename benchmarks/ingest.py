"""Bulk ingestion benchmarks: DuckDB's own JSON reading (the baseline) and `Workspace.import_events`."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

from accountlens.ingest import pipeline
from accountlens.workspace import Workspace
from benchmarks.datagen import connect, dataset
from benchmarks.measure import cpu_seconds
from benchmarks.registry import Context, Row, Target, benchmark

BASELINE = "baseline.limit"
BASELINE_READERS = {
    "read_json": ("DuckDB read_json → table", "typed columns, nested structs auto-detected"),
    "read_ndjson_objects": ("DuckDB read_ndjson_objects → table", "one JSON value per line"),
}


def _read_into_table(reader: str, jsonl: Path, db: Path) -> float:
    """Seconds to read `jsonl` into a table of a fresh DuckDB file, persisted (checkpointed)."""
    db.unlink(missing_ok=True)
    con = connect(str(db))
    try:
        started = time.perf_counter()
        con.execute(f"CREATE TABLE events AS SELECT * FROM {reader}(?)", [str(jsonl)])
        con.execute("CHECKPOINT")
        return time.perf_counter() - started
    finally:
        con.close()
        db.unlink(missing_ok=True)
        Path(str(db) + ".wal").unlink(missing_ok=True)


@benchmark("baseline", "Baseline: DuckDB reading the JSONL", order=20, requires=("datagen",))
def baseline_benchmark(ctx: Context) -> list[Row]:
    """How fast DuckDB alone reads the generated JSONL into a table of a fresh database file:
    the practical limit of this stack (DuckDB + JSON), against which every ingestion path is
    measured. Best of two runs (one in quick mode); the file is in the OS page cache for every
    contender, and every contender writes to a DuckDB file."""
    data = dataset(ctx)
    folder = ctx.scratch("baseline")
    rows = []
    for reader, (figure, note) in BASELINE_READERS.items():
        seconds = min(_read_into_table(reader, data.jsonl, folder / "baseline.duckdb")
                      for _ in range(1 if ctx.quick else 2))
        rows.append(Row(f"baseline.{reader}", figure, data.events / seconds, "events/s",
                        note=f"{note}; {seconds:.2f} s"))
    best = max(rows, key=lambda row: row.value)
    rows.append(Row(BASELINE, "baseline: the faster of the two", best.value, "events/s",
                    note=f"`{best.key}`; every ratio below is against this row"))
    return rows


@contextlib.contextmanager
def timed_steps(seconds: dict[str, float]) -> Iterator[None]:
    """Time each step of the load pipeline (wrapping `pipeline.STEPS` for the duration)."""
    original = pipeline.STEPS

    def timed(step: pipeline.Step) -> pipeline.Step:
        def run(store, cfg, batch):
            started = time.perf_counter()
            try:
                step.run(store, cfg, batch)
            finally:
                seconds[step.name] = seconds.get(step.name, 0.0) + time.perf_counter() - started
        run.__name__ = step.name
        return dataclasses.replace(step, run=run)

    pipeline.STEPS = tuple(timed(step) for step in original)
    try:
        yield
    finally:
        pipeline.STEPS = original


def _import(folder: Path, path: Path, steps: dict[str, float] | None = None):
    """(seconds, CPU seconds, LoadResult, stored events) of importing `path` into a fresh
    workspace."""
    ws = Workspace.init(folder)
    try:
        with timed_steps(steps) if steps is not None else contextlib.nullcontext():
            started, cpu_started = time.perf_counter(), cpu_seconds()
            result = ws.import_events(path)
            seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        stored = ws.store.scalar("SELECT count(*) FROM events")
    finally:
        ws.close()
    return seconds, cpu, result, stored


# The write floor: the same JSONL read by DuckDB and written into the events table of a fresh
# workspace by one bare statement, with the few fields that map directly (no validation,
# dedup, profiles, memberships or attribution): what an import cannot beat in this schema.
_FLOOR_COLUMNS = {**dict.fromkeys(("type", "messageId", "userId", "anonymousId", "event", "name",
                                   "timestamp", "sentAt"), "VARCHAR"),
                  **dict.fromkeys(("properties", "traits", "context"), "JSON")}
FLOOR_SQL = """
    INSERT INTO events
    SELECT messageId, type, coalesce(event, name), userId, anonymousId, userId,
           context ->> 'groupId', NULL, 'unattributed', NULL, NULL, properties ->> 'product',
           properties ->> 'object_id', 'human', CAST(timestamp AS TIMESTAMPTZ),
           CAST(timestamp AS TIMESTAMPTZ), CAST(sentAt AS TIMESTAMPTZ), now(), properties,
           traits, context, 'floor'
    FROM read_json(?, format = 'newline_delimited', columns = $columns)
"""


def write_floor(folder: Path, path: Path) -> tuple[float, float, int]:
    """(seconds, CPU seconds, rows) of `FLOOR_SQL` into a fresh workspace, committed and
    checkpointed."""
    ws = Workspace.init(folder)
    try:
        started, cpu_started = time.perf_counter(), cpu_seconds()
        sql = FLOOR_SQL.replace("$columns", "{" + ", ".join(
            f"'{name}': '{kind}'" for name, kind in _FLOOR_COLUMNS.items()) + "}")
        with ws.store.transaction():
            ws.store.execute(sql, [str(path)])
        ws.store.execute("CHECKPOINT")
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        return seconds, cpu, ws.store.scalar("SELECT count(*) FROM events")
    finally:
        ws.close()


@benchmark("bulk_import", "Bulk import (`Workspace.import_events`)", order=30,
           requires=("baseline",))
def bulk_import_benchmark(ctx: Context) -> list[Row]:
    """`Workspace.import_events(file)` of the same JSONL into a fresh workspace: staging, the whole
    load pipeline (validate, dedup, profiles, memberships, attribution) and the commit. The
    Parquet import reads the same events from flattened columns. The step rows show where the
    time of the JSONL import goes (wall time of each pipeline step)."""
    data = dataset(ctx)
    steps: dict[str, float] = {}
    seconds, cpu, result, stored = _import(ctx.scratch("import-jsonl"), data.jsonl, steps)
    rows = [
        Row("bulk_import.jsonl", "import_events(JSONL)", data.events / seconds, "events/s",
            baseline=BASELINE, target=Target(">=", 0.70),
            note=f"{seconds:.1f} s; {result.inserted:,} inserted, {result.quarantined:,} "
                 f"quarantined; {stored:,} in the store"),
        Row("bulk_import.stored", "events stored / generated", stored / data.events, "ratio",
            target=Target("==", 1.0, on="value")),
    ]
    floor_seconds, floor_cpu, floor_rows = write_floor(ctx.scratch("import-floor") / "ws", data.jsonl)
    rows += [
        Row("bulk_import.floor", "write floor: `INSERT INTO events SELECT … FROM read_json`",
            data.events / floor_seconds, "events/s", baseline=BASELINE,
            note=f"{floor_seconds:.1f} s, {floor_rows:,} rows, into a fresh workspace's events "
                 "table (committed, checkpointed); the fields that map directly, nothing checked"),
        Row("bulk_import.jsonl_vs_floor", "import_events(JSONL) against the write floor",
            data.events / seconds, "events/s", baseline="bulk_import.floor",
            target=Target(">=", 0.80), note="the same run, the same file"),
        # CPU time is steadier than wall time on a shared machine; the import's work beyond
        # the floor (its checks, dedup, profiles, memberships, attribution) shows here.
        Row("bulk_import.cpu_vs_floor", "the write floor's CPU seconds / the import's",
            floor_cpu / cpu, "ratio",
            note=f"import {cpu:.1f} CPU s, floor {floor_cpu:.1f} CPU s (every thread)"),
    ]
    if data.parquet is not None:
        p_seconds, _, p_result, _ = _import(ctx.scratch("import-parquet"), data.parquet)
        rows.append(Row("bulk_import.parquet", "import_events(Parquet)", data.events / p_seconds,
                        "events/s", baseline=BASELINE,
                        note=f"{p_seconds:.1f} s; {p_result.inserted:,} inserted"))
    pipeline_total = sum(steps.values())
    rows.append(Row("bulk_import.step.staging_and_commit", "  staging, commit, bookkeeping",
                    seconds - pipeline_total, "s", note=f"{(seconds - pipeline_total) / seconds:.0%}"))
    for name, step_seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
        if step_seconds >= 0.005 * seconds:
            rows.append(Row(f"bulk_import.step.{name}", f"  step `{name}`", step_seconds, "s",
                            note=f"{step_seconds / seconds:.0%} of the import"))
    return rows
