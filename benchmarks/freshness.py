"""Freshness: how soon an acknowledged event can be queried, at a steady rate (issue 22)."""

from __future__ import annotations

import base64
import multiprocessing
import threading
import time
from pathlib import Path

from accountlens.serve.discovery import local_admin_token
from accountlens.workspace import Workspace
from benchmarks.datagen import dataset
from benchmarks.http_ingest import (
    HOST,
    RssSampler,
    Server,
    _bodies,
    _Connection,
    _percentile,
    _request,
    _stored_counts,
    _wait_loaded,
)
from benchmarks.registry import Context, Row, Target, benchmark

RATE = 10_000  # events per second, as 100-event requests
SECONDS = 60  # of steady traffic (15 in quick mode)
COLLECTORS = 2
POLL_SECONDS = 0.5


def paced_client(port: int, key: str, jsonl: str, events: int, rate: int, ready, results) -> None:
    """Send the first `events` events of `jsonl` as `/v1/batch` requests at `rate` events/s on
    one keep-alive connection; report when each was acknowledged (monotonic clock: the same
    in every process)."""
    auth = base64.b64encode(f"{key}:".encode()).decode()
    requests = [(n, (f"POST /v1/batch HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                     f"Content-Type: application/json\r\nAuthorization: Basic {auth}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
                for n, body in _bodies(Path(jsonl), 0, events)]
    conn = _Connection(port)
    ready.wait()
    acks, errors, sent, late = [], [], 0, 0.0
    started = time.monotonic()
    for n, request in requests:
        due = started + sent / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        status = conn.exchange(request)
        if status == 200:
            acks.append((time.monotonic(), n))
        else:
            errors.append(status)
        sent += n
    conn.close()
    results.put({"acks": acks, "errors": errors[:5], "late": late,
                 "seconds": time.monotonic() - started})


def _poll(port: int, token: str, stop: threading.Event, seen: list[tuple[float, int]]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        asked = time.monotonic()
        status, body = _request(port, "GET", "/api/v1/status", headers=headers)
        if status == 200:
            seen.append((asked, body["events"]))
        stop.wait(max(0.0, POLL_SECONDS - (time.monotonic() - asked)))


def _freshness(acks: list[tuple[float, int]], seen: list[tuple[float, int]]) -> list[float]:
    """Seconds from each request's acknowledgement to the first status asked after it that
    counts the events acknowledged until then. The loader loads everything sealed so far, so
    a count that has reached an acknowledgement's running total includes that request (exact
    while a load is one batch: at this rate a load holds a second or two of events)."""
    waits, total, index = [], 0, 0
    for acked, n in sorted(acks):
        total += n
        index = max(index, next((i for i in range(index, len(seen)) if seen[i][0] >= acked), len(seen)))
        first = next((t for t, count in seen[index:] if count >= total), None)
        waits.extend([(first - acked) if first is not None else float("inf")] * n)
    return waits


@benchmark("freshness", "Freshness at a steady rate (`accountlens serve --collectors 2`)", order=42,
           requires=("datagen",))
def freshness_benchmark(ctx: Context) -> list[Row]:
    """One client sends 100-event `/v1/batch` requests at a steady 10,000 events/s for a
    minute (15 s with --quick) to `accountlens serve --collectors 2` with a fresh workspace;
    the benchmark asks `GET /api/v1/status` every 0.5 s how many events are stored. An
    event's freshness is the time from its acknowledgement to the first status (asked after
    it) that counts it. Target (issue 22): p95 ≤ 5 s."""
    data = dataset(ctx)
    events = min(data.events, RATE * (15 if ctx.quick else SECONDS))
    folder = ctx.scratch("freshness") / "workspace"
    ws = Workspace.init(folder, name="bench-freshness")
    key = ws.config.workspace.write_keys[0]
    ws.close()
    server = Server.start(folder, folder.parent / "serve.log", COLLECTORS)
    try:
        mp = multiprocessing.get_context("spawn")
        ready, results = mp.Event(), mp.Queue()
        proc = mp.Process(target=paced_client, args=(server.ingest_port, key, str(data.jsonl),
                                                     events, RATE, ready, results))
        proc.start()
        token = local_admin_token(folder)
        seen: list[tuple[float, int]] = []
        stop = threading.Event()
        poller = threading.Thread(target=_poll, args=(server.port, token, stop, seen), daemon=True)
        sampler = RssSampler(server.process.pid)
        time.sleep(2)  # the client builds its requests
        sampler.start()
        poller.start()
        ready.set()
        report = results.get(timeout=3600)
        proc.join(timeout=60)
        time.sleep(POLL_SECONDS * 2)
        _wait_loaded(server.port, events, timeout=600, folder=folder)
        time.sleep(POLL_SECONDS * 2)
        stop.set()
        poller.join(timeout=30)
        rss_peak = sampler.stop()
    finally:
        server.stop()
    stored, distinct, _ = _stored_counts(folder)
    acked = sum(n for _, n in report["acks"])
    waits = _freshness(report["acks"], seen)
    sent_rate = acked / report["seconds"]
    note = (f"{acked:,} events acknowledged in {report['seconds']:.1f} s ({sent_rate:,.0f}/s; "
            f"at most {report['late']:.2f} s behind the schedule), {len(seen)} status polls")
    return [
        Row("freshness.p95", "freshness p95 (acknowledged → counted by `status`), 10,000 events/s",
            _percentile(waits, 0.95), "s", target=Target("<=", 5.0, on="value"), note=note),
        Row("freshness.p50", "freshness p50", _percentile(waits, 0.50), "s"),
        Row("freshness.max", "freshness max", max(waits) if waits else float("nan"), "s"),
        Row("freshness.rss_peak", "server peak RSS, with its collector processes", rss_peak / 1e6,
            "MB", target=Target("<=", 500, on="value")),
        Row("freshness.stored", "events stored exactly once / acknowledged", stored / max(acked, 1),
            "ratio", target=Target("==", 1.0, on="value"),
            note=f"acknowledged {acked:,}, stored {stored:,}, distinct message ids {distinct:,}"
                 + (f"; errors {report['errors']}" if report["errors"] else "")
                 + ("" if stored == distinct == acked == events else " — MISMATCH")),
    ]
