"""Personal data at ingest (`ingest.pii`, docs/privacy.md): keep, drop, hash and hash_email on
event properties, traits and context.traits, applied before anything is stored (events, users,
quarantine); hashes are salted SHA-256 computed here independently; equal values hash alike
(joins work); hash_email keeps the domain, so attribution by e-mail domain still works."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accountlens.workspace import Workspace

PII = {"email": "hash_email", "phone": "drop", "ssn": "hash", "plan": "keep", "score": "hash",
       'we"ird/key~1': "hash", "'); DROP TABLE events; --": "drop"}


def pii_workspace(root: Path, pii: dict[str, str], csvs: dict[str, str] | None = None) -> Workspace:
    Workspace.init(root, name="pii").close()
    toml = root / "accountlens.toml"
    setting = "pii = {" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in pii.items()) + "}"
    toml.write_text(toml.read_text().replace("pii = {}", setting))
    ws = Workspace.open(root)
    assert ws.config.ingest.pii == pii
    for kind, text in (csvs or {}).items():
        (root.parent / f"{kind}.csv").write_text(text)
        ws.import_entities(kind, root.parent / f"{kind}.csv")
    return ws


def load(ws: Workspace, path: Path, events: list[dict]):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return ws.import_events(path)


def salted(ws: Workspace, value: str) -> str:
    """The salted hash, computed here (lower-casing, where an action does, is DuckDB's
    `lower`: Python's differs on a few letters, e.g. 'İ')."""
    salt = ws.store.scalar("SELECT value FROM workspace_secrets WHERE name = 'salt'")
    return hashlib.sha256((salt + value).encode()).hexdigest()


def json_of(ws: Workspace, sql: str) -> dict:
    value = ws.store.scalar(sql)
    return json.loads(value) if value is not None else None


ACCOUNTS = "account_id,name,domain\nacme,Acme,acme.com\n"


@pytest.fixture
def ws(tmp_path: Path):
    workspace = pii_workspace(tmp_path / "ws", PII, {"accounts": ACCOUNTS})
    yield workspace
    workspace.close()


def test_each_action_on_properties_traits_and_context_traits(ws: Workspace, tmp_path: Path) -> None:
    weird = 'we"ird/key~1'
    result = load(ws, tmp_path / "e.jsonl", [
        {"type": "identify", "messageId": "i1", "userId": "ann", "timestamp": "2024-03-01T09:00:00Z",
         "traits": {"email": "Ann.Lee@ACME.com", "phone": "+1 555", "ssn": "123-45", "plan": "pro",
                    "name": "Ann", weird: "x", "'); DROP TABLE events; --": 1}},
        {"type": "track", "messageId": "t1", "userId": "ann", "event": "Report Created",
         "timestamp": "2024-03-01T10:00:00Z",
         "properties": {"ssn": "123-45", "phone": "+1 555", "score": 42, "plan": "pro",
                        "object_id": "r1", "nested": {"email": "kept@nested.io"}},
         "context": {"traits": {"email": "ann.lee@acme.com", "phone": "1"}, "ip": "1.2.3.4"}},
    ])
    assert (result.inserted, result.quarantined) == (2, 0)
    email = salted(ws, "ann.lee") + "@acme.com"  # local part lower-cased, domain kept
    traits = json_of(ws, "SELECT traits FROM events WHERE message_id = 'i1'")
    assert traits == {"email": email, "ssn": salted(ws, "123-45"), "plan": "pro", "name": "Ann",
                      'we"ird/key~1': salted(ws, "x")}
    props = json_of(ws, "SELECT properties FROM events WHERE message_id = 't1'")
    # a number is hashed as its JSON text; only top-level keys are looked at
    assert props == {"ssn": salted(ws, "123-45"), "score": salted(ws, "42"), "plan": "pro",
                     "object_id": "r1", "nested": {"email": "kept@nested.io"}}
    context = json_of(ws, "SELECT context FROM events WHERE message_id = 't1'")
    assert context == {"traits": {"email": email}, "ip": "1.2.3.4"}
    # the profile reads the transformed traits
    user = ws.store.rows("SELECT email, traits FROM users WHERE user_id = 'ann'")[0]
    assert user["email"] == email and json.loads(user["traits"])["ssn"] == salted(ws, "123-45")
    assert ws.store.scalar("SELECT object_id FROM events WHERE message_id = 't1'") == "r1"
    stored = " ".join(str(r) for r in ws.store.rows("SELECT * FROM events") +
                      ws.store.rows("SELECT * FROM users"))
    for secret in ("+1 555", "123-45", "Ann.Lee", "ann.lee"):
        assert secret not in stored


def test_equal_values_hash_alike_so_joins_still_work(ws: Workspace, tmp_path: Path) -> None:
    load(ws, tmp_path / "e.jsonl", [
        {"type": "identify", "messageId": "i1", "userId": "ann", "traits": {"ssn": "S-1"},
         "timestamp": "2024-03-01T09:00:00Z"},
        {"type": "track", "messageId": "t1", "userId": "bob", "event": "Viewed",
         "properties": {"ssn": "S-1"}, "timestamp": "2024-03-01T10:00:00Z"},
        {"type": "track", "messageId": "t2", "userId": "cat", "event": "Viewed",
         "properties": {"ssn": "S-2"}, "timestamp": "2024-03-01T10:00:00Z"},
    ])
    joined = ws.store.rows(
        """SELECT e.message_id FROM events e JOIN users u
           ON e.properties->>'ssn' = u.traits->>'ssn' WHERE u.user_id = 'ann' AND e.type = 'track'""")
    assert joined == [{"message_id": "t1"}]


def test_email_domain_attribution_still_works_with_hash_email(ws: Workspace, tmp_path: Path) -> None:
    """SPEC §3.1 rule 3: a user without membership or explicit account is attributed by the
    domain of their e-mail; hash_email keeps it."""
    load(ws, tmp_path / "e.jsonl", [
        {"type": "identify", "messageId": "i1", "userId": "ann",
         "traits": {"email": "Ann@Acme.COM"}, "timestamp": "2024-03-01T09:00:00Z"},
        {"type": "track", "messageId": "t1", "userId": "ann", "event": "Report Created",
         "timestamp": "2024-03-01T10:00:00Z"},
    ])
    assert ws.store.rows("SELECT account_id, attribution FROM events WHERE message_id = 't1'") == [
        {"account_id": "acme", "attribution": "domain"}]
    assert ws.store.scalar("SELECT email FROM users") == salted(ws, "ann") + "@acme.com"


def test_users_email_is_hashed_with_hash(tmp_path: Path) -> None:
    with pii_workspace(tmp_path / "ws", {"email": "hash"}) as ws:
        load(ws, tmp_path / "e.jsonl", [
            {"type": "identify", "messageId": "i1", "userId": "ann",
             "traits": {"email": "ann@acme.com"}, "timestamp": "2024-03-01T09:00:00Z"}])
        assert ws.store.scalar("SELECT email FROM users") == salted(ws, "ann@acme.com")


def test_quarantined_events_are_protected_and_not_hashed_twice_on_replay(ws: Workspace,
                                                                         tmp_path: Path) -> None:
    result = load(ws, tmp_path / "e.jsonl", [
        {"type": "track", "messageId": "q1", "userId": "ann", "timestamp": "2024-03-01T10:00:00Z",
         "properties": {"ssn": "123-45", "phone": "+1 555"},
         "traits": {"email": "ann@acme.com"}, "context": {"traits": {"phone": "9"}, "x": 1}},
        {"type": "track", "messageId": "q2", "userId": "bob", "event": "E",
         "timestamp": "2024-03-01T10:00:00Z", "properties": ["ssn", "123-45"]},
    ])
    assert result.quarantine_reasons == {"track without event name": 1,
                                         "properties must be an object, got array": 1}
    raw = {r["message_id"]: json.loads(r["raw"]) for r in ws.quarantine()}
    assert raw["q1"]["properties"] == {"ssn": salted(ws, "123-45")}
    assert raw["q1"]["traits"] == {"email": salted(ws, "ann") + "@acme.com"}
    assert raw["q1"]["context"] == {"traits": {}, "x": 1}
    assert raw["q2"]["properties"] == ["ssn", "123-45"]  # not an object: kept for the reason
    replayed = ws.replay_quarantine(patch={"event": "Fixed"})
    assert replayed.inserted == 1
    props = json_of(ws, "SELECT properties FROM events WHERE message_id = 'q1'")
    assert props == {"ssn": salted(ws, "123-45")}  # once, not the hash of the hash
    assert ws.store.scalar("SELECT email FROM users WHERE user_id = 'ann'") == \
        salted(ws, "ann") + "@acme.com"


def test_deleting_by_email_finds_the_hashed_address_and_refuses_the_person(
        ws: Workspace, tmp_path: Path) -> None:
    load(ws, tmp_path / "e.jsonl", [
        {"type": "identify", "messageId": "i1", "userId": "ann",
         "traits": {"email": "ann@acme.com"}, "timestamp": "2024-03-01T09:00:00Z"}])
    result = ws.delete_user(email="ANN@acme.com")
    assert result["users"] == 1 and result["removed"]["users"] == 1
    again = load(ws, tmp_path / "again.jsonl", [
        {"type": "identify", "messageId": "i2", "userId": "ann-new",
         "traits": {"email": "Ann@Acme.com"}, "timestamp": "2024-03-02T09:00:00Z"},
        {"type": "identify", "messageId": "i3", "userId": "bob",
         "traits": {"email": "bob@acme.com"}, "timestamp": "2024-03-02T09:00:00Z"}])
    assert (again.suppressed, again.inserted) == (1, 1)


def test_without_pii_settings_nothing_changes(tmp_path: Path) -> None:
    with pii_workspace(tmp_path / "ws", {"email": "keep"}) as ws:
        event = {"type": "track", "messageId": "t1", "userId": "ann", "event": "E",
                 "timestamp": "2024-03-01T10:00:00Z",
                 "properties": {"email": "Ann@Acme.com", "phone": "1"}}
        load(ws, tmp_path / "e.jsonl", [event])
        assert json_of(ws, "SELECT properties FROM events") == event["properties"]


VALUES = st.text(min_size=1, max_size=40).filter(lambda v: v.strip() == v and len(v.strip()) > 2)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.lists(VALUES, min_size=1, max_size=4, unique=True))
def test_any_string_hashes_deterministically_and_is_never_stored(tmp_path_factory, values) -> None:
    folder = tmp_path_factory.mktemp("pii")
    with pii_workspace(folder / "ws", {"secret": "hash", "mail": "hash_email"}) as ws:
        marked = [f"secret:{v}" for v in values]
        events = [{"type": "track", "messageId": f"m{i}-{j}", "userId": f"u{i}", "event": "E",
                   "timestamp": "2024-03-01T10:00:00Z",
                   "properties": {"secret": value}, "traits": {"mail": f"{value}@Example.org"},
                   "context": {"traits": {"secret": value}}}
                  for i, value in enumerate(marked) for j in range(2)]
        events.append({"type": "track", "messageId": "bad", "userId": "u", "timestamp": "nope",
                       "properties": {"secret": marked[0]}})  # quarantined: raw kept protected
        result = load(ws, folder / "e.jsonl", events)
        assert (result.inserted, result.quarantined) == (2 * len(marked), 1)
        for i, value in enumerate(marked):
            stored = {r["h"] for r in ws.store.rows(
                f"""SELECT properties->>'secret' AS h FROM events WHERE user_id = 'u{i}'
                    UNION SELECT context->>'$.traits.secret' FROM events WHERE user_id = 'u{i}'""")}
            assert stored == {salted(ws, value)}
            assert ws.store.scalar(f"SELECT DISTINCT traits->>'mail' FROM events WHERE user_id = 'u{i}'") \
                == salted(ws, ws.store.scalar("SELECT lower(?)", [value])) + "@example.org"
        dump = json.dumps([ws.store.rows(f"SELECT * FROM {table}")
                           for table in ("events", "users", "quarantine")],
                          default=str, ensure_ascii=False)
        for value in marked:
            for form in (value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
                assert form not in dump


def test_drop_alone(tmp_path: Path) -> None:
    """Only `drop` keys: no pointer of a hashed key is needed (DuckDB refuses unused ones)."""
    with pii_workspace(tmp_path / "ws", {"phone": "drop"}) as ws:
        load(ws, tmp_path / "e.jsonl", [
            {"type": "identify", "messageId": "i1", "userId": "ann", "timestamp": "2024-03-01T09:00:00Z",
             "traits": {"phone": "+1 555", "email": "ann@acme.com"}},
            {"type": "track", "messageId": "q1", "userId": "ann", "timestamp": "2024-03-01T09:00:00Z",
             "properties": {"phone": "+1 555"}}])
        assert json_of(ws, "SELECT traits FROM users") == {"email": "ann@acme.com"}
        assert "555" not in ws.quarantine()[0]["raw"]
