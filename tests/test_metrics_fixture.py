"""The small metrics fixture (built through the real import path) and checks that it is what the
hand computations in tests/test_metrics_*.py assume.

Accounts on as_of 2024-03-31:
- acme    retail/emea, 500 employees, subscription from 2024-03-01 (10 seats): ann, bob, cat
- globex  energy/amer, 80 employees, subscription from 2024-02-01 (5 seats): cat, dan
- botco   retail/amer, 20 employees, subscription from 2024-03-01 (2 seats): automation only
- noseat  energy/emea, no employees, no subscription (no seats): eve
cat is a member of acme and globex (events name the account explicitly); bob changes role
viewer → approver on 2024-03-25 (mid-window).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accountlens.workspace import Workspace

AS_OF = "2024-03-31"

ACCOUNTS = """account_id,name,domain,industry,region,employees,plan
acme,Acme,acme.com,retail,emea,500,enterprise
globex,Globex,globex.com,energy,amer,80,pro
botco,Botco,bot.co,retail,amer,20,
noseat,Noseat,noseat.io,energy,emea,,
"""
UNITS = """unit_id,account_id,kind,name,parent_unit_id
acme-sales,acme,department,Sales,
acme-emea,acme,team,EMEA,acme-sales
globex-ops,globex,department,Ops,
"""
USERS = """user_id,email,name
ann,ann@acme.com,Ann
bob,bob@acme.com,Bob
cat,cat@freelance.org,Cat
dan,dan@globex.com,Dan
eve,eve@noseat.io,Eve
"""
MEMBERSHIPS = """user_id,account_id,unit_id,role,valid_from,valid_to
ann,acme,acme-emea,editor,2024-01-01,
bob,acme,acme-sales,viewer,2024-01-01,2024-03-25
bob,acme,acme-sales,approver,2024-03-25,
cat,acme,acme-emea,analyst,2024-01-01,
cat,globex,globex-ops,analyst,2024-01-01,
dan,globex,globex-ops,admin,2024-01-01,
eve,noseat,,editor,2024-01-01,
"""
SUBSCRIPTIONS = """subscription_id,account_id,product,plan,seats,arr,start,end,status,entitlements
s-acme,acme,core,enterprise,10,12000,2024-03-01,2024-12-31,active,"{""api_calls"": 10, ""modules"": [""reports"", ""workflows""]}"
s-globex,globex,core,pro,5,6000,2024-02-01,,active,"{""modules"": [""reports""]}"
s-botco,botco,core,starter,2,1000,2024-03-01,,active,
"""


def track(mid: str, user: str | None, name: str, ts: str, account: str | None = None,
          **props) -> dict:
    event = {"type": "track", "messageId": mid, "event": name, "timestamp": ts}
    if user:
        event["userId"] = user
    if account:
        event["context"] = {"groupId": account}
    if props:
        event["properties"] = props
    return event


EVENTS = [
    track("a1", "ann", "Dashboard Viewed", "2024-03-01T09:00:00Z"),
    track("a2", "ann", "Dashboard Viewed", "2024-03-10T09:00:00Z"),
    track("a3", "ann", "Report Created", "2024-03-30T10:00:00Z"),
    track("a4", "ann", "Dashboard Viewed", "2024-03-31T09:00:00Z"),
    {"type": "identify", "messageId": "a5", "userId": "ann", "timestamp": "2024-03-31T11:00:00Z",
     "traits": {"name": "Ann"}},
    track("b1", "bob", "Dashboard Viewed", "2024-03-20T09:00:00Z"),
    track("b2", "bob", "Workflow Approved", "2024-03-28T09:00:00Z"),
    track("c1", "cat", "Dashboard Viewed", "2024-03-29T09:00:00Z", account="globex"),
    track("c2", "cat", "Report Shared", "2024-03-31T09:00:00Z", account="acme"),
    track("d1", "dan", "Dashboard Viewed", "2024-02-15T09:00:00Z"),
    {"type": "page", "messageId": "d2", "userId": "dan", "name": "Home",
     "timestamp": "2024-03-31T09:00:00Z"},
    track("e1", "eve", "Report Created", "2024-03-25T09:00:00Z"),
    track("x1", None, "Sync Run", "2024-03-15T03:00:00Z", account="botco"),
    track("x2", None, "Sync Run", "2024-03-31T03:00:00Z", account="botco"),
]


def build_fixture(root: Path, events: list[dict] = EVENTS, subscriptions: str = SUBSCRIPTIONS,
                  extra_events: list[dict] = ()) -> Workspace:
    ws = Workspace.init(root / "ws", name="metrics")
    for kind, text in (("accounts", ACCOUNTS), ("units", UNITS), ("users", USERS),
                       ("memberships", MEMBERSHIPS), ("subscriptions", subscriptions)):
        path = root / f"{kind}.csv"
        path.write_text(text)
        ws.import_entities(kind, path)
    path = root / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [*events, *extra_events]))
    ws.import_events(path)
    return ws


@pytest.fixture(scope="module")
def metrics_ws(tmp_path_factory):
    ws = build_fixture(tmp_path_factory.mktemp("metrics"))
    yield ws
    ws.close()


# Read from the data model next to each id (model/labels.py); not a metric's value.
NAME_COLUMNS = ("account_name", "user_email", "user_name", "unit_name")


def records(frame, key: str) -> dict:
    """{key value: {column: value}} of a metric frame, NaN as None; `key`: a column, or a level
    (its key column: `account_id` at account level, `unit_id` at team level, ...)."""
    from accountlens.metrics.registry import key_column

    key = key if key in frame.columns else key_column(key)
    frame = frame.drop(columns=[c for c in NAME_COLUMNS if c in frame.columns])
    frame = frame.astype(object).where(frame.notna(), None)
    return {row[key]: {k: v for k, v in row.items() if k != key}
            for row in frame.to_dict(orient="records")}


def test_fixture_attribution_is_as_assumed(metrics_ws: Workspace) -> None:
    rows = metrics_ws.store.arrow(
        "SELECT message_id, account_id, role, actor_kind FROM events ORDER BY message_id"
    ).to_pylist()
    got = {r["message_id"]: (r["account_id"], r["role"], r["actor_kind"]) for r in rows}
    assert got["b1"] == ("acme", "viewer", "human")
    assert got["b2"] == ("acme", "approver", "human")
    assert got["c1"] == ("globex", "analyst", "human")
    assert got["c2"] == ("acme", "analyst", "human")
    assert got["x1"] == ("botco", None, "automation")
    assert got["e1"] == ("noseat", "editor", "human")
