"""Loader throughput at size: the collector's log loaded into an empty workspace and into the
analytics workspace (10M stored events by default), to show that a load's per-batch cost does
not grow with the store (issue 22)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow.compute as pc

from accountlens.ingest import loader
from accountlens.model import memberships, rollup
from accountlens.workspace import Workspace
from benchmarks import datagen
from benchmarks.ingest import timed_steps
from benchmarks.registry import Context, Row, Target, benchmark
from benchmarks.workspace import bench_workspace

SEGMENT_BYTES = 8 << 20  # the collector's default `ingest.log_segment_bytes`
_DAY_MS = 86_400_000


def live_events(ctx: Context, events: int, population: int) -> Path:
    """`events` new events of the analytics workspace's accounts and users (the same users in
    the same accounts; new message ids), spread over the day after its last one: live
    traffic, as the server's loader meets it."""
    folder = ctx.data_dir / f"live-{events}-of-{population}"
    path = folder / "live.jsonl"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    draws = datagen.draw(events, seed=7, population=population)  # seed 7: the workspace's users
    column = draws.schema.get_field_index("offset_ms")
    draws = draws.set_column(column, "offset_ms", pc.add(
        pc.divide(draws["offset_ms"], datagen.DAYS), datagen.DAYS * _DAY_MS))
    con = datagen.connect()
    try:
        con.register("_draws", draws)
        con.execute(f"CREATE TEMP VIEW _flat AS {datagen._flat_sql(8)}")  # seed 8: new message ids
        columns = [r[0] for r in con.execute("DESCRIBE SELECT * FROM _flat").fetchall()]
        con.execute(f"COPY ({datagen._json_sql(columns)}) TO ? (FORMAT csv, HEADER false, "
                    "QUOTE '', ESCAPE '', DELIMITER '\t')", [str(path)])
    finally:
        con.close()
    return path


def _segments(jsonl: Path, root: Path) -> list[Path]:
    """The events of `jsonl` as log segments of about SEGMENT_BYTES under `root`, as the
    collector leaves them."""
    root.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    out = None
    size = 0
    with open(jsonl, "rb") as source:
        for line in source:
            if out is None or size >= SEGMENT_BYTES:
                if out is not None:
                    out.close()
                paths.append(root / f"seg-{len(paths) + 1:016d}.jsonl")
                out = open(paths[-1], "wb")  # noqa: SIM115 - closed above or below
                size = 0
            out.write(line)
            size += len(line)
    if out is not None:
        out.close()
    return paths


def _load(folder: Path, jsonl: Path) -> dict:
    """Load `jsonl` through the server's loader (`load_pending`'s batches: 48 MB of 8 MB
    segments, one pipeline run and transaction each) into the workspace at `folder`."""
    ws = Workspace.open(folder)
    try:
        # A workspace from before `membership_states` fills them on its first load, once
        # (model/memberships.py `fill_states`): timed apart, as the migration is.
        started = time.perf_counter()
        with ws.store.transaction():
            filled = memberships.fill_states(ws.store)
        fill_seconds = time.perf_counter() - started
        before = ws.store.scalar("SELECT count(*) FROM events")
        root = ws.log_dir / "bench"
        paths = _segments(jsonl, root)
        batches = len(loader._batches(paths))
        steps: dict[str, float] = {}
        with timed_steps(steps):
            started = time.perf_counter()
            result = loader._load(ws.store, ws.config.ingest, root, paths)
            seconds = time.perf_counter() - started
        after = ws.store.scalar("SELECT count(*) FROM events")
        distinct = ws.store.scalar("SELECT count(DISTINCT message_id) FROM events")
        indexed = ws.store.scalar("SELECT count(*) FROM event_ids")
    finally:
        ws.close()
    return {"seconds": seconds, "batches": batches, "steps": steps, "result": result,
            "fill_seconds": fill_seconds, "filled": filled,
            "before": before, "after": after, "distinct": distinct, "indexed": indexed}


def _empty_workspace(ctx: Context, folder: Path, population: int) -> None:
    """A workspace with the analytics workspace's accounts, memberships and subscriptions and
    no events, its rollup kept current as the large one's is."""
    ws = Workspace.init(folder, name="bench-empty")
    try:
        for kind, path in datagen.entities(population, folder.parent).items():
            ws.import_entities(kind, path)
        rollup.ensure_fresh(ws.store, settings=ws.config.metrics)
    finally:
        ws.close()


@benchmark("loader_scale", "Loader at size: an empty workspace vs the analytics workspace",
           order=55, requires=("workspace",))
def loader_scale_benchmark(ctx: Context) -> list[Row]:
    """New events of the analytics workspace's users (new message ids, spread over the day
    after its last event: live traffic) are cut into 8 MB log segments, as the collector
    leaves them, and loaded by the server's loader (`ingest/loader.py`: 48 MB batches, each
    one pipeline run and one transaction, with the rollup kept current) into a copy of the
    analytics workspace, and into a workspace with the same accounts, memberships and
    subscriptions but no events. Same events, same process, one after the other; no memory
    limit (the server loads under `serve.ingest_memory_limit` while events arrive). Target
    (issue 22): the rate into the large workspace at least 80% of the rate into the empty one.
    The step rows show where the time of the large load goes."""
    bw = bench_workspace(ctx)
    events = ctx.ingest_events
    jsonl = live_events(ctx, events, bw.events)
    folder = ctx.scratch("loader-scale")
    _empty_workspace(ctx, folder / "empty" / "ws", bw.events)
    empty = _load(folder / "empty" / "ws", jsonl)
    shutil.rmtree(folder / "empty", ignore_errors=True)
    ctx.log(f"loader_scale: empty workspace loaded in {empty['seconds']:.1f} s")
    shutil.copytree(bw.path, folder / "stored" / "ws")  # the shared workspace stays as it is
    large = _load(folder / "stored" / "ws", jsonl)
    shutil.rmtree(folder / "stored", ignore_errors=True)
    rows = []
    for key, label, run in (("empty", "an empty workspace", empty),
                            ("stored", f"a {bw.events:,}-event workspace", large)):
        result = run["result"]
        exact = (run["after"] - run["before"] == events == result.inserted
                 and run["after"] == run["distinct"] == run["indexed"])
        rows.append(Row(
            f"loader_scale.{key}", f"loader throughput into {label}", events / run["seconds"],
            "events/s", baseline="loader_scale.empty" if key == "stored" else None,
            target=Target(">=", 0.80) if key == "stored" else None,
            note=f"{events:,} events in {run['seconds']:.1f} s, {run['batches']} batches "
                 f"({run['seconds'] / run['batches']:.2f} s each); stored {run['before']:,} → "
                 f"{run['after']:,}" + ("" if exact else " — MISMATCH")))
    rows.append(Row("loader_scale.fill_states", "  once after the upgrade: membership states filled",
                    large["fill_seconds"], "s",
                    note=f"{large['filled']:,} users' identify/group calls replayed when a "
                         "workspace from before `membership_states` first loads; not in the rate"))
    total = large["seconds"]
    for name, seconds in sorted(large["steps"].items(), key=lambda kv: -kv[1]):
        if seconds >= 0.01 * total:
            share = empty["steps"].get(name, 0.0)
            rows.append(Row(f"loader_scale.step.{name}", f"  step `{name}` (large workspace)",
                            seconds / large["batches"], "s",
                            note=f"per batch; {share / empty['batches']:.2f} s into the empty one"))
    other = total - sum(large["steps"].values())
    other_empty = empty["seconds"] - sum(empty["steps"].values())
    rows.append(Row("loader_scale.step.staging_and_commit", "  staging, commit, bookkeeping",
                    other / large["batches"], "s",
                    note=f"per batch; {other_empty / empty['batches']:.2f} s into the empty one"))
    return rows
