"""A full disk and stalled uploads against a real `accountlens serve` on loopback (issue 16,
finding 8): the collector answers 503 + Retry-After (JSON) and acknowledges nothing it could not
fsync, the loader tells ENOSPC from out-of-memory, both show in the status, and both resume by
themselves when space returns; a stalled body gets 408 without holding anyone else up.

The disk is a small tmpfs mounted for the test (root, or CAP_SYS_ADMIN); where mounting is not
allowed the disk-full tests are skipped with a note."""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from accountlens.workspace import Workspace
from tests.conftest import Server, admin_headers, start_server, wait_for, write_key_of


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder` for the block (skips the test when not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"{mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of `folder`, leaving about `leave` bytes (rounded to pages) free;
    removing the file returned frees it again."""
    spare = folder / "spare"
    spare.write_bytes(b"\0" * leave)
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        chunk = 1 << 16
        while chunk:
            try:
                fh.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                chunk //= 2
    spare.unlink()
    return filler


def batch(prefix: str, count: int, pad: int = 0) -> list[dict]:
    return [{"type": "track", "messageId": f"{prefix}-{i}", "userId": f"u{i % 3}",
             "event": "Report Opened", "timestamp": "2024-01-01T10:00:00Z",
             "properties": {"pad": "x" * pad}} for i in range(count)]


def send(server: Server, events: list[dict]) -> httpx.Response:
    return httpx.post(server.ingest_url + "/v1/batch", auth=(server.write_key, ""),
                      json={"batch": events}, timeout=30)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"].isdigit() and int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["success"] is False and "disk is full" in body["error"]


def stored_ids(root: Path) -> list[str]:
    with Workspace.open(root) as ws:
        return [row["message_id"] for row in ws.store.arrow(
            "SELECT message_id FROM events").to_pylist()]


def status(server: Server) -> dict:
    return httpx.get(server.url + "/api/v1/status", timeout=30).json()


@pytest.mark.parametrize("collectors", [0, 1], ids=["server", "collector-process"])
def test_a_full_log_disk_gets_503_acknowledges_nothing_and_resumes(tmp_path, collectors) -> None:
    root = tmp_path / "ws"
    Workspace.init(root, name="ws").close()
    with tmpfs(root / "log", "2m") as log_disk:
        server = start_server(root, collectors=collectors)
        try:
            assert send(server, batch("a", 20)).status_code == 200
            server.flush()  # loaded and removed: the log is empty before the disk fills

            filler = fill(log_disk)
            assert_unavailable(send(server, batch("b", 20)))
            # concurrent requests share group commits: each failed group fails all its batches
            answers: list[httpx.Response] = []
            threads = [threading.Thread(target=lambda i=i: answers.append(send(server, batch(f"d{i}", 5))))
                       for i in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for response in answers:
                assert_unavailable(response)
            full = status(server)
            assert full["disk_full"] is True and full["log_free_bytes"] < 1 << 20
            assert "event log cannot be written" in full["ingest_paused_reason"]

            filler.unlink()  # space returns: no restart, the next append works
            wait_for(lambda: status(server)["disk_full"] is False, timeout=10)
            assert status(server)["ingest_paused_reason"] is None
            assert send(server, batch("b", 20)).status_code == 200  # the SDK's retry of b
            assert send(server, batch("c", 20)).status_code == 200

            # nearly full: a group larger than the room left is partly written, then cut off
            filler = fill(log_disk, leave=16 << 10)
            assert_unavailable(send(server, batch("e", 40, pad=1000)))
            assert send(server, batch("f", 3)).status_code == 200  # fits in what is left
            server.kill()  # what is in the log now is what a restart recovers
        finally:
            server.stop()
        # a restart on the nearly full disk recovers the log and loads it
        filler.unlink()
        server = start_server(root, collectors=collectors)
        try:
            server.flush()
            assert status(server)["disk_full"] is False
        finally:
            server.stop()
        ids = stored_ids(root)
    acknowledged = {f"{p}-{i}" for p, n in (("a", 20), ("b", 20), ("c", 20), ("f", 3))
                    for i in range(n)}
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert set(ids) == acknowledged  # nothing lost, nothing of the refused d* and e* stored


def test_a_full_store_disk_is_no_memory_problem_and_loads_when_space_returns(tmp_path) -> None:
    root = tmp_path / "ws"
    with tmpfs(root, "8m"):
        Workspace.init(root, name="ws").close()
        with tmpfs(root / "log", "4m"):  # a disk of its own: acknowledging keeps working
            server = start_server(root)
            try:
                filler = fill(root)
                for part in range(3):
                    assert send(server, batch(f"p{part}", 50)).status_code == 200
                flushed = httpx.post(server.url + "/api/v1/flush", headers=admin_headers(root), timeout=60)
                assert flushed.status_code == 503, flushed.text
                assert flushed.headers["retry-after"].isdigit()
                assert flushed.json()["success"] is False
                assert "No space left on device" in flushed.json()["error"]
                wait_for(lambda: (status(server)["loader_error"] or "").startswith("disk full"))
                full = status(server)
                assert full["disk_full"] is True and full["events"] == 0
                assert full["unloaded_log_bytes"] > 0
                assert "loading into the store fails" in full["ingest_paused_reason"]

                filler.unlink()  # the background loader's next try loads it all, by itself
                wait_for(lambda: status(server)["events"] == 150, timeout=30)
                after = status(server)
                assert after["disk_full"] is False and after["loader_error"] is None
                assert after["ingest_paused_reason"] is None and after["unloaded_log_bytes"] == 0
            finally:
                server.stop()
            logged = server.process.stderr.read().decode()
            ids = stored_ids(root)
    assert sorted(ids) == sorted(f"p{part}-{i}" for part in range(3) for i in range(50))
    assert "the disk is full" in logged and "loading the event log works again" in logged
    assert "more memory than the ingest limit" not in logged  # the memory limit stayed


def test_duckdb_spill_to_a_full_disk_is_not_out_of_memory(tmp_path, monkeypatch) -> None:
    """DuckDB reports a spill to a full temporary folder as an OutOfMemoryException; the loader
    must not answer it by raising its memory limit for good (it did)."""
    import duckdb

    from accountlens.ingest import loader as loader_module

    with tmpfs(tmp_path / "disk", "2m") as disk:
        fill(disk)
        con = duckdb.connect()
        con.execute("SET memory_limit = '32MB'")
        con.execute("SET threads = 2")
        con.execute("SET temp_directory = ?", [str(disk / "spill")])
        with pytest.raises(duckdb.OutOfMemoryException) as spilled:
            con.execute("SELECT count(*) FROM (SELECT repeat('y', 100) || i AS s "
                        "FROM range(3000000) r(i) ORDER BY s)").fetchall()
        con.close()
    assert loader_module._disk_full(spilled.value)
    assert not loader_module._out_of_memory(spilled.value)
    real_oom = duckdb.OutOfMemoryException("could not allocate block of size 256.0 KiB")
    assert loader_module._out_of_memory(real_oom) and not loader_module._disk_full(real_oom)

    ws = Workspace.init(tmp_path / "ws")
    try:
        event_log = ws.open_log()
        loader = loader_module.BackgroundLoader(ws.store, ws.config.ingest, event_log,
                                                memory_limits=("64MB", "384MB"))
        loader._set_ingesting(True)
        real_load = loader_module._load
        monkeypatch.setattr(loader_module, "_load", lambda *args: (_ for _ in ()).throw(spilled.value))
        with pytest.raises(duckdb.OutOfMemoryException):
            loader.flush()
        assert loader.disk_full and loader.last_error.startswith("disk full: ")
        assert loader._limits == ("64MB", "384MB")  # not raised
        assert ws.store.options["memory_limit"] == "64MB"
        monkeypatch.setattr(loader_module, "_load", real_load)
        loader.flush()
        assert not loader.disk_full and loader.last_error is None
        event_log.close()
    finally:
        ws.close()


def _stalled_upload(url: str, key: str) -> socket.socket:
    """A request whose headers promise a body that never comes in full."""
    host, port = re.match(r"http://([^:]+):(\d+)", url).groups()
    sock = socket.create_connection((host, int(port)), timeout=20)
    auth = base64.b64encode(f"{key}:".encode()).decode()
    sock.sendall((f"POST /v1/batch HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
                  '{"batch": [').encode())
    return sock


def _answer(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):  # until the server closes the connection
            data += chunk
    sock.close()
    return data


@pytest.mark.parametrize("collectors", [0, 1], ids=["server", "collector-process"])
def test_stalled_uploads_get_408_and_hold_nobody_up(tmp_path, collectors) -> None:
    root = tmp_path / "ws"
    Workspace.init(root, name="ws").close()
    config = root / "accountlens.toml"
    config.write_text(re.sub(r"(?m)^body_read_timeout_seconds = .*$",
                             "body_read_timeout_seconds = 2", config.read_text()))
    server = start_server(root, collectors=collectors)
    try:
        started = time.monotonic()
        stalled = [_stalled_upload(server.ingest_url, write_key_of(root)) for _ in range(300)]
        for part in range(5):  # served meanwhile, at once
            sent = time.monotonic()
            assert send(server, batch(f"ok{part}", 10)).status_code == 200
            assert time.monotonic() - sent < 1.5
        assert time.monotonic() - started < 2  # all of that before the first stall timed out
        answers = [_answer(sock) for sock in stalled]
        waited = time.monotonic() - started
        for answer in answers:
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"content-type: application/json" in head.lower()
            assert b"body_read_timeout_seconds" in body and b'"success":false' in body
        assert 2 <= waited < 10
        server.flush()
    finally:
        server.stop()
    assert sorted(stored_ids(root)) == sorted(f"ok{p}-{i}" for p in range(5) for i in range(10))


def test_a_failed_group_commit_fails_every_batch_of_it_and_leaves_no_line(tmp_path,
                                                                          monkeypatch) -> None:
    """The log itself: every batch of a group whose write (ENOSPC, partly written) or fsync
    (EIO) fails gets the error, the segment is cut back to its last acknowledged byte, and the
    next group is written as if nothing happened."""
    from accountlens.ingest.log import EventLog, recover

    def lines(prefix: str, count: int, pad: int = 0) -> bytes:
        return b"".join(b'{"messageId":"%s-%d","pad":"%s"}\n' % (prefix.encode(), i, b"x" * pad)
                        for i in range(count))

    def grouped(log: EventLog, datas: list[bytes]) -> list:
        with log._lock:  # the writer waits: everything queued meanwhile is one group
            futures = [log.append(data) for data in datas]
            time.sleep(0.2)
        return [future.exception(timeout=10) for future in futures]

    with tmpfs(tmp_path / "disk", "1m") as disk:
        log = EventLog(disk / "log", segment_bytes=8 << 20)
        assert grouped(log, [lines("a", 3)]) == [None]
        filler = fill(disk, leave=16 << 10)
        errors = grouped(log, [lines(f"b{i}", 10, pad=500) for i in range(6)])  # ~30 KB > 16 KB
        assert all(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in errors)
        assert log._active.read_bytes() == lines("a", 3)  # the complete lines of b* are gone too
        failure = log.write_failure()
        assert failure is not None and failure.out_of_space
        assert grouped(log, [lines("c", 2)]) == [None]  # fits: written, acknowledged
        assert log.write_failure() is None
        filler.unlink()

        real_fsync, calls = os.fsync, []

        def failing_fsync(fd: int) -> None:
            calls.append(fd)
            if len(calls) == 1:
                raise OSError(errno.EIO, "Input/output error")
            real_fsync(fd)

        with monkeypatch.context() as patched:
            patched.setattr(os, "fsync", failing_fsync)
            errors = grouped(log, [lines("d", 2), lines("e", 2)])
        assert [getattr(e, "errno", None) for e in errors] == [errno.EIO, errno.EIO]
        failure = log.write_failure()
        assert failure is not None and not failure.out_of_space and "Input/output" in failure.error
        assert grouped(log, [lines("f", 1)]) == [None]
        active = log._active
        log.close()
        recover(active.parent)
        assert active.read_bytes() == lines("a", 3) + lines("c", 2) + lines("f", 1)


def test_a_checkpoint_on_a_full_disk_invalidates_nothing_for_good(tmp_path) -> None:
    """DuckDB gives the database up after a checkpoint it could not write (a FatalException;
    every later statement fails until the file is opened again): the loader opens it again
    before its next try, keeps its settings, and loads every event exactly once."""
    from accountlens.ingest.loader import BackgroundLoader
    from accountlens.ingest.normalize import Limits, encode_events, segment_events

    with tmpfs(tmp_path / "disk", "8m") as disk:
        ws = Workspace.init(disk / "ws")
        try:
            ws.store.set_option("checkpoint_threshold", "1KB")  # every load checkpoints
            event_log = ws.open_log()
            loader = BackgroundLoader(ws.store, ws.config.ingest, event_log)

            def acknowledge(prefix: str, count: int) -> None:
                events = segment_events({"batch": batch(prefix, count, pad=200)}, None,
                                        "2024-01-01T10:00:00Z")
                event_log.append(encode_events(events, Limits(1 << 20, 1 << 20))).result()

            acknowledge("early", 5)
            loader.flush()
            filler = fill(disk, leave=300 << 10)  # room for the log, not for the checkpoint
            acknowledge("late", 200)
            with pytest.raises(Exception, match="No space left on device") as failed:
                loader.flush()
            assert type(failed.value).__name__ == "FatalException"
            assert loader.disk_full and loader.last_error.startswith("disk full: ")
            filler.unlink()
            loader.flush()
            assert not loader.disk_full and loader.last_error is None
            ids = [row["message_id"] for row in ws.store.arrow(
                "SELECT message_id FROM events").to_pylist()]
            assert sorted(ids) == sorted([f"early-{i}" for i in range(5)]
                                         + [f"late-{i}" for i in range(200)])
            assert ws.store.scalar("SELECT current_setting('checkpoint_threshold')") == "1000 bytes"
            event_log.close()
        finally:
            ws.close()
