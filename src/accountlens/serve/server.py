"""Runs workspaces live: opens each, replays its log, starts its loader, serves the app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from accountlens.ingest.loader import BackgroundLoader, load_pending
from accountlens.serve.collector import Collector, CollectorFront
from accountlens.serve.collector_pool import CollectorPool, SinkSpec
from accountlens.serve.live import LiveWorkspace
from accountlens.workspace import Workspace

log = logging.getLogger("accountlens.server")
CHECKPOINT_THRESHOLD = "256MB"


def start_workspace(root: Path) -> LiveWorkspace:
    workspace = Workspace.open(root)
    # The server is long-lived: bound DuckDB's memory (default is 80 % of RAM).
    workspace.store.execute("SET memory_limit = ?", [workspace.config.serve.memory_limit])
    # The loader commits every `load_interval_seconds`; with DuckDB's default 16 MB WAL threshold
    # nearly every commit also checkpoints (a third of the loader's time). Checkpointing every
    # 256 MB of WAL loads ~40% faster at the same peak memory; a crash replays at most that much.
    workspace.store.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    event_log = workspace.open_log()
    serve = workspace.config.serve
    loader = BackgroundLoader(workspace.store, workspace.config.ingest, event_log,
                              memory_limits=(serve.ingest_memory_limit, serve.memory_limit))
    # Anything acknowledged before a crash is still in the log: load it before serving.
    load_pending(workspace.store, workspace.config.ingest, event_log)
    return LiveWorkspace(workspace, event_log, loader)


def stop_workspace(live: LiveWorkspace) -> None:
    live.loader.stop()
    live.log.close()
    live.workspace.close()


@dataclass(frozen=True)
class Collectors:
    """Collector processes to start (`count` 0: none) and where they listen."""

    count: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    timeout: float = 30.0  # seconds a process may take to answer before it is replaced


def _start_collectors(lives: list[LiveWorkspace], collectors: Collectors,
                      log_level: str) -> CollectorPool:
    specs = [SinkSpec(replace(live.sink, log=None), live.workspace.log_dir,
                      live.workspace.config.ingest.log_segment_bytes, live.workspace.log_floor())
             for live in lives]
    pool = CollectorPool(specs, collectors.host, collectors.port, collectors.count, log_level,
                         collectors.timeout)
    pool.start()
    for index, live in enumerate(lives):
        live.loader.event_log = pool.log(live.log, index)
    return pool


def build_app(roots: list[Path], collectors: Collectors = Collectors(), log_level: str = "warning"):
    from accountlens.api.app import create_app
    from accountlens.serve.warmer import DashboardWarmer

    lives: list[LiveWorkspace] = []
    warmers: list[DashboardWarmer] = []
    pools: list[CollectorPool] = []

    @contextlib.asynccontextmanager
    async def lifespan(app) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for warmer in warmers:
                warmer.stop()
            for pool in pools:  # before the last load, which then takes over their folders
                pool.stop()
            for live in lives:
                stop_workspace(live)

    lives.extend(start_workspace(root) for root in roots)
    if collectors.count:
        try:
            pools.append(_start_collectors(lives, collectors, log_level))
        except RuntimeError:
            for live in lives:
                stop_workspace(live)
            raise
    for live in lives:
        live.loader.start()
    warmers.extend(DashboardWarmer(live) for live in lives)
    for warmer in warmers:
        warmer.start()
    # (a copy typed as the API's view of a live workspace: a list of ours is not one of those)
    return CollectorFront(Collector([live.sink for live in lives]),
                          create_app(list(lives), lifespan=lifespan))


def serve(roots: list[Path], host: str, port: int, log_level: str = "warning",
          collectors: Collectors = Collectors()) -> None:
    app = build_app(roots, collectors, log_level)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
