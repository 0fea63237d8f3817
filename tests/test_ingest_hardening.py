"""Hostile and broken traffic against a real `accountlens serve` (issue 16, findings 1-3):
implausible timestamps, poison (deeply nested) batches and wrongly typed fields. Each test
counts the events and quarantined rows before and after: nothing acknowledged is lost, nothing
refused is half-loaded, and no request gets a 5xx that SDKs would retry forever."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accountlens.ingest.normalize import Limits
from accountlens.serve.collector import Collector, CollectorFront, Sink
from accountlens.workspace import Workspace
from tests.conftest import Server

LIBRARY = {"library": {"name": "analytics-python", "version": "2.3.0"}}
BIG = 123456789012345678901234567890  # orjson reads it as 1.2345678901234568e+29


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _post(server: Server, path: str, body: Any, url: str | None = None) -> httpx.Response:
    """POST JSON (a value, or its bytes as they are) with the write key as Basic user."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post((url or server.ingest_url) + path, content=content,
                      auth=(server.write_key, ""), timeout=30,
                      headers={"content-type": "application/json"})


def _counts(server: Server) -> tuple[int, int]:
    """(events, quarantined) once everything acknowledged is loaded."""
    server.flush()
    status = server.status()
    assert status["loader_error"] is None
    return status["events"], status["quarantined"]


def _reasons(server: Server) -> dict[str, str]:
    rows = httpx.get(server.url + "/api/v1/quarantine?limit=1000", timeout=30).json()
    return {row["message_id"]: row["reason"] for row in rows}


def _stored(root: Path) -> dict[str, dict]:
    with Workspace.open(root) as ws:
        rows = ws.store.arrow(
            """SELECT message_id, user_id, group_id, timestamp, original_timestamp, received_at,
                      CAST(properties AS VARCHAR) AS properties FROM events""").to_pylist()
    return {row["message_id"]: row for row in rows}


def _track(message_id: str, **fields: Any) -> dict:
    return {"type": "track", "event": "Report Created", "userId": "ann", "messageId": message_id,
            **fields}


# --- what the engines do (the rules below exist because of it) -----------------------------
def test_what_duckdb_and_orjson_do_with_extreme_timestamps_and_numbers() -> None:
    import duckdb
    import orjson

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")

    def cast(text: str) -> str | None:
        return con.execute("SELECT CAST(TRY_CAST(? AS TIMESTAMPTZ) AS VARCHAR)", [text]).fetchone()[0]

    # TRY_CAST accepts far more than 4-digit years: the pipeline bounds them itself
    assert cast("10000-01-01T00:00:00Z") == "10000-01-01 00:00:00+00"
    assert cast("-0044-03-15T00:00:00Z") == "0045-03-15 (BC) 00:00:00+00"
    assert cast("0001-01-01T00:00:00Z") == "0001-01-01 00:00:00+00"
    assert cast("infinity") == "infinity"
    assert cast("294247-01-01") is not None and cast("294248-01-01") is None
    # ... and arithmetic over such values raises instead of giving NULL (one event used to
    # fail every later load of its workspace)
    for sql in ("SELECT TIMESTAMPTZ '2024-01-01' - (TIMESTAMPTZ 'infinity' - TIMESTAMPTZ '2024-01-01')",
                "SELECT TIMESTAMPTZ '2024-01-01' - (TRY_CAST('294000-01-01' AS TIMESTAMPTZ) "
                "- TRY_CAST('-290000-01-01' AS TIMESTAMPTZ))"):
        with pytest.raises(duckdb.Error):
            con.execute(sql).fetchall()
    # orjson reads an integer beyond 64 bits as a float; DuckDB's from_json keeps its digits
    assert orjson.loads(str(BIG)) == 1.2345678901234568e29
    assert con.execute("""SELECT from_json(?, '{"u": "VARCHAR"}').u""",
                       [f'{{"u": {BIG}}}']).fetchone()[0] == str(BIG)
    # orjson writes 254 levels of nesting at most (and reads 1024)
    orjson.dumps(orjson.loads(_deep(254)))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(orjson.loads(_deep(255)))


# --- 1. timestamp plausibility -------------------------------------------------------------
def _timestamp_batch(now: datetime) -> tuple[list[dict], set[str], dict[str, str]]:
    """Events with implausible times: (batch, ids stored, id → start of its quarantine reason)."""
    batch = [
        _track("ok"),
        # one event dated 9999 used to move every default as-of (MAU 0, ARR 0)
        _track("year-9999", timestamp="9999-12-31T23:59:59Z", context=LIBRARY),
        _track("in-an-hour", timestamp=_iso(now + timedelta(hours=1))),
        # a clock a year behind sends sentAt from the same clock: corrected into the future
        _track("clock-behind", timestamp=_iso(now), sentAt=_iso(now - timedelta(days=400))),
        # a clock reset to 1970 with sentAt from the same clock: corrected, kept
        _track("clock-reset", timestamp="1970-01-01T00:00:05Z", sentAt="1970-01-01T00:00:10Z"),
        _track("year-1", timestamp="0001-01-01T00:00:00Z"),
        _track("epoch", timestamp="1970-01-01T00:00:00Z"),
        _track("year-10000", timestamp="10000-01-01T00:00:00Z"),
        _track("caesar", timestamp="-0044-03-15T12:00:00Z"),
        # receivedAt − (sentAt − timestamp) lands in 4951 BC
        _track("skew-to-4951-bc", timestamp="2024-01-01T00:00:00Z", sentAt="9001-01-01T00:00:00Z"),
        # these two made the correction raise, failing every later load of the workspace
        _track("infinity", timestamp="infinity", sentAt="2024-01-01T00:00:00Z"),
        _track("skew-overflow", timestamp="2024-01-01T00:00:00Z", sentAt="294000-01-01T00:00:00Z"),
    ]
    stored = {"ok", "year-9999", "in-an-hour", "clock-behind", "clock-reset"}
    quarantined = {
        "year-1": "timestamp 0001-01-01T00:00:00Z before ingest.earliest_timestamp 2000-01-01T00:00:00Z",
        "epoch": "timestamp 1970-01-01T00:00:00Z before ingest.earliest_timestamp 2000-01-01T00:00:00Z",
        "year-10000": "timestamp 10000-01-01T00:00:00Z outside the years 0001-9999",
        "caesar": "timestamp -0044-03-15T12:00:00Z outside the years 0001-9999",
        "skew-to-4951-bc": "timestamp 2024-01-01T00:00:00Z (-4951-",
        "infinity": "timestamp infinity outside the years 0001-9999",
        "skew-overflow": "sentAt 294000-01-01T00:00:00Z outside the years 0001-9999",
    }
    return batch, stored, quarantined


def test_implausible_timestamps_are_set_to_the_receive_time_or_quarantined(server_factory,
                                                                          tmp_path: Path) -> None:
    server = server_factory()
    assert _counts(server) == (0, 0)
    now = datetime.now(UTC)
    batch, stored, quarantined = _timestamp_batch(now)
    assert _post(server, "/v1/batch", {"batch": batch}).status_code == 200
    assert _counts(server) == (len(stored), len(quarantined))
    reasons = _reasons(server)
    assert set(reasons) == set(quarantined)
    for message_id, start in quarantined.items():
        assert reasons[message_id].startswith(start), (message_id, reasons[message_id])
    assert reasons["skew-to-4951-bc"].endswith(
        "corrected by sentAt 9001-01-01T00:00:00Z) before ingest.earliest_timestamp 2000-01-01T00:00:00Z")
    status = server.status()
    # counted per client: the SDK's name and version, else where the event came from
    assert status["ingest_warnings"] == {
        "timestamp in the future": {"analytics-python 2.3.0": 1, "collector": 1}}
    assert status["last_event_at"] < _iso(now + timedelta(hours=23))
    # the loader goes on loading after the events that used to stop it
    assert _post(server, "/v1/track", _track("after")).status_code == 200
    assert _counts(server) == (len(stored) + 1, len(quarantined))
    server.stop()

    events = _stored(server.root)
    assert set(events) == stored | {"after"}
    clamped = events["year-9999"]
    assert clamped["timestamp"] == clamped["received_at"]
    assert clamped["original_timestamp"].year == 9999
    behind = events["clock-behind"]
    assert behind["timestamp"] == behind["received_at"]
    hour = events["in-an-hour"]  # within the tolerance: kept as sent
    assert hour["timestamp"] - hour["received_at"] > timedelta(minutes=50)
    reset = events["clock-reset"]
    assert reset["timestamp"] == reset["received_at"] - timedelta(seconds=5)
    assert reset["original_timestamp"].year == 1970

    with Workspace.open(server.root) as ws:
        # replay: the quarantined event loads once its timestamp is patched
        epoch = [row["quarantine_id"] for row in ws.quarantine() if row["message_id"] == "epoch"]
        result = ws.replay_quarantine(epoch, patch={"timestamp": "2024-05-01T00:00:00Z"})
        assert (result.inserted, result.quarantined) == (1, 0)
        status = ws.status()
        assert (status["events"], status["quarantined"]) == (len(stored) + 2, len(quarantined) - 1)
        warnings = ws.store.rows("SELECT message_id, value, client FROM ingest_warnings ORDER BY 1")
    assert warnings == [
        {"message_id": "clock-behind", "value": batch[3]["timestamp"], "client": "collector"},
        {"message_id": "year-9999", "value": "9999-12-31T23:59:59Z", "client": "analytics-python 2.3.0"}]


def test_imports_apply_the_same_rules_and_the_bounds_are_configurable(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    batch, stored, quarantined = _timestamp_batch(now)
    received = _iso(now)  # as a collector would have set it: the sentAt correction needs it
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({**e, "receivedAt": received}) + "\n" for e in batch))
    with Workspace.init(tmp_path / "ws") as ws:
        result = ws.import_events(path)
        assert (result.inserted, result.quarantined) == (len(stored), len(quarantined))
        assert result.warnings == {"timestamp in the future": 2}
        assert ws.status()["ingest_warnings"] == {
            "timestamp in the future": {"analytics-python 2.3.0": 1, "import:events.jsonl": 1}}
        assert ws.import_events(path).inserted == 0  # a repeated import warns nothing again
        assert sum(ws.status()["ingest_warnings"]["timestamp in the future"].values()) == 2

    config = tmp_path / "ws2" / "accountlens.toml"
    Workspace.init(config.parent).close()
    text = config.read_text()
    text = text.replace("future_tolerance_seconds = 82800", "future_tolerance_seconds = 0")
    text = text.replace("earliest_timestamp = 2000-01-01T00:00:00Z", "earliest_timestamp = 1960-01-01")
    config.write_text(text)
    with Workspace.open(config.parent) as ws:
        assert ws.config.ingest.earliest_timestamp == datetime(1960, 1, 1, tzinfo=UTC)
        result = ws.import_events(path)
        # 1970 is now plausible; an hour ahead is now beyond the tolerance
        assert (result.inserted, result.quarantined) == (len(stored) + 1, len(quarantined) - 1)
        assert result.warnings == {"timestamp in the future": 3}
        assert ws.store.scalar("SELECT count(*) FROM events WHERE timestamp > received_at") == 0


# --- 2. poison batches ---------------------------------------------------------------------
def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_segment(message_id: str, depth: int) -> bytes:
    """A batch of a good event and one whose property nests `depth` lists (plus the event and
    its properties: 254 levels in all is what the log can store)."""
    good = json.dumps(_track(message_id + "-good")).encode()
    return (b'{"batch": [' + good + b', {"type": "track", "event": "e", "userId": "u", '
            b'"messageId": "' + message_id.encode() + b'", "properties": {"x": ' + _deep(depth)
            + b"}}]}")


def _deep_posthog(server: Server, message_id: str, depth: int) -> bytes:
    good = json.dumps({"event": "e", "distinct_id": "u", "uuid": message_id + "-good"}).encode()
    return (b'{"api_key": "' + server.write_key.encode() + b'", "batch": [' + good
            + b', {"event": "e", "distinct_id": "u", "uuid": "' + message_id.encode()
            + b'", "properties": {"x": ' + _deep(depth) + b"}}]}")


@pytest.mark.parametrize("collectors", [0, 1], ids=["server", "collector-process"])
def test_deeply_nested_batches_get_a_json_400_and_store_nothing(server_factory,
                                                                collectors: int) -> None:
    server = server_factory(collectors=collectors)
    assert _counts(server) == (0, 0)
    accepted = 0
    for depth in (1, 100, 252, 253, 254, 600, 1019, 1020, 1023, 1024, 5000):
        for path, body in (("/v1/batch", _deep_segment(f"s{depth}", depth)),
                           ("/batch/", _deep_posthog(server, f"p{depth}", depth))):
            response = _post(server, path, body)
            assert response.headers["content-type"] == "application/json", (path, depth)
            if depth <= 252:
                assert response.status_code == 200, (path, depth, response.text)
                accepted += 2
            else:
                assert response.status_code == 400, (path, depth, response.text)
                error = response.json()["error"]
                assert "nest" in error or "invalid JSON" in error, error
    # the deepest storable events load (DuckDB reads 254 levels), the refused ones left nothing
    assert _counts(server) == (accepted, 0)


def test_an_unexpected_failure_in_the_collector_answers_json_500() -> None:
    class BrokenLog:
        def append(self, data: bytes) -> Any:
            raise RuntimeError("a bug")

    sink = Sink(("wk",), Limits(32768, 512000), "company", BrokenLog())
    app = CollectorFront(Collector([sink], 10.0), _no_app)
    sent: list[dict] = []
    body = json.dumps({"batch": [_track("m1")]}).encode()

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    auth = b"Basic " + base64.b64encode(b"wk:")
    asyncio.run(app({"type": "http", "method": "POST", "path": "/v1/batch",
                     "headers": [(b"authorization", auth)]}, receive, send))
    assert sent[0]["status"] == 500
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"success": False, "error": "internal error"}


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("an ingestion request reached the API app")


# --- 3. wrong types ------------------------------------------------------------------------
def test_wrongly_typed_fields_are_quarantined_and_numbers_keep_every_digit(server) -> None:
    assert _counts(server) == (0, 0)
    segment = [
        _track("user-object", userId={"a": 1}),
        _track("user-list", userId=["ann"]),
        _track("user-bool", userId=True),
        _track("anonymous-bool", anonymousId=False),
        _track("event-object", event={"name": "x"}),
        _track("type-list", type=["track"]),
        {"type": "group", "groupId": {"id": "acme"}, "userId": "ann", "messageId": "group-object"},
        {"type": "alias", "userId": "ann", "previousId": [1], "messageId": "previous-list"},
        {"type": "page", "userId": "ann", "name": {"n": 1}, "messageId": "name-object"},
        _track("properties-list", properties=[1, 2]),
        _track("properties-string", properties="x"),
        {"type": "identify", "userId": "ann", "traits": 5, "messageId": "traits-number"},
        _track("context-string", context="web"),
        _track("context-group-object", context={"groupId": {"id": "acme"}}),
        {"type": "identify", "userId": "ann", "context": {"traits": [1]}, "messageId": "context-traits"},
        # numbers are ids too: kept as their decimal text, every digit
        _track("user-number", userId=42),
        _track("user-30-digits", userId=BIG, properties={"big": -BIG, "small": 7}),
        _track("user-string-true", userId="true"),  # a string that reads like a boolean is a string
        _track("good"),
    ]
    # a messageId of the wrong type is quarantined too (stored under its JSON text)
    segment.append(_track({"id": 1}))
    expected = {
        "user-object": "userId must be a string or number, got object",
        "user-list": "userId must be a string or number, got array",
        "user-bool": "userId must be a string or number, got boolean",
        "anonymous-bool": "anonymousId must be a string or number, got boolean",
        "event-object": "event must be a string or number, got object",
        "type-list": "type must be a string or number, got array",
        "group-object": "groupId must be a string or number, got object",
        "previous-list": "previousId must be a string or number, got array",
        "name-object": "name must be a string or number, got object",
        "properties-list": "properties must be an object, got array",
        "properties-string": "properties must be an object, got string",
        "traits-number": "traits must be an object, got number",
        "context-string": "context must be an object, got string",
        "context-group-object": "context.groupId must be a string or number, got object",
        "context-traits": "context.traits must be an object, got array",
        '{"id":1}': "messageId must be a string or number, got object",
    }
    assert _post(server, "/v1/batch", {"batch": segment}).status_code == 200
    posthog = [
        {"event": "e", "distinct_id": {"id": "ann"}, "uuid": "ph-distinct-object"},
        {"event": "e", "distinct_id": "ann", "properties": [1], "uuid": "ph-properties-list"},
        {"event": "e", "distinct_id": "ann", "uuid": "ph-group-object",
         "properties": {"$groups": {"company": {"id": "acme"}}}},
        {"event": "$identify", "distinct_id": "ann", "uuid": "ph-anon-object",
         "properties": {"$anon_distinct_id": ["x"]}},
        {"event": "e", "distinct_id": BIG, "uuid": "ph-distinct-30-digits",
         "properties": {"$groups": {"company": 99}}},
    ]
    expected.update({
        "ph-distinct-object": "userId must be a string or number, got object",
        "ph-properties-list": "properties must be an object, got array",
        "ph-group-object": "context.groupId must be a string or number, got object",
        "ph-anon-object": "anonymousId must be a string or number, got array",
    })
    response = _post(server, "/batch/", {"api_key": server.write_key, "batch": posthog})
    assert response.status_code == 200, response.text
    acknowledged = len(segment) + len(posthog)
    assert _counts(server) == (acknowledged - len(expected), len(expected))
    assert _reasons(server) == expected
    server.stop()

    events = _stored(server.root)
    assert set(events) == {"user-number", "user-30-digits", "user-string-true", "good",
                           "ph-distinct-30-digits"}
    assert events["user-number"]["user_id"] == "42"
    assert events["user-30-digits"]["user_id"] == str(BIG)
    assert json.loads(events["user-30-digits"]["properties"]) == {"big": -BIG, "small": 7}
    assert str(BIG) in events["user-30-digits"]["properties"]
    assert events["user-string-true"]["user_id"] == "true"
    assert events["ph-distinct-30-digits"]["user_id"] == str(BIG)
    assert events["ph-distinct-30-digits"]["group_id"] == "99"


# --- 4. any nested or mistyped payload: 200 (stored or quarantined) or a JSON 4xx ---------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.text(max_size=6),
                     st.floats(allow_nan=False, allow_infinity=False))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=5)
# (depth, "[" or "{"): replaced by that many levels of nesting when the body is written
_nested = st.tuples(st.integers(0, 1100), st.sampled_from("[{"))
_times = st.one_of(st.sampled_from([
    "2024-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
    "-0044-03-15T00:00:00Z", "-4950-01-01T00:00:00Z", "294247-01-01T00:00:00Z", "infinity",
    "-infinity", "epoch", "1970-01-01T00:00:00Z", "0000-01-01T00:00:00Z", ""]), _values)
_fields = ("userId", "anonymousId", "groupId", "previousId", "event", "name", "properties",
           "traits", "context")
_event = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["track", "identify", "group", "page", "alias"]), _values,
                       _nested)},
    optional={**{name: st.one_of(_values, _nested) for name in _fields},
              "userId": st.one_of(st.text(min_size=1, max_size=4), _values, _nested),
              "timestamp": _times, "sentAt": _times})
_request = st.tuples(st.sampled_from(["/v1/batch", "/v1/track", "/batch/", "/capture/"]),
                     st.lists(_event, min_size=1, max_size=4))


def _body(path: str, events: list[dict], server: Server, ids: itertools.count) -> bytes:
    """The request body, every event with a new message id; nested placeholders written out."""
    deep: dict[str, bytes] = {}

    def place(value: Any) -> Any:
        if isinstance(value, tuple):  # (depth, bracket)
            token = f"@deep{len(deep)}@"
            opening = value[1].encode()
            closing = b"]" if opening == b"[" else b"}"
            inner = b'{"k": ' if opening == b"{" else b"["
            # {"k": {"k": ... 0 ...}}: one object per level
            deep[token] = (inner * value[0] + b"0" + closing * value[0]) if value[0] else b"0"
            return token
        return value

    written = []
    for event in events:
        event = {key: place(value) for key, value in event.items()}
        if path.startswith("/v1/"):
            written.append({**event, "messageId": f"hyp-{next(ids)}"})
        else:  # PostHog: distinct_id, properties, uuid
            written.append({"event": event.get("event", "e"), "distinct_id": event.get("userId"),
                            "properties": event.get("properties"), "timestamp": event.get("timestamp"),
                            "uuid": f"hyp-{next(ids)}"})
    if path == "/v1/track":
        payload: Any = written[0]
    elif path == "/capture/":
        payload = {"api_key": server.write_key, **written[0]}
    elif path == "/batch/":
        payload = {"api_key": server.write_key, "batch": written}
    else:
        payload = {"batch": written}
    text = json.dumps(payload).encode()
    for token, raw in deep.items():
        text = text.replace(f'"{token}"'.encode(), raw)
    return text


def test_any_nested_or_mistyped_payload_is_stored_quarantined_or_refused_with_json(server) -> None:
    before = _counts(server)
    ids = itertools.count()
    acknowledged = []

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=_request)
    def post_one(request: tuple[str, list[dict]]) -> None:
        path, events = request
        single = path in ("/v1/track", "/capture/")
        body = _body(path, events[:1] if single else events, server, ids)
        response = _post(server, path, body)
        assert response.status_code < 500, (response.status_code, response.text, body[:300])
        assert response.headers["content-type"] == "application/json"
        assert response.json()["success"] is (response.status_code == 200)
        if response.status_code == 200:
            acknowledged.append(1 if single else len(events))
        else:
            assert 400 <= response.status_code < 500
            assert re.search(r"nest|invalid JSON|limit", response.json()["error"]), response.text

    post_one()
    events, quarantined = _counts(server)
    # every acknowledged event is stored or quarantined (each has its own message id)
    assert (events - before[0]) + (quarantined - before[1]) == sum(acknowledged)
    assert sum(acknowledged) > 0
