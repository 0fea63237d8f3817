"""Property-based tests: any event, however malformed, is loaded or quarantined — never lost or fatal."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from accountlens.ingest.normalize import Limits, RequestError, decode_body, posthog_events, segment_events
from accountlens.workspace import Workspace

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=12),
                    st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)
timestamps = st.one_of(st.none(), st.sampled_from(
    ["2024-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "yesterday", "2024-06-01 12:00:00+02:00", ""]),
    st.integers(0, 2_000_000_000))

event = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["track", "page", "screen", "identify", "group", "alias", "TRACK", "bogus"]), scalars),
    "messageId": st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 50)),
    "userId": st.one_of(st.text(max_size=5), st.integers(0, 9), st.none()),
    "anonymousId": st.one_of(st.text(max_size=5), st.none()),
    "event": st.one_of(st.text(max_size=10), st.none(), st.integers()),
    "groupId": st.one_of(st.text(max_size=5), st.none()),
    "previousId": st.one_of(st.text(max_size=5), st.none()),
    "timestamp": timestamps,
    "sentAt": timestamps,
    "properties": st.one_of(json_values, st.dictionaries(st.sampled_from(["object_id", "actor_kind", "product"]), scalars)),
    "traits": json_values,
    "context": st.one_of(json_values, st.fixed_dictionaries({"groupId": st.one_of(st.text(max_size=4), st.integers())})),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, min_size=1, max_size=25))
def test_every_event_is_stored_or_quarantined(tmp_path_factory, events: list[dict]) -> None:
    root: Path = tmp_path_factory.mktemp("prop")
    path = root / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    with Workspace.init(root / "ws") as ws:
        result = ws.import_events(path)
        stored = ws.store.scalar("SELECT count(*) FROM events")
        quarantined = ws.store.scalar("SELECT count(*) FROM quarantine")
        assert result.received == len(events)
        assert result.inserted + result.duplicates + result.quarantined == len(events)
        assert stored == result.inserted
        assert quarantined <= result.quarantined
        # what was stored is well-formed
        bad = ws.store.scalar(
            "SELECT count(*) FROM events WHERE timestamp IS NULL OR type NOT IN "
            "('track','page','screen','identify','group','alias') OR attribution = 'pending'"
        )
        assert bad == 0
        again = ws.import_events(path)
        assert again.inserted == 0
        assert ws.store.scalar("SELECT count(*) FROM events") == stored


@settings(max_examples=200, deadline=None)
@example(body=b'{"batch": [{"properties": 3}]}', encoding=None)
@example(body=b'{"batch": [{"context": "x"}], "context": {"a": 1}}', encoding=None)
@example(body=b'{"batch": [{"event": "$identify", "$set": 5, "properties": {"$set": [1]}}]}', encoding=None)
@example(body=b'{"batch": [{"event": "$groupidentify", "properties": {"$group_key": {"a": 1}}}]}', encoding=None)
@given(body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())),
       encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity"]))
def test_request_decoding_only_raises_request_errors(body: bytes, encoding: str | None) -> None:
    limits = Limits(max_event_bytes=1000, max_batch_bytes=5000)
    try:
        payload = decode_body(body, encoding, limits)
        segment_events(payload, None, "2024-01-01T00:00:00Z")
    except RequestError:
        pass
    try:
        payload = decode_body(body, encoding, limits)
        posthog_events(payload, "2024-01-01T00:00:00Z", "company")
    except RequestError:
        pass
