"""Events as a lake (docs/lake.md): load throughput into a lake workspace against the same
load into the DuckDB events table, the same events in the same process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from accountlens.ingest import loader
from accountlens.workspace import Workspace
from benchmarks.datagen import dataset
from benchmarks.loader_scale import _segments
from benchmarks.registry import Context, Row, Target, benchmark

LIVE_EVENTS = 3_000  # about a second of heavy traffic (docs/ingestion.md), on one day


def _workspace(folder: Path, lake: bool) -> Workspace:
    ws = Workspace.init(folder)
    if lake:
        ws.enable_lake()
    return ws


def _import(folder: Path, jsonl: Path, lake: bool) -> tuple[float, int]:
    """(seconds, stored events) of `import_events` of the whole file, one pipeline run."""
    ws = _workspace(folder, lake)
    try:
        started = time.perf_counter()
        ws.import_events(jsonl)
        seconds = time.perf_counter() - started
        return seconds, int(ws.store.scalar("SELECT count(*) FROM events"))
    finally:
        ws.close()


def _loader(folder: Path, jsonl: Path, lake: bool) -> dict:
    """The server's loader (48 MB batches of 8 MB segments, one transaction each), then one
    live batch of LIVE_EVENTS events on the last day into the loaded workspace."""
    ws = _workspace(folder, lake)
    try:
        paths = _segments(jsonl, ws.log_dir / "bench")
        batches = len(loader._batches(paths))
        started = time.perf_counter()
        loader._load(ws.store, ws.config.ingest, ws.log_dir / "bench", paths)
        seconds = time.perf_counter() - started
        last = ws.store.scalar("SELECT max(timestamp) FROM events")
        live = folder.parent / "live.jsonl"
        live.write_text("".join(json.dumps({
            "type": "track", "messageId": f"live-{i}", "userId": f"live-user-{i % 50}",
            "event": "Report Created", "timestamp": last.isoformat()}) + "\n"
            for i in range(LIVE_EVENTS)))
        # a segment name the first load did not use (a loaded name is skipped as loaded)
        segment = _segments(live, ws.log_dir / "live")[0]
        segment = segment.rename(segment.with_name("seg-9000000000000001.jsonl"))
        started = time.perf_counter()
        loader._load(ws.store, ws.config.ingest, ws.log_dir / "live", [segment])
        live_seconds = time.perf_counter() - started
        stored = int(ws.store.scalar("SELECT count(*) FROM events"))
        status = ws.lake_status()
        size = sum(p.stat().st_size for p in folder.glob("accountlens.duckdb*"))
    finally:
        ws.close()
    return {"seconds": seconds, "batches": batches, "live_seconds": live_seconds,
            "stored": stored, "status": status, "db_bytes": size}


@benchmark("lake", "Events as a lake: loading into Parquet files vs the DuckDB table", order=57,
           requires=("datagen",))
def lake_benchmark(ctx: Context) -> list[Row]:
    """The generated JSONL loaded into a fresh workspace in table mode and in lake mode
    (`[workspace] events_storage`, docs/lake.md): once by `import_events` (one pipeline run,
    one transaction), once through the server's loader (48 MB batches of 8 MB log segments,
    one transaction each: every batch appends to the day files it touches, which rewrites
    them), then a live batch of 3,000 events of the last day into each loaded workspace.
    Lake mode writes each batch as zstd Parquet per day and renames the files in after the
    commit; target: at least 70% of table mode's rate."""
    data = dataset(ctx)
    rows: list[Row] = []
    for mode in ("table", "lake"):
        seconds, stored = _import(ctx.scratch(f"lake-import-{mode}") / "ws", data.jsonl,
                                  mode == "lake")
        rows.append(Row(f"lake.import_{mode}", f"import_events(JSONL), {mode} mode",
                        data.events / seconds, "events/s",
                        baseline="lake.import_table" if mode == "lake" else None,
                        target=Target(">=", 0.70) if mode == "lake" else None,
                        note=f"{seconds:.1f} s; {stored:,} stored"))
        ctx.log(f"lake: import in {mode} mode {seconds:.1f} s")
    runs = {}
    for mode in ("table", "lake"):
        runs[mode] = run = _loader(ctx.scratch(f"lake-loader-{mode}") / "ws", data.jsonl,
                                   mode == "lake")
        rows.append(Row(f"lake.loader_{mode}", f"the server's loader, {mode} mode",
                        data.events / run["seconds"], "events/s",
                        baseline="lake.loader_table" if mode == "lake" else None,
                        target=Target(">=", 0.70) if mode == "lake" else None,
                        note=f"{run['seconds']:.1f} s, {run['batches']} batches; "
                             f"{run['stored']:,} stored after the live batch"))
        ctx.log(f"lake: loader in {mode} mode {run['seconds']:.1f} s")
    for mode in ("table", "lake"):
        rows.append(Row(f"lake.live_{mode}", f"a live batch of {LIVE_EVENTS:,} events, {mode} mode",
                        runs[mode]["live_seconds"], "s",
                        note=f"into the {data.events:,}-event workspace"))
    status = runs["lake"]["status"]
    rows += [
        Row("lake.files", "lake: files / days", status["files"], "files",
            note=f"{status['days']} days"),
        Row("lake.bytes", "lake: Parquet bytes of the events", status["bytes"] / 1e6, "MB",
            note=f"DuckDB file besides: {runs['lake']['db_bytes'] / 1e6:.0f} MB; table mode's "
                 f"DuckDB file: {runs['table']['db_bytes'] / 1e6:.0f} MB"),
    ]
    return rows
