"""Runs workspaces live: opens each, replays its log, starts its loader, serves the app."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from accountlens.api.session import COOKIE
from accountlens.config import CONFIG_FILE, load_config
from accountlens.ingest.loader import BackgroundLoader, load_pending
from accountlens.serve import discovery
from accountlens.serve.collector import (
    GRACEFUL_SHUTDOWN_SECONDS,
    KEEP_ALIVE_SECONDS,
    Collector,
    CollectorFront,
    Sink,
)
from accountlens.serve.collector_pool import CollectorPool, SinkSpec
from accountlens.serve.hardening import (
    AccessLog,
    AccessLogTarget,
    ApiRateLimit,
    BodyLimit,
    HostPolicy,
    RateLimit,
    SecurityHeaders,
    TrustedHosts,
)
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


def _sink(live: LiveWorkspace) -> Sink:
    """The collector's view of `live`, with its write keys' rate limit."""
    serve = live.workspace.config.serve
    return replace(live.sink, rate=RateLimit(serve.write_key_rate_limit, serve.write_key_rate_burst))


def _start_collectors(lives: list[LiveWorkspace], collectors: Collectors,
                      log_level: str, hosts: HostPolicy) -> CollectorPool:
    specs = [SinkSpec(replace(_sink(live), log=None), live.workspace.log_dir,
                      live.workspace.config.ingest.log_segment_bytes, live.workspace.log_floor())
             for live in lives]
    pool = CollectorPool(specs, collectors.host, collectors.port, collectors.count, log_level,
                         collectors.timeout, _body_timeout(lives), hosts)
    pool.start()
    for index, live in enumerate(lives):
        live.loader.event_log = pool.log(live.log, index)
    return pool


def _body_timeout(lives: list[LiveWorkspace]) -> float:
    # a setting of the server, like its port: the first workspace's
    return lives[0].workspace.config.serve.body_read_timeout_seconds


def build_app(roots: list[Path], collectors: Collectors = Collectors(), log_level: str = "warning",
              host: str = "127.0.0.1", local_admin_token: str | None = None) -> TrustedHosts:
    """The server's ASGI app for the workspaces `roots`, served on `host`; `local_admin_token`
    (a new random one when None) is the admin token of the CLI on this machine (serve.json)."""
    from accountlens.api.app import create_app
    from accountlens.serve.alert_schedule import AlertSchedule
    from accountlens.serve.retention_schedule import RetentionSchedule
    from accountlens.serve.warmer import DashboardWarmer

    lives: list[LiveWorkspace] = []
    warmers: list[DashboardWarmer] = []
    schedules: list[RetentionSchedule] = []
    alert_schedules: list[AlertSchedule] = []
    pools: list[CollectorPool] = []
    access_logs: list[AccessLog] = []

    @contextlib.asynccontextmanager
    async def lifespan(app) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for warmer in warmers:
                warmer.stop()
            for schedule in schedules:
                schedule.stop()
            for alert_schedule in alert_schedules:
                alert_schedule.stop()
            for pool in pools:  # before the last load, which then takes over their folders
                pool.stop()
            for live in lives:
                stop_workspace(live)
            for access_log in access_logs:
                access_log.close()

    check_workspaces(roots)
    try:
        for root in roots:
            lives.append(start_workspace(root))
    except BaseException:
        for live in lives:
            stop_workspace(live)
        raise
    # settings of the server, like its port: the first workspace's
    serve = lives[0].workspace.config.serve
    hosts = HostPolicy.serving(host, serve.allowed_hosts)
    if collectors.count:
        try:
            pools.append(_start_collectors(lives, collectors, log_level, hosts))
        except RuntimeError:
            for live in lives:
                stop_workspace(live)
            raise
    for live in lives:
        live.loader.start()
    warmers.extend(DashboardWarmer(live) for live in lives)
    for warmer in warmers:
        warmer.start()
    schedules.extend(RetentionSchedule(live) for live in lives)
    for schedule in schedules:
        schedule.start()
    alert_schedules.extend(AlertSchedule(live) for live in lives)
    for alert_schedule in alert_schedules:
        alert_schedule.start()
    # (a copy typed as the API's view of a live workspace: a list of ours is not one of those)
    api = create_app(list(lives), lifespan=lifespan,
                     local_admin_token=local_admin_token or secrets.token_urlsafe(32))
    limited = ApiRateLimit(BodyLimit(api, serve.max_request_bytes),
                           RateLimit(serve.token_rate_limit, serve.token_rate_burst), COOKIE)
    logged = AccessLog(SecurityHeaders(limited), [
        AccessLogTarget(live.workspace.config.workspace.name, live.workspace.root,
                        live.workspace.config.serve.access_log) for live in lives])
    access_logs.append(logged)  # closed by the lifespan
    collector = Collector([_sink(live) for live in lives], _body_timeout(lives))
    # the Host check first, for every request (ingestion, API, pages); the API's middleware
    # only for what the collector passes on
    return TrustedHosts(CollectorFront(collector, logged), hosts)


def _is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _unprotected(roots: list[Path]) -> list[Path]:
    """The workspaces without API tokens: anyone who reaches the server reads them."""
    from accountlens.governance.tokens import TokenError, TokenStore

    def has_tokens(root: Path) -> bool:
        try:
            return TokenStore(root, load_config(root / CONFIG_FILE).workspace.api_tokens).has_tokens()
        except TokenError:  # a damaged tokens.json: the API refuses everyone
            return True

    return [root for root in roots if not has_tokens(root)]


def warn_if_exposed(roots: list[Path], host: str) -> None:
    """Say loudly, on stderr, when a server beyond this machine lets anyone read."""
    if _is_loopback(host):
        return
    open_ones = _unprotected(roots)
    if not open_ones:
        return
    names = ", ".join(str(root) for root in open_ones)
    log.warning(
        "\n%s\nWARNING: accountlens serves %s on %s, and %s no API tokens:\n"
        "  anyone who can reach this address can read every account's data.\n"
        "  Create an admin token (`accountlens tokens create --role admin`), or serve on\n"
        "  127.0.0.1 behind a reverse proxy that authenticates (docs/security.md).\n%s",
        "!" * 78, names, host, "it has" if len(open_ones) == 1 else "they have", "!" * 78)


def serve(roots: list[Path], host: str, port: int, log_level: str = "warning",
          collectors: Collectors = Collectors()) -> None:
    warn_if_exposed(roots, host)
    token = secrets.token_urlsafe(32)
    app = build_app(roots, collectors, log_level, host, token)
    shown = f"[{host}]" if ":" in host else host
    # `accountlens import` finds the server by this (serve/discovery.py); 0.0.0.0 is reached on loopback
    local = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(shown, shown)
    discovery.announce(roots, f"http://{local}:{port}", token)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS,
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
    finally:
        discovery.withdraw(roots)
