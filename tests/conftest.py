"""Shared fixtures: real workspaces on disk and a real `accountlens serve` on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from accountlens.workspace import Workspace


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin_headers(root: Path) -> dict[str, str]:
    """The Authorization header of the local admin token of the server serving `root` (from
    its serve.json): writes and admin actions need it, also on loopback."""
    from accountlens.serve.discovery import local_admin_token

    token = local_admin_token(root)
    assert token is not None, f"no running server wrote a local admin token into {root}"
    return {"Authorization": f"Bearer {token}"}


def write_key_of(root: Path) -> str:
    """The first write key of the workspace at `root`."""
    return re.search(r'write_keys = \["([^"]+)"', (root / "accountlens.toml").read_text()).group(1)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", name="test")
    yield workspace
    workspace.close()


@dataclass
class Server:
    root: Path
    port: int
    process: subprocess.Popen
    write_key: str
    ingest_port: int = 0  # the collector processes' port, when there are any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ingest_url(self) -> str:
        """Where clients send events: the collector processes, or the server itself."""
        return f"http://127.0.0.1:{self.ingest_port or self.port}"

    def flush(self) -> dict:
        return httpx.post(self.url + "/api/v1/flush", headers=admin_headers(self.root), timeout=30).json()

    def status(self) -> dict:
        return httpx.get(self.url + "/api/v1/status", timeout=30).json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(root: Path, port: int | None = None, collectors: int = 0,
                 collector_port: int | None = None, also: tuple[Path, ...] = ()) -> Server:
    """`accountlens serve` of `root` (and the workspaces `also`, served beside it)."""
    port = port or free_port()
    collector_port = (collector_port or free_port()) if collectors else 0
    dirs = [arg for folder in (root, *also) for arg in ("--dir", str(folder))]
    process = subprocess.Popen(
        [sys.executable, "-m", "accountlens", "serve", *dirs, "--port", str(port),
         "--collectors", str(collectors), "--collector-port", str(collector_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited: " + process.stderr.read().decode())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return Server(root, port, process, write_key_of(root), collector_port)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start in 30 s")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def factory(root: Path | None = None, port: int | None = None, collectors: int = 0) -> Server:
        if root is None:
            root = tmp_path / "served"
            if not root.exists():
                Workspace.init(root, name="served").close()
        server = start_server(root, port, collectors)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory) -> Server:
    return server_factory()


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[Server]:
    """`accountlens serve` of a new, empty workspace."""
    root = tmp_path / "empty"
    Workspace.init(root, name="empty").close()
    server = start_server(root)
    yield server
    server.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.1) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


# ---- Spark (tests/test_spark_engine.py, tests/test_spark_analyses.py, tests/test_lake.py) -------
# The files with Spark tests run in one worker and one Spark session: a JVM start and its
# warm-up (the first queries of a JVM plan several times slower) once, not per file, and no
# second JVM beside the first. `make test` runs the suite in two workers taking a file at a
# time (--dist loadfile); the scheduler below treats these files as one.
SPARK_FILES = ("tests/test_spark_engine.py", "tests/test_spark_analyses.py", "tests/test_lake.py")
# Test data is tiny and the queries many (230+): one shuffle partition, no adaptive re-planning,
# no whole-stage code generation, a JVM that does not spend its time optimizing itself. Each
# halves the time of the comparison or better.
TINY_DATA = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": ("-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
                                      # C1 alone reserves 48 MB of code cache: too little
                                      " -XX:ReservedCodeCacheSize=256m"),
}


def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with the files of Spark tests one unit of work (one worker, one
    session)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SparkFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return SPARK_FILES[0] if scope in SPARK_FILES else scope

    return SparkFilesTogether(config, log)


@pytest.fixture(scope="session")
def spark_session():
    """The Spark session (local[2]) of every Spark test; a SparkStore opened while it runs
    reuses it (and leaves it running when closed)."""
    import shutil

    if shutil.which("java") is None:
        pytest.skip("the Spark engine needs Java 17+ on PATH (java not found)")
    from accountlens.store.spark import _session

    session = _session("local[2]", "", TINY_DATA)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
