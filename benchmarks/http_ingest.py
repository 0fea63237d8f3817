"""HTTP ingestion benchmark: concurrent Segment `/v1/batch` clients against `accountlens serve`."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil

from accountlens.workspace import DB_FILE, Workspace
from benchmarks.datagen import dataset
from benchmarks.ingest import BASELINE
from benchmarks.registry import Context, Row, Target, benchmark

BATCH_EVENTS = 100
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _request(port: int, method: str, path: str, timeout: float = 30.0,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def _bodies(jsonl: Path, first: int, last: int) -> list[tuple[int, bytes]]:
    """`/v1/batch` bodies of lines [first, last) of the file: (events, body) per request."""
    bodies, lines = [], []
    with open(jsonl, "rb") as fh:
        for number, line in enumerate(fh):
            if number >= last:
                break
            if number >= first:
                lines.append(line.rstrip(b"\n"))
                if len(lines) == BATCH_EVENTS:
                    bodies.append((len(lines), b'{"batch":[' + b",".join(lines) + b"]}"))
                    lines = []
    if lines:
        bodies.append((len(lines), b'{"batch":[' + b",".join(lines) + b"]}"))
    return bodies


class _Connection:
    """A keep-alive HTTP/1.1 connection sending prepared requests on a raw socket.

    The clients share the machine's cores with the server, so the load generator should take
    as little CPU as it can (as `wrk` does): a request is built once, and a response is read
    by its status line and Content-Length only. Python's `http.client` took about 3 CPU s per
    1M events (parsing response headers with `email`), a quarter of the server's own CPU.
    """

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def exchange(self, request: bytes) -> int:
        """Send one request; the response's status code."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._receive()
        self.buffer = self.buffer[length:]
        return int(head.split(b" ", 2)[1])

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def client(port: int, key: str, jsonl: str, first: int, last: int, barrier, results) -> None:
    """One client process: build its requests, wait for the start, send them all, keep-alive."""
    auth = base64.b64encode(f"{key}:".encode()).decode()
    requests = [(events, (f"POST /v1/batch HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                          f"Content-Type: application/json\r\nAuthorization: Basic {auth}\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
                for events, body in _bodies(Path(jsonl), first, last)]
    conn = _Connection(port)
    acked, retries, errors, latencies = 0, 0, [], []
    barrier.wait()
    cpu = time.process_time()
    for events, request in requests:
        for _attempt in range(4):  # a retry is safe: the server dedups by messageId
            started = time.monotonic()
            try:
                status = conn.exchange(request)
            except (OSError, ValueError, IndexError) as exc:
                status = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = _Connection(port)
            if status == 200:
                latencies.append(time.monotonic() - started)
                acked += events
                break
            retries += 1
            errors.append(str(status))
        else:
            break  # the server refuses this batch four times: stop, the count check will fail
    finished = time.monotonic()
    conn.close()
    results.put({"acked": acked, "retries": retries, "errors": errors[:5], "finished": finished,
                 "latencies": latencies, "cpu": time.process_time() - cpu})


class RssSampler(threading.Thread):
    """Samples the peak resident memory of a process and its children."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.process, self.interval = psutil.Process(pid), interval
        self.peak = 0
        self._done = threading.Event()

    def current(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.peak = max(self.peak, self.current())
            except psutil.Error:
                return

    def stop(self) -> int:
        self._done.set()
        self.join(timeout=5)
        return self.peak


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    ingest_port: int  # where clients send events: the collector processes' port, if any
    folder: Path | None = None  # the workspace served (its serve.json holds the admin token)

    @classmethod
    def start(cls, folder: Path, log: Path, collectors: int = 0) -> Server:
        port, ingest_port = free_port(), free_port() if collectors else 0
        with open(log, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "accountlens", "serve", "--dir", str(folder),
                 "--host", HOST, "--port", str(port), "--collectors", str(collectors),
                 "--collector-port", str(ingest_port)],
                stdout=subprocess.DEVNULL, stderr=err,
            )
        server = cls(process, port, ingest_port or port, folder)
        for _ in range(600):  # up to 60 s
            if process.poll() is not None:
                raise RuntimeError(f"accountlens serve exited: {log.read_text()[-2000:]}")
            try:
                if _request(port, "GET", "/health", timeout=2)[0] == 200:
                    return server
            except OSError:
                pass
            time.sleep(0.1)
        server.stop()
        raise RuntimeError("accountlens serve did not answer /health within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # graceful: the loader drains the log
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _wait_loaded(port: int, expected: int, timeout: float, folder: Path | None = None) -> dict:
    """Flush, then poll the status until `expected` events are stored and the log is empty."""
    from accountlens.serve.discovery import local_admin_token

    token = local_admin_token(folder) if folder is not None else None  # flushing is a write
    status, body = _request(port, "POST", "/api/v1/flush", timeout=timeout,
                            headers={"Authorization": f"Bearer {token}"} if token else None)
    if status != 200:
        raise RuntimeError(f"POST /api/v1/flush answered {status}: {body}")
    deadline = time.monotonic() + timeout
    while True:
        status, body = _request(port, "GET", "/api/v1/status", timeout=60)
        if status == 200 and body["events"] >= expected and body["unloaded_log_bytes"] == 0:
            return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"not loaded after {timeout:.0f} s: {body}")
        time.sleep(0.2)


def _stored_counts(folder: Path) -> tuple[int, int, int]:
    con = duckdb.connect(str(folder / DB_FILE), read_only=True)
    try:
        return con.execute(
            "SELECT count(*), count(DISTINCT message_id), "
            "(SELECT count(*) FROM quarantine) FROM events"
        ).fetchone()
    finally:
        con.close()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _tree_cpu(process: psutil.Process):
    """A function giving the CPU seconds used so far by `process` and its children."""
    def cpu() -> float:
        total = 0.0
        for proc in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += sum(proc.cpu_times()[:2])
        return total
    return cpu


def _drive(ctx: Context, server: Server, key: str, jsonl: Path, events: int) -> dict:
    """Run the clients against the server; timings, acknowledgements and peak RSS."""
    mp = multiprocessing.get_context("spawn")  # no fork of a process holding DuckDB threads
    barrier, results = mp.Barrier(ctx.clients + 1), mp.Queue()
    bounds = [events * c // ctx.clients for c in range(ctx.clients + 1)]
    procs = [mp.Process(target=client, args=(server.ingest_port, key, str(jsonl), bounds[c],
                                             bounds[c + 1], barrier, results))
             for c in range(ctx.clients)]
    for proc in procs:
        proc.start()
    sampler = RssSampler(server.process.pid)
    barrier.wait(timeout=600)  # every client has its bodies ready
    server_cpu = _tree_cpu(psutil.Process(server.process.pid))
    cpu_before = server_cpu()
    started = time.monotonic()
    sampler.start()
    reports = [results.get(timeout=3600) for _ in procs]
    sent = time.monotonic()
    cpu_sending = server_cpu() - cpu_before
    for proc in procs:
        proc.join(timeout=60)
    rss_sending = sampler.peak
    body = _wait_loaded(server.port, events, timeout=1800, folder=server.folder)
    loaded = time.monotonic()
    rss_peak = sampler.stop()
    cpu = server_cpu() - cpu_before
    send_seconds = max(r["finished"] for r in reports) - started
    return {
        "acked": sum(r["acked"] for r in reports), "retries": sum(r["retries"] for r in reports),
        "errors": [e for r in reports for e in r["errors"]][:5],
        "latencies": [x for r in reports for x in r["latencies"]],
        "send_seconds": send_seconds, "drain_seconds": loaded - sent,
        "loaded_seconds": loaded - started, "rss_sending": rss_sending, "rss_peak": rss_peak,
        "server_cpu": cpu, "server_cpu_sending": cpu_sending,
        "client_cpu": sum(r["cpu"] for r in reports), "status": body,
    }


COLLECTORS = 2  # the second run: collector processes (`serve --collectors`), one per core


def _run(ctx: Context, data, collectors: int) -> tuple[dict, tuple[int, int, int]]:
    folder = ctx.scratch(f"http-{collectors}") / "workspace"
    ws = Workspace.init(folder, name="bench-http")
    key = ws.config.workspace.write_keys[0]
    ws.close()
    server = Server.start(folder, folder.parent / "serve.log", collectors)
    try:
        ctx.log(f"http_ingest: server on port {server.port}, {collectors} collector processes, "
                f"{ctx.clients} clients")
        run = _drive(ctx, server, key, data.jsonl, data.events)
    finally:
        server.stop()
    return run, _stored_counts(folder)


def _rows(prefix: str, label: str, run: dict, counts: tuple[int, int, int], ctx: Context,
          events: int) -> list[Row]:
    stored, distinct, quarantined = counts
    latencies = run["latencies"]
    return [
        Row(f"{prefix}.ack_rate", f"acknowledged events/s (sustained){label}",
            run["acked"] / run["send_seconds"], "events/s", baseline=BASELINE,
            target=Target(">=", 0.30),
            note=f"{run['acked']:,} events in {run['send_seconds']:.1f} s, {ctx.clients} clients, "
                 f"{BATCH_EVENTS} events/request, {run['retries']} retries"
                 + (f" ({'; '.join(run['errors'])})" if run["errors"] else "")),
        Row(f"{prefix}.loaded_rate", f"events/s until all are loaded in the store{label}",
            events / run["loaded_seconds"], "events/s", baseline=BASELINE,
            # issue 22: acknowledged → queryable, sustained, with collector processes
            target=Target(">=", 100_000, on="value") if prefix.endswith("collectors") else None,
            note=f"time-to-loaded {run['loaded_seconds']:.1f} s "
                 f"(drain after the last ack: {run['drain_seconds']:.1f} s)"),
        # The same run's work on this machine's cores: even with no idle core and no wait, the
        # CPU seconds spent (clients sending, server receiving and loading) take at least
        # this long, so the acknowledged → queryable rate cannot exceed this ceiling here.
        Row(f"{prefix}.cpu_ceiling", f"ceiling: events / (CPU seconds spent / cores){label}",
            events * (os.cpu_count() or 1) / (run["server_cpu"] + run["client_cpu"]), "events/s",
            note=f"{run['server_cpu'] + run['client_cpu']:.1f} CPU s (server {run['server_cpu']:.1f}, "
                 f"clients {run['client_cpu']:.1f}) on {os.cpu_count()} cores"),
        Row(f"{prefix}.latency_p50", f"request latency p50{label}",
            1000 * _percentile(latencies, 0.50), "ms"),
        Row(f"{prefix}.latency_p99", f"request latency p99{label}",
            1000 * _percentile(latencies, 0.99), "ms"),
        Row(f"{prefix}.rss_sending", f"server peak RSS while receiving{label}",
            run["rss_sending"] / 1e6, "MB", target=Target("<=", 500, on="value")),
        Row(f"{prefix}.rss_peak", f"server peak RSS until loaded{label}", run["rss_peak"] / 1e6,
            "MB", target=Target("<=", 500, on="value")),
        Row(f"{prefix}.server_cpu", f"server CPU time per 1,000 events{label}",
            1e6 * run["server_cpu"] / events, "ms",
            note=f"{run['server_cpu']:.1f} CPU s in total, {run['server_cpu_sending']:.1f} of them "
                 f"while receiving; the clients used {run['client_cpu']:.1f} CPU s"),
        Row(f"{prefix}.stored", f"events stored exactly once / sent{label}", stored / events,
            "ratio", target=Target("==", 1.0, on="value"),
            note=f"sent {events:,}, acknowledged {run['acked']:,}, stored {stored:,}, "
                 f"distinct message ids {distinct:,}, quarantined {quarantined:,}"
                 + ("" if stored == distinct == events else " — MISMATCH")),
    ]


@benchmark("http_ingest", "HTTP ingestion (`accountlens serve`, Segment `/v1/batch`)", order=40,
           requires=("baseline",))
def http_ingest_benchmark(ctx: Context) -> list[Row]:
    """`accountlens serve` runs as a subprocess on a loopback port with a fresh workspace, twice:
    as configured by default (the server process alone receives the events), and with 2
    collector processes (`--collectors 2`, the clients sending to the collector port). Client
    processes send prepared `/v1/batch` requests of 100 events (HTTP Basic write key,
    keep-alive) on raw sockets, sending the same JSONL events; each 200 means the batch is
    fsync'd to the durable log. Under this heavy traffic the loader waits (up to
    `max_load_delay_seconds`) and loads after the burst. Time-to-loaded ends when
    `POST /api/v1/flush` has returned and `GET /api/v1/status` counts every event. RSS is the
    server's resident memory with its children (the collector processes), sampled every 0.1 s,
    and so is its CPU time. The clients share the machine's two cores with the server."""
    data = dataset(ctx)
    rows: list[Row] = []
    for prefix, label, collectors in (("http", "", 0),
                                      ("http.collectors", f", {COLLECTORS} collector processes",
                                       COLLECTORS)):
        run, counts = _run(ctx, data, collectors)
        rows.extend(_rows(prefix, label, run, counts, ctx, data.events))
    return rows
