"""Account attribution rules 1–4 (SPEC §3.1) on a small, readable fixture with hand-set answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accountlens.workspace import Workspace


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def track(mid: str, ts: str, user: str | None = None, **extra) -> dict:
    event = {"type": "track", "messageId": mid, "event": "Report Viewed", "timestamp": ts}
    if user:
        event["userId"] = user
    event.update(extra)
    return event


@pytest.fixture
def crm(ws: Workspace, tmp_path: Path) -> Workspace:
    ws.import_entities("accounts", write_csv(
        tmp_path / "accounts.csv", "account_id,name,domain,industry",
        "acme,Acme,acme.com,retail", "globex,Globex,globex.com,energy",
        "twin1,Twin One,twins.com,retail", "twin2,Twin Two,twins.com,retail",
    ))
    ws.import_entities("units", write_csv(
        tmp_path / "units.csv", "unit_id,account_id,kind,name,parent_unit_id",
        "acme-sales,acme,department,Sales,", "acme-emea,acme,team,EMEA,acme-sales",
        "acme-fin,acme,department,Finance,",
    ))
    ws.import_entities("users", write_csv(
        tmp_path / "users.csv", "user_id,email,name",
        "ann,ann@acme.com,Ann", "con,con@gmail.com,Consultant", "dan,dan@globex.com,Dan",
        "tia,tia@twins.com,Tia", "ray,ray@ACME.com,Ray",
    ))
    ws.import_entities("memberships", write_csv(
        tmp_path / "memberships.csv", "user_id,account_id,unit_id,role,valid_from,valid_to",
        # ann changes role and team on March 1st
        "ann,acme,acme-emea,editor,2024-01-01,2024-03-01",
        "ann,acme,acme-fin,approver,2024-03-01,",
        # the consultant is in acme (Jan–Mar) and globex (from Feb): two accounts in February
        "con,acme,,viewer,2024-01-01,2024-03-01",
        "con,globex,,admin,2024-02-01,",
    ))
    return ws


def attributed(ws: Workspace) -> dict[str, tuple]:
    rows = ws.store.arrow(
        "SELECT message_id, account_id, attribution, role, unit_id FROM events"
    ).to_pylist()
    return {r["message_id"]: (r["account_id"], r["attribution"], r["role"], r["unit_id"]) for r in rows}


def test_rules_in_order(crm: Workspace, tmp_path: Path) -> None:
    crm.import_events(write_jsonl(tmp_path / "events.jsonl", [
        # rule 1: explicit groupId wins over ann's membership
        track("explicit", "2024-01-10T09:00:00Z", "ann", context={"groupId": "globex"}),
        # rule 2: the membership valid at the timestamp; role/unit at event time
        track("ann-jan", "2024-01-10T09:00:00Z", "ann"),
        track("ann-mar", "2024-03-05T09:00:00Z", "ann"),
        # the role change instant belongs to the new row (valid_from inclusive, valid_to exclusive)
        track("ann-switch", "2024-03-01T00:00:00Z", "ann"),
        # user in two accounts
        track("con-jan", "2024-01-15T12:00:00Z", "con"),
        track("con-feb", "2024-02-15T12:00:00Z", "con"),  # two memberships, gmail: unattributed
        track("con-apr", "2024-04-15T12:00:00Z", "con"),
        # rule 3: no membership, email domain matches exactly one account (case-insensitive)
        track("dan-dom", "2024-01-10T09:00:00Z", "dan"),
        track("ray-dom", "2024-01-10T09:00:00Z", "ray"),
        # rule 4: domain shared by two accounts, and an unknown user
        track("tia-amb", "2024-01-10T09:00:00Z", "tia"),
        track("nobody", "2024-01-10T09:00:00Z", "ghost"),
        # account-wide automation event
        {"type": "track", "messageId": "bot", "event": "Sync Completed",
         "timestamp": "2024-01-10T09:00:00Z", "context": {"groupId": "acme"}},
    ]))
    got = attributed(crm)
    assert got["explicit"][:2] == ("globex", "explicit")
    assert got["ann-jan"] == ("acme", "membership", "editor", "acme-emea")
    assert got["ann-mar"] == ("acme", "membership", "approver", "acme-fin")
    assert got["ann-switch"] == ("acme", "membership", "approver", "acme-fin")
    assert got["con-jan"] == ("acme", "membership", "viewer", None)
    assert got["con-feb"][:2] == (None, "unattributed")
    assert got["con-apr"] == ("globex", "membership", "admin", None)
    assert got["dan-dom"][:2] == ("globex", "domain")
    assert got["ray-dom"][:2] == ("acme", "domain")
    assert got["tia-amb"][:2] == (None, "unattributed")
    assert got["nobody"][:2] == (None, "unattributed")
    assert got["bot"][:2] == ("acme", "explicit")
    kinds = {r["message_id"]: r["actor_kind"]
             for r in crm.store.arrow("SELECT message_id, actor_kind FROM events").to_pylist()}
    assert kinds["bot"] == "automation" and kinds["ann-jan"] == "human"
    status = crm.status()
    assert status["unattributed"] == 3
    assert status["attribution"] == {"explicit": 2, "membership": 5, "domain": 2, "unattributed": 3}


def test_importing_memberships_later_reattributes(ws: Workspace, tmp_path: Path) -> None:
    ws.import_events(write_jsonl(tmp_path / "e.jsonl", [track("e1", "2024-05-01T00:00:00Z", "u1")]))
    assert attributed(ws)["e1"][:2] == (None, "unattributed")
    ws.import_entities("memberships", write_csv(
        tmp_path / "m.csv", "user_id,account_id,unit_id,role,valid_from,valid_to",
        "u1,acc,,editor,2024-04-01,",
    ))
    assert attributed(ws)["e1"] == ("acc", "membership", "editor", None)


def test_sdk_identify_and_group_build_role_history(ws: Workspace, tmp_path: Path) -> None:
    events = [
        {"type": "identify", "messageId": "i1", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z",
         "traits": {"email": "u1@acme.com", "role": "editor", "department": "Sales", "team": "EMEA"}},
        {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme",
         "timestamp": "2024-01-01T00:00:01Z", "traits": {"name": "Acme", "domain": "acme.com"}},
        track("t1", "2024-01-02T00:00:00Z", "u1"),
        {"type": "identify", "messageId": "i2", "userId": "u1", "timestamp": "2024-02-01T00:00:00Z",
         "traits": {"role": "approver", "team": "Nordics"}},
        track("t2", "2024-02-02T00:00:00Z", "u1"),
        # joins a second account; from now on events need a groupId or fall to the domain rule
        {"type": "group", "messageId": "g2", "userId": "u1", "groupId": "globex",
         "timestamp": "2024-03-01T00:00:00Z"},
        track("t3", "2024-03-02T00:00:00Z", "u1"),
        # leaves acme
        {"type": "group", "messageId": "g3", "userId": "u1", "groupId": "acme",
         "timestamp": "2024-04-01T00:00:00Z", "traits": {"membership_status": "left"}},
        track("t4", "2024-04-02T00:00:00Z", "u1"),
    ]
    # deliver out of order: history must not depend on arrival order
    ws.import_events(write_jsonl(tmp_path / "b.jsonl", events[3:]))
    ws.import_events(write_jsonl(tmp_path / "a.jsonl", events[:3]))
    got = attributed(ws)
    assert got["t1"] == ("acme", "membership", "editor", "acme/team/emea")
    assert got["t2"] == ("acme", "membership", "approver", "acme/team/nordics")
    assert got["t3"][:2] == ("acme", "domain")  # in two accounts: rule 2 does not apply
    assert got["t4"][:2] == ("globex", "membership")
    history = ws.store.arrow(
        "SELECT account_id, role, unit_id, valid_from, valid_to FROM memberships "
        "ORDER BY valid_from, account_id"
    ).to_pylist()
    assert [(h["account_id"], h["role"], h["valid_to"] is None) for h in history] == [
        ("acme", "editor", False), ("acme", "approver", False), ("globex", "approver", True),
    ]
    units = {r["unit_id"]: r for r in ws.store.arrow("SELECT * FROM org_units").to_pylist()}
    assert units["acme/team/emea"]["parent_unit_id"] == "acme/department/sales"
    assert units["acme/department/sales"]["kind"] == "department"


def test_anonymous_events_resolve_through_identify(ws: Workspace, tmp_path: Path) -> None:
    ws.import_events(write_jsonl(tmp_path / "e.jsonl", [
        {"type": "page", "messageId": "p1", "anonymousId": "anon-1", "name": "Pricing",
         "timestamp": "2024-01-01T00:00:00Z"},
        {"type": "identify", "messageId": "i1", "userId": "u9", "anonymousId": "anon-1",
         "timestamp": "2024-01-01T00:01:00Z", "traits": {"email": "u9@acme.com"}},
        {"type": "group", "messageId": "g1", "userId": "u9", "groupId": "acme",
         "timestamp": "2024-01-01T00:02:00Z", "traits": {"domain": "acme.com"}},
    ]))
    row = ws.store.arrow("SELECT user_id, account_id, attribution FROM events WHERE message_id = 'p1'").to_pylist()[0]
    assert row == {"user_id": "u9", "account_id": "acme", "attribution": "domain"}


def test_calls_sharing_a_batch_merge_in_time_order(ws: Workspace, tmp_path: Path) -> None:
    """Several identify/group calls of one user or account in one load merge their traits as if
    loaded one by one; an account's new domain re-attributes the users of the old one."""
    write_jsonl(tmp_path / "calls.jsonl", [
        {"type": "identify", "messageId": "i1", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z",
         "traits": {"email": "u1@acme.com", "role": "admin"}},
        {"type": "identify", "messageId": "i2", "userId": "u1", "timestamp": "2024-01-01T00:01:00Z",
         "traits": {"role": "owner"}},
        {"type": "group", "messageId": "g1", "userId": "u9", "groupId": "acme",
         "timestamp": "2024-01-01T00:00:00Z", "traits": {"name": "Acme", "domain": "acme.com"}},
        {"type": "group", "messageId": "g2", "userId": "u9", "groupId": "acme",
         "timestamp": "2024-01-01T00:02:00Z", "traits": {"industry": "retail"}},
        track("t1", "2024-01-02T00:00:00Z", "u1"),
    ])
    ws.import_events(tmp_path / "calls.jsonl")
    user = ws.store.arrow("SELECT email, traits->>'role' AS role FROM users WHERE user_id = 'u1'")
    assert user.to_pylist() == [{"email": "u1@acme.com", "role": "owner"}]
    account = ws.store.arrow("SELECT domain, industry, name FROM accounts").to_pylist()
    assert account == [{"domain": "acme.com", "industry": "retail", "name": "Acme"}]
    # u1 is in no account by membership; u9 is (group call): u1's event goes by domain
    rule = "SELECT account_id, attribution FROM events WHERE message_id = 't1'"
    assert ws.store.arrow(rule).to_pylist() == [{"account_id": "acme", "attribution": "domain"}]
    write_jsonl(tmp_path / "moved.jsonl", [
        {"type": "group", "messageId": "g3", "userId": "u9", "groupId": "acme",
         "timestamp": "2024-01-03T00:00:00Z", "traits": {"domain": "acme.io"}},
    ])
    ws.import_events(tmp_path / "moved.jsonl")
    assert ws.store.arrow(rule).to_pylist() == [{"account_id": None, "attribution": "unattributed"}]
