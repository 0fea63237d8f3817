"""The real SDK clients and raw HTTP against a real `accountlens serve` on loopback (SPEC §4)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import uuid

import httpx
import pytest
from posthog import Posthog
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.conftest import Server, admin_headers


def events_of(server: Server) -> dict[str, dict]:
    from accountlens.workspace import Workspace

    server.flush()
    # The server holds the database; read through a second, read-only process is not possible
    # with DuckDB, so ask the server to stop and read the file directly.
    server.stop()
    with Workspace.open(server.root) as ws:
        rows = ws.store.arrow(
            """SELECT message_id, type, name, user_id, account_id, attribution, role, actor_kind,
                      timestamp, original_timestamp, sent_at, received_at,
                      CAST(properties AS VARCHAR) AS properties, source FROM events"""
        ).to_pylist()
    return {r["message_id"]: r for r in rows}


@pytest.mark.parametrize("collectors", [0, 2], ids=["server", "collector-processes"])
def test_three_real_sdks_exactly_once_with_attribution(server_factory, collectors: int) -> None:
    server = server_factory(collectors=collectors)
    if collectors:  # the collector port serves only ingestion
        response = httpx.get(server.ingest_url + "/api/v1/status", timeout=10)
        assert response.status_code == 404 and "ingestion" in response.json()["error"]
    seg = SegmentClient(write_key=server.write_key, host=server.ingest_url, max_retries=2)
    seg.identify("ann", {"email": "ann@acme.com", "role": "trainer", "department": "Ops"},
                 message_id="seg-identify")
    seg.group("ann", "acme", {"name": "Acme", "domain": "acme.com"}, message_id="seg-group")
    seg.track("ann", "Training Completed", {"object_id": "course-1"}, message_id="seg-track")
    seg.page("ann", name="Home", message_id="seg-page")
    seg.flush()
    seg.join()

    rud = RudderClient(write_key=server.write_key, host=server.ingest_url, max_retries=2)  # gzip on
    assert rud.gzip is True
    rud.identify("bob", {"email": "bob@acme.com", "role": "executive"}, message_id="rud-identify")
    rud.group("bob", "acme", message_id="rud-group")
    rud.track("bob", "Plan Approved", {"object_id": "course-1"}, message_id="rud-track")
    rud.page("bob", name="Billing", message_id="rud-page")
    rud.flush()
    rud.join()

    ph = Posthog(server.write_key, host=server.ingest_url, max_retries=2, sync_mode=True)
    ph_track = str(uuid.uuid4())
    ph_group = str(uuid.uuid4())
    ph.capture("Dashboard Viewed", distinct_id="cat", groups={"company": "acme"}, uuid=ph_track)
    ph.group_identify("company", "acme", {"industry": "retail"}, uuid=ph_group)
    ph.shutdown()

    events = events_of(server)
    assert len(events) == 10
    folders = {event["source"].split(":", 1)[1].rpartition("/")[0] for event in events.values()}
    assert folders <= ({f"collector-{i}" for i in range(collectors)} if collectors else {""})
    assert events["seg-track"]["account_id"] == "acme"
    assert events["seg-track"]["attribution"] == "membership"
    assert events["seg-track"]["role"] == "trainer"
    assert events["rud-track"]["role"] == "executive"
    assert events["rud-page"]["name"] == "Billing"
    assert events[ph_track]["account_id"] == "acme" and events[ph_track]["attribution"] == "explicit"
    assert events[ph_track]["name"] == "Dashboard Viewed"
    assert events[ph_group]["type"] == "group"
    for event in events.values():
        # SPEC §4: timestamp = receivedAt − (sentAt − originalTimestamp)
        assert event["sent_at"] is not None
        expected = event["received_at"] - (event["sent_at"] - event["original_timestamp"])
        assert event["timestamp"] == expected
        assert abs(event["timestamp"] - event["original_timestamp"]) < dt.timedelta(seconds=5)
    from accountlens.workspace import Workspace

    with Workspace.open(server.root) as ws:
        account = ws.store.arrow("SELECT * FROM accounts").to_pylist()
        assert len(account) == 1 and account[0]["industry"] == "retail"
        assert account[0]["domain"] == "acme.com"


def batch_body(events: list[dict], **extra) -> bytes:
    return json.dumps({"batch": events, **extra}).encode()


def seg_event(mid: str, **extra) -> dict:
    return {"type": "track", "messageId": mid, "userId": "u1", "event": "Clicked",
            "timestamp": "2024-01-01T10:00:00Z", **extra}


def post(server: Server, path: str, body: bytes, auth: bool = True, **headers) -> httpx.Response:
    return httpx.post(server.url + path, content=body, auth=(server.write_key, "") if auth else None,
                      headers={"content-type": "application/json", **headers}, timeout=30)


def test_retries_with_same_message_id_store_one_event(server: Server) -> None:
    body = batch_body([seg_event("r1"), seg_event("r2")])
    for _ in range(3):
        assert post(server, "/v1/batch", body).status_code == 200
    server.flush()
    assert post(server, "/v1/batch", body).status_code == 200  # retry after loading, too
    assert post(server, "/v1/track", json.dumps(seg_event("r1")).encode()).status_code == 200
    events = events_of(server)
    assert sorted(events) == ["r1", "r2"]


def test_clock_skew_is_corrected(server: Server) -> None:
    # The device clock is 2 hours behind: both its timestamp and its sentAt are off by 2 h.
    now = dt.datetime.now(dt.UTC)
    device = now - dt.timedelta(hours=2)
    event = seg_event("skew", timestamp=(device - dt.timedelta(seconds=30)).isoformat())
    assert post(server, "/v1/batch", batch_body([event], sentAt=device.isoformat())).status_code == 200
    stored = events_of(server)["skew"]
    assert abs(stored["timestamp"] - (now - dt.timedelta(seconds=30))) < dt.timedelta(seconds=5)


def test_bad_requests_get_clear_json_errors(server: Server) -> None:
    big_event = seg_event("big", properties={"blob": "x" * 40_000})
    response = post(server, "/v1/batch", batch_body([big_event]))
    assert response.status_code == 400 and "32768-byte limit" in response.json()["error"]
    many = [seg_event(f"m{i}", properties={"blob": "y" * 20_000}) for i in range(30)]
    response = post(server, "/v1/batch", batch_body(many))
    assert response.status_code == 400 and "batch exceeds" in response.json()["error"]
    response = post(server, "/v1/batch", b"{not json")
    assert response.status_code == 400 and "invalid JSON" in response.json()["error"]
    response = post(server, "/v1/batch", b'{"batch": 3}')
    assert response.status_code == 400 and "`batch` must be a list" in response.json()["error"]
    response = post(server, "/v1/batch", b"\x1f\x8b garbage", **{"content-encoding": "gzip"})
    assert response.status_code == 400 and "gzip" in response.json()["error"]
    response = post(server, "/v1/batch", batch_body([seg_event("x")]), auth=False)
    assert response.status_code == 401 and "write key" in response.json()["error"]
    response = httpx.post(server.url + "/v1/batch", content=batch_body([seg_event("x")]),
                          auth=("wrong", ""), timeout=10)
    assert response.status_code == 401
    response = post(server, "/v1/bogus", b"{}")
    assert response.status_code == 404
    # none of the refused requests left anything behind
    assert events_of(server) == {}


def test_gzip_and_body_write_key(server: Server) -> None:
    body = gzip.compress(batch_body([seg_event("gz")]))
    assert post(server, "/v1/batch", body, **{"content-encoding": "gzip"}).status_code == 200
    keyed = batch_body([seg_event("bk")], writeKey=server.write_key)
    assert post(server, "/v1/batch", keyed, auth=False).status_code == 200
    assert sorted(events_of(server)) == ["bk", "gz"]


def test_events_without_identity_are_quarantined_and_replayable(server: Server) -> None:
    nameless = {"type": "track", "messageId": "q1", "event": "Clicked",
                "timestamp": "2024-01-01T10:00:00Z"}
    no_event = {"type": "track", "messageId": "q2", "userId": "u1",
                "timestamp": "2024-01-01T10:00:00Z"}
    assert post(server, "/v1/batch", batch_body([nameless, no_event, seg_event("ok")])).status_code == 200
    server.flush()
    listed = httpx.get(server.url + "/api/v1/quarantine", timeout=10).json()
    reasons = {q["message_id"]: q["reason"] for q in listed}
    assert reasons == {"q1": "no userId, anonymousId or groupId", "q2": "track without event name"}
    assert server.status()["quarantined"] == 2
    q1 = next(q["quarantine_id"] for q in listed if q["message_id"] == "q1")
    replay = httpx.post(server.url + "/api/v1/quarantine/replay", headers=admin_headers(server.root),
                        json={"ids": [q1], "patch": {"userId": "u7"}}, timeout=10).json()
    assert replay["inserted"] == 1
    remaining = httpx.get(server.url + "/api/v1/quarantine", timeout=10).json()
    assert [q["message_id"] for q in remaining] == ["q2"]
    events = events_of(server)
    assert sorted(events) == ["ok", "q1"] and events["q1"]["user_id"] == "u7"


@pytest.mark.parametrize("path", ["/batch/", "/capture/"])
def test_posthog_endpoints_raw(server: Server, path: str) -> None:
    body = {"api_key": server.write_key, "batch": [
        {"event": "$identify", "distinct_id": "p1", "uuid": "ph-1",
         "properties": {"$set": {"email": "p1@globex.com", "role": "admin"}},
         "timestamp": "2024-01-01T00:00:00Z"},
        {"event": "Report Built", "distinct_id": "p1", "uuid": "ph-2",
         "properties": {"$groups": {"company": "globex", "project": "x"}},
         "timestamp": "2024-01-01T00:01:00Z"},
    ]}
    assert post(server, path, json.dumps(body).encode(), auth=False).status_code == 200
    response = post(server, path, json.dumps({"batch": []}).encode(), auth=False)
    assert response.status_code == 401
    events = events_of(server)
    assert events["ph-2"]["account_id"] == "globex"
    assert events["ph-1"]["type"] == "identify"


def test_collector_processes_serve_several_workspaces_by_write_key(tmp_path) -> None:
    """`serve --dir A --dir B --collectors 2`: each collector process keeps a folder per
    workspace; the write key decides where an event goes, and each workspace loads its own."""
    from accountlens.workspace import Workspace
    from tests.conftest import start_server, write_key_of

    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        Workspace.init(root, name=root.name).close()
    server = start_server(roots[0], collectors=2, also=(roots[1],))
    try:
        for connection in range(4):  # four connections: both collector processes get some
            with httpx.Client(timeout=10) as client:
                for root in roots:
                    events = [seg_event(f"{root.name}-{connection}-{i}") for i in range(3)]
                    response = client.post(server.ingest_url + "/v1/batch",
                                           auth=(write_key_of(root), ""), content=batch_body(events),
                                           headers={"content-type": "application/json"})
                    assert response.status_code == 200, response.text
        for root in roots:
            flushed = httpx.post(server.url + "/api/v1/flush", params={"workspace": root.name},
                                 headers=admin_headers(server.root), timeout=30)
            assert flushed.status_code == 200
    finally:
        server.stop()
    for root in roots:
        with Workspace.open(root) as ws:
            ids = {r["message_id"]: r["source"] for r in ws.store.arrow(
                "SELECT message_id, source FROM events").to_pylist()}
        assert sorted(ids) == sorted(f"{root.name}-{c}-{i}" for c in range(4) for i in range(3))
        folders = {source.split(":", 1)[1].split("/")[0] for source in ids.values()}
        assert folders == {"collector-0", "collector-1"}


def test_a_taken_collector_port_is_a_clear_error(tmp_path) -> None:
    import socket
    import subprocess
    import sys

    from accountlens.workspace import Workspace
    from tests.conftest import free_port

    root = tmp_path / "ws"
    Workspace.init(root).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "accountlens", "serve", "--dir", str(root), "--port",
             str(free_port()), "--collectors", "1", "--collector-port", str(taken.getsockname()[1])],
            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "cannot listen on the collector port" in result.stderr
    assert "Traceback" not in result.stderr
    with Workspace.open(root) as ws:  # closed cleanly: the store opens again
        assert ws.store.scalar("SELECT count(*) FROM events") == 0
