"""Collector processes: the ingestion endpoints served by several processes on a port of their own.

One Python process handles requests on about one core, and the server process also runs the
loader, the API and the dashboard. `accountlens serve --collectors N` starts N collector
processes; the server process accepts the connections on the collector port and hands each to
the next collector process in turn. Each appends to its own log folder, `log/collector-I/`, in
every workspace, with the same fsync-before-200 rule; the server process keeps the one loader
(DuckDB has one writer) and asks the collectors over a pipe to seal their segments when it loads.

A collector process holds an exclusive lock on its folders while it lives and exits as soon as
the server process is gone (its pipe closes), so a restarted server never loads a segment that
an old collector still appends to: it takes each folder's lock first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from accountlens.ingest.log import EventLog, WriteFailure, collector_folder, hold_lock, log_segments, take_over_folder
from accountlens.serve.collector import (
    GRACEFUL_SHUTDOWN_SECONDS,
    KEEP_ALIVE_SECONDS,
    Collector,
    CollectorFront,
    Receive,
    Scope,
    Send,
    Sink,
)
from accountlens.serve.hardening import HostPolicy, TrustedHosts

log = logging.getLogger("accountlens.collectors")

START_TIMEOUT = 60.0
WATCH_SECONDS = 1.0  # how often the server checks that its collector processes still run


@dataclass(frozen=True)
class SinkSpec:
    """What a collector process needs of a workspace (picklable: no store, no config)."""

    sink: Sink  # without its log: the collector process opens its own
    log_root: Path
    segment_bytes: int
    floor: int


# --- the collector process -------------------------------------------------------------------
async def _not_here(scope: Scope, receive: Receive, send: Send) -> None:
    """Anything but ingestion on the collector port: 404 with a JSON error."""
    if scope["type"] != "http":
        return
    body = b'{"success":false,"error":"this port serves only the ingestion endpoints"}'
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _collector_server(config: Any, handoff: socket.socket) -> Any:
    """A uvicorn server without a listening socket of its own: it serves the connections the
    server process hands over on `handoff` (one file descriptor per message)."""
    import uvicorn

    class HandedOver(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            loop = asyncio.get_running_loop()
            handoff.setblocking(False)
            loop.add_reader(handoff.fileno(), self._take, loop)

        def _protocol(self, loop: asyncio.AbstractEventLoop) -> asyncio.Protocol:
            # What uvicorn's own startup builds for each connection of its listeners. (uvicorn
            # types the class as a bare asyncio.Protocol; its HTTP protocols take these.)
            return self.config.http_protocol_class(  # type: ignore[call-arg]
                config=self.config, server_state=self.server_state,
                app_state=self.lifespan.state, _loop=loop)

        def _take(self, loop: asyncio.AbstractEventLoop) -> None:
            try:
                data, fds, _, _ = socket.recv_fds(handoff, 1, 1)
            except (BlockingIOError, InterruptedError):
                return
            if not data and not fds:  # the server process is gone (the control pipe says so too)
                loop.remove_reader(handoff.fileno())
                return
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                loop.create_task(loop.connect_accepted_socket(
                    lambda: self._protocol(loop), sock))

    return HandedOver(config)


def _control(conn: Any, logs: list[EventLog], server: Any) -> None:
    """Answer the server process: seal a workspace's log, report traffic and write failures,
    stop."""
    while True:
        try:
            command, arg = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the server process is gone: stop appending at once
        if command == "stop":
            server.should_exit = True
            conn.send(None)
            return
        try:
            answer = _answer(logs[arg], command)
        except Exception:  # a full disk, say: answer None (nothing sealed), keep answering
            log.exception("collector process: %r failed", command)
            answer = None
        conn.send(answer)


def _answer(event_log: EventLog, command: str) -> Any:
    if command == "seal":
        return [str(p) for p in event_log.seal()]
    if command == "appended":
        return event_log.appended_bytes
    if command == "failure":
        return event_log.write_failure()
    raise ValueError(f"unknown command {command!r}")


def child_main(control_fd: int, handoff_fd: int) -> None:
    """Entry point of a collector process: its settings arrive on the control pipe, its
    connections on the hand-off socket."""
    conn = Connection(control_fd)
    handoff = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=handoff_fd)
    index, specs, log_level, body_timeout, hosts = conn.recv()
    run_collector(index, specs, log_level, body_timeout, hosts, conn=conn, handoff=handoff)


def run_collector(index: int, specs: list[SinkSpec], log_level: str, body_timeout: float,
                  hosts: HostPolicy, conn: Any, handoff: socket.socket) -> None:
    """Body of collector process `index`; `hosts`: the Host names it answers."""
    import uvicorn

    locks, logs = [], []
    try:
        for spec in specs:
            folder = collector_folder(spec.log_root, index)
            locks.append(hold_lock(folder, timeout=10))
            logs.append(EventLog(folder, spec.segment_bytes, spec.floor))
    except Exception as exc:  # noqa: BLE001 - reported to the server process, which refuses to start
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    sinks = [replace(spec.sink, log=event_log) for spec, event_log in zip(specs, logs, strict=True)]
    app = TrustedHosts(CollectorFront(Collector(sinks, body_timeout), _not_here), hosts)
    server = _collector_server(uvicorn.Config(app, log_level=log_level, access_log=False,
                                              lifespan="off", timeout_keep_alive=KEEP_ALIVE_SECONDS,
                                              timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS),
                               handoff)
    threading.Thread(target=_control, args=(conn, logs, server), daemon=True,
                     name="accountlens-control").start()
    conn.send(("ready", None))
    try:
        server.run()
    finally:
        for event_log in logs:
            event_log.close()
        for handle in locks:
            handle.close()


# --- the server process's side -----------------------------------------------------------------
class _Process:
    def __init__(self, index: int, process: subprocess.Popen, conn: Connection,
                 handoff: socket.socket, timeout: float):
        self.index, self.process, self.conn, self.handoff = index, process, conn, handoff
        self.timeout = timeout
        self.lock = threading.Lock()
        self.answering = True  # False once stopped, or when an answer did not come

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self.conn.close()
        self.handoff.close()

    def ask(self, command: str, arg: Any = None) -> Any:
        """The process's answer, or None when it does not answer (stopped, ended, stuck).

        A process that is alive but does not answer in time is stuck: it is killed, so that
        the pool's watcher starts a successor, which loads what it had logged (a stuck
        process would otherwise keep its acknowledged events from the loader while it lives).
        """
        with self.lock:
            if not self.answering or not self.alive():
                return None
            try:
                self.conn.send((command, arg))
                if self.conn.poll(self.timeout):
                    self.answering = command != "stop"
                    return self.conn.recv()
            except (EOFError, OSError):
                pass
            self.answering = False
            if self.alive() and command != "stop":
                log.error("collector process %d did not answer in %g s; killing it to start "
                          "it again", self.index, self.timeout)
                self.process.kill()
            return None


# A plain interpreter, not multiprocessing's spawn, which would import the server's main module
# (the CLI, with pandas and DuckDB) into every collector process: 28 MB each instead of 120.
_CHILD = ("import sys; from accountlens.serve.collector_pool import child_main; "
          "child_main(int(sys.argv[1]), int(sys.argv[2]))")


class CollectorPool:
    """The collector processes of one `accountlens serve`. The server process listens on the
    collector port and hands each accepted connection to the next collector process in turn
    (SCM_RIGHTS), so that a few long keep-alive connections still spread evenly: with
    `SO_REUSEPORT` the kernel's hash of 4 connections over 2 processes put all of them on one
    in some runs."""

    def __init__(self, specs: list[SinkSpec], host: str, port: int, count: int,
                 log_level: str = "warning", timeout: float = 30.0, body_timeout: float = 10.0,
                 hosts: HostPolicy | None = None):
        self.specs, self.host, self.port, self.count = specs, host, port, count
        self.log_level, self.timeout, self.body_timeout = log_level, timeout, body_timeout
        self.hosts = hosts or HostPolicy.serving(host)
        self.processes: list[_Process] = []
        self.listener: socket.socket | None = None
        self._stopping = threading.Event()

    def start(self) -> CollectorPool:
        try:
            self.listener = listener = _listen(self.host, self.port)
        except OSError as exc:
            raise RuntimeError(f"cannot listen on the collector port {self.port}: {exc}") from exc
        self.processes = [self._spawn(index) for index in range(self.count)]
        for worker in self.processes:
            problem = self._ready(worker)
            if problem is not None:
                self.stop()
                raise RuntimeError(f"collector process {worker.index}: {problem}")
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name="accountlens-acceptor").start()
        threading.Thread(target=self._watch, daemon=True, name="accountlens-collectors").start()
        return self

    def _spawn(self, index: int) -> _Process:
        ours, theirs = socket.socketpair()
        handoff, their_handoff = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [theirs.fileno(), their_handoff.fileno()]
        process = subprocess.Popen([sys.executable, "-c", _CHILD, *map(str, fds)],
                                   pass_fds=fds, stdin=subprocess.DEVNULL)
        theirs.close()
        their_handoff.close()
        conn = Connection(ours.detach())
        conn.send((index, self.specs, self.log_level, self.body_timeout, self.hosts))
        return _Process(index, process, conn, handoff, self.timeout)

    @staticmethod
    def _ready(worker: _Process) -> str | None:
        """Wait for a new process's report: None when it serves, else what went wrong."""
        try:
            if not worker.conn.poll(START_TIMEOUT):
                return "did not start"
            status, message = worker.conn.recv()
            return None if status == "ready" else message
        except (EOFError, OSError):
            return f"exited with status {worker.process.wait()}"

    def _watch(self) -> None:
        """Start a collector process again when it ends (its successor loads what it left:
        an event log recovers its folder when it opens)."""
        while not self._stopping.wait(WATCH_SECONDS):
            for index, worker in enumerate(self.processes):
                if worker.alive() or self._stopping.is_set():
                    continue
                log.error("collector process %d ended with status %s; starting it again",
                          index, worker.process.returncode)
                successor = self._spawn(index)
                problem = self._ready(successor)
                if problem is not None:
                    log.error("collector process %d could not start again: %s", index, problem)
                    successor.process.kill()
                    continue
                self.processes[index] = successor
                worker.close()

    def _accept(self, listener: socket.socket) -> None:
        turn = 0
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was shut down
            with conn:
                for _ in range(len(self.processes)):
                    worker = self.processes[turn % len(self.processes)]
                    turn += 1
                    try:
                        socket.send_fds(worker.handoff, [b"c"], [conn.fileno()])
                        break
                    except OSError:
                        continue  # that process has ended: the next one takes it

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def log(self, local: EventLog, workspace: int) -> PooledLog:
        return PooledLog(local, self, workspace)

    def stop(self, timeout: float = 20.0) -> None:
        self._stopping.set()
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the acceptor thread
            self.listener.close()
        for worker in self.processes:
            worker.ask("stop")
        for worker in self.processes:
            try:
                worker.process.wait(timeout)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(5)
            worker.close()


class PooledLog:
    """A workspace's log as the loader sees it when collector processes append to it too: the
    server process's own log plus the collectors' folders."""

    collectors_apart = True  # the loader does not share a process with the collectors

    def __init__(self, local: EventLog, pool: CollectorPool, workspace: int):
        self.local, self.pool, self.workspace = local, pool, workspace
        self.directory = local.directory

    @property
    def appended_bytes(self) -> int:
        remote = (worker.ask("appended", self.workspace) for worker in self.pool.processes)
        return self.local.appended_bytes + sum(n or 0 for n in remote)

    def segments(self) -> list[Path]:
        return log_segments(self.directory)

    def write_failure(self) -> WriteFailure | None:
        """The server process's log's failure, else the first collector process's."""
        failures = [self.local.write_failure(),
                    *(worker.ask("failure", self.workspace) for worker in self.pool.processes)]
        return next((failure for failure in failures if failure is not None), None)

    def seal(self) -> list[Path]:
        """Seal every log; the segments nobody appends to, oldest first within each folder."""
        sealed = self.local.seal()
        for worker in self.pool.processes:
            paths = worker.ask("seal", self.workspace)
            if paths is not None:
                sealed.extend(Path(p) for p in paths)
            elif self.pool.stopped and not worker.alive():  # its folder is ours to load
                # (while the pool runs, a successor process takes over the folder instead)
                sealed.extend(take_over_folder(collector_folder(self.directory, worker.index), 10))
        return sealed
