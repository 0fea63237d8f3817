"""Runs workspaces live: opens each, replays its log, starts its loader, serves the app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from accountlens.config import CONFIG_FILE, load_config
from accountlens.ingest.loader import BackgroundLoader, load_pending
from accountlens.serve import discovery
from accountlens.serve.collector import (
    GRACEFUL_SHUTDOWN_SECONDS,
    KEEP_ALIVE_SECONDS,
    Collector,
    CollectorFront,
)
from accountlens.serve.collector_pool import CollectorPool, SinkSpec
from accountlens.serve.live import LiveWorkspace
from accountlens.workspace import Workspace

log = logging.getLogger("accountlens.server")
CHECKPOINT_THRESHOLD = "256MB"


class ServeError(RuntimeError):
    """The workspaces asked for cannot be served together; the message says why."""


def check_workspaces(roots: list[Path]) -> None:
    """Refuse workspaces that cannot be told apart: one folder given twice, two with the same
    name (`?workspace=NAME` would reach one of them), one write key in two (its events would
    all go to one of them)."""
    folders: dict[Path, Path] = {}
    names: dict[str, Path] = {}
    keys: dict[str, Path] = {}
    for root in roots:
        folder = root.resolve()
        if folder in folders:
            also = f" (as {folders[folder]} too)" if folders[folder] != root else ""
            raise ServeError(f"{root} is given twice{also}: serve each workspace once")
        folders[folder] = root
        cfg = load_config(root / CONFIG_FILE).workspace
        if cfg.name in names:
            raise ServeError(
                f"{names[cfg.name]} and {root} are both named {cfg.name!r} ([workspace] name in "
                f"their {CONFIG_FILE}): `?workspace={cfg.name}` could reach only one; give each "
                "its own name")
        names[cfg.name] = root
        for key in dict.fromkeys(cfg.write_keys):
            if key in keys:
                raise ServeError(
                    f"the write key {key[:6]}… is in both {keys[key]} and {root} ([workspace] "
                    f"write_keys): its events would all go to one of them; give each workspace "
                    "keys of its own")
            keys[key] = root


def start_workspace(root: Path) -> LiveWorkspace:
    workspace = Workspace.open(root)
    # The server is long-lived: bound DuckDB's memory (default is 80 % of RAM).
    workspace.store.set_option("memory_limit", workspace.config.serve.memory_limit)
    # The loader commits every `load_interval_seconds`; with DuckDB's default 16 MB WAL threshold
    # nearly every commit also checkpoints (a third of the loader's time). Checkpointing every
    # 256 MB of WAL loads ~40% faster at the same peak memory; a crash replays at most that much.
    workspace.store.set_option("checkpoint_threshold", CHECKPOINT_THRESHOLD)
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
                         collectors.timeout, _body_timeout(lives))
    pool.start()
    for index, live in enumerate(lives):
        live.loader.event_log = pool.log(live.log, index)
    return pool


def _body_timeout(lives: list[LiveWorkspace]) -> float:
    # a setting of the server, like its port: the first workspace's
    return lives[0].workspace.config.serve.body_read_timeout_seconds


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

    check_workspaces(roots)
    try:
        for root in roots:
            lives.append(start_workspace(root))
    except BaseException:
        for live in lives:
            stop_workspace(live)
        raise
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
    return CollectorFront(Collector([live.sink for live in lives], _body_timeout(lives)),
                          create_app(list(lives), lifespan=lifespan))


def serve(roots: list[Path], host: str, port: int, log_level: str = "warning",
          collectors: Collectors = Collectors()) -> None:
    app = build_app(roots, collectors, log_level)
    shown = f"[{host}]" if ":" in host else host
    # `accountlens import` finds the server by this (serve/discovery.py); 0.0.0.0 is reached on loopback
    local = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(shown, shown)
    discovery.announce(roots, f"http://{local}:{port}")
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS,
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
    finally:
        discovery.withdraw(roots)
