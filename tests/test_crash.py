"""Crash safety: SIGKILL the server while real clients send; nothing acknowledged is lost or doubled."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from accountlens.workspace import Workspace
from tests.conftest import Server, start_server


def sender(url: str, key: str, worker: int, acked: list[str], sent: list[list[dict]],
           stop: threading.Event) -> None:
    with httpx.Client(auth=(key, ""), timeout=5) as client:
        batch_no = 0
        while not stop.is_set():
            batch = [{"type": "track", "messageId": f"w{worker}-b{batch_no}-e{i}", "userId": f"u{i}",
                      "event": "Clicked", "timestamp": "2024-01-01T00:00:00Z",
                      "context": {"groupId": f"acc{worker}"}} for i in range(50)]
            batch_no += 1
            sent.append(batch)
            try:
                response = client.post(url + "/v1/batch", content=json.dumps({"batch": batch}),
                                       headers={"content-type": "application/json"})
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code == 200:
                acked.extend(e["messageId"] for e in batch)


@contextlib.contextmanager
def sending(server: Server, acked: list[str], sent: list[list[dict]]) -> Iterator[None]:
    """Four clients send to the server's ingestion port until the block ends."""
    stop = threading.Event()
    threads = [threading.Thread(target=sender, args=(server.ingest_url, server.write_key, w, acked,
                                                     sent, stop)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


@pytest.mark.parametrize("collectors", [0, 2], ids=["server", "collector-processes"])
def test_sigkill_while_sending_loses_nothing_acknowledged(tmp_path, collectors: int) -> None:
    root = tmp_path / "ws"
    Workspace.init(root).close()
    rng = random.Random(11)
    acked: list[str] = []
    sent: list[list[dict]] = []
    server = start_server(root, collectors=collectors)
    port = server.port
    for _cycle in range(3):
        with sending(server, acked, sent):
            time.sleep(rng.uniform(1.0, 2.5))  # spans several loader runs (every 1 s)
            children = psutil.Process(server.process.pid).children()
            assert len(children) >= collectors
            server.kill()
        # Collector processes end with the server (they still acknowledge until they notice).
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive
        server = start_server(root, port, collectors, server.ingest_port or None)
    # Clients retry everything they sent (acknowledged or not): dedup keeps one copy.
    with httpx.Client(auth=(server.write_key, ""), timeout=30) as client:
        for batch in sent[: len(sent) // 2]:
            assert client.post(server.url + "/v1/batch", content=json.dumps({"batch": batch}),
                               headers={"content-type": "application/json"}).status_code == 200
    server.flush()
    server.stop()
    with Workspace.open(root) as ws:
        stored = [r["message_id"] for r in ws.store.arrow("SELECT message_id FROM events").to_pylist()]
        segments = ws.store.scalar("SELECT count(*) FROM ingest_segments")
    assert len(acked) > 1000, "the test must actually acknowledge traffic before each kill"
    assert len(stored) == len(set(stored))
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert segments >= 3


def test_restarts_never_reuse_a_loaded_segment_name(tmp_path) -> None:
    """A graceful stop loads and deletes every segment; a restarted server once numbered its
    first segment like the first server's, and the loader skipped it as loaded (then deleted it)."""
    root = tmp_path / "ws"
    Workspace.init(root).close()
    for run in range(3):
        server = start_server(root)
        batch = [{"type": "track", "messageId": f"r{run}-e{i}", "userId": f"u{i}", "event": "Clicked",
                  "timestamp": "2024-01-01T00:00:00Z", "context": {"groupId": "acc"}} for i in range(5)]
        response = httpx.post(server.url + "/v1/batch", auth=(server.write_key, ""),
                              content=json.dumps({"batch": batch}),
                              headers={"content-type": "application/json"}, timeout=10)
        assert response.status_code == 200
        server.stop()
    with Workspace.open(root) as ws:
        assert ws.store.scalar("SELECT count(*) FROM events") == 15
        assert ws.store.scalar("SELECT count(*) FROM ingest_segments") == 3
        # Numbers stay above what the store has loaded even if the clock were set back.
        ws.store.execute("INSERT INTO ingest_segments VALUES "
                         "('seg-9000000000000000.jsonl', now(), 0, 0, 0, 0)")
        log = ws.open_log()
        try:
            assert [p.name for p in log.segments()] == ["seg-9000000000000001.jsonl"]
        finally:
            log.close()


def _replaced_collector_loses_nothing(tmp_path, fail, timeout: int | None = None) -> None:
    """4 clients send through 2 collector processes; `fail(process)` breaks one of them; the
    server starts a successor and every acknowledged event is stored once."""
    root = tmp_path / "ws"
    Workspace.init(root).close()
    if timeout is not None:
        toml = root / "accountlens.toml"
        toml.write_text(toml.read_text().replace("collector_timeout_seconds = 30",
                                                 f"collector_timeout_seconds = {timeout}"))
    acked: list[str] = []
    sent: list[list[dict]] = []
    server = start_server(root, collectors=2)
    try:
        with sending(server, acked, sent):
            time.sleep(1.0)
            victim = psutil.Process(server.process.pid).children()[0]
            fail(victim)
            time.sleep(1.0)
        server.flush()  # a stuck process is asked to seal its log here, and gets no answer
        deadline = time.time() + 15  # the server starts a successor within about a second
        while time.time() < deadline:
            children = psutil.Process(server.process.pid).children()
            if len(children) == 2 and victim.pid not in {c.pid for c in children}:
                break
            time.sleep(0.2)
        assert len(children) == 2 and victim.pid not in {c.pid for c in children}
        assert not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE
        server.flush()  # the successor's seal hands over what its predecessor logged
    finally:
        server.stop()
    with Workspace.open(root) as ws:
        stored = [r["message_id"] for r in ws.store.arrow("SELECT message_id FROM events").to_pylist()]
    assert len(acked) > 1000
    assert len(stored) == len(set(stored))
    assert not set(acked) - set(stored), "acknowledged events lost"


def test_a_killed_collector_process_is_replaced_and_loses_nothing(tmp_path) -> None:
    _replaced_collector_loses_nothing(tmp_path, lambda process: process.kill())


def test_a_stuck_collector_process_is_replaced_and_loses_nothing(tmp_path) -> None:
    """A collector process that is alive but does not answer (here: stopped with SIGSTOP)
    would keep the events it acknowledged from the loader; after
    `serve.collector_timeout_seconds` the server kills it and starts a successor."""
    _replaced_collector_loses_nothing(tmp_path, lambda process: process.suspend(), timeout=1)
