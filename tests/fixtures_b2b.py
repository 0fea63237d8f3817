"""A small, readable B2B fixture shared by the analysis tests (hand-computed answers live in tests)."""

from __future__ import annotations

import json
from pathlib import Path

from accountlens.workspace import Workspace

ACCOUNTS = """account_id,name,domain,industry,region,employees,plan
acme,Acme,acme.com,retail,emea,500,enterprise
globex,Globex,globex.com,energy,amer,80,pro
"""
UNITS = """unit_id,account_id,kind,name,parent_unit_id
acme-sales,acme,department,Sales,
acme-emea,acme,team,EMEA,acme-sales
acme-fin,acme,department,Finance,
"""
USERS = """user_id,email,name
ann,ann@acme.com,Ann
bob,bob@acme.com,Bob
cat,cat@acme.com,Cat
dan,dan@acme.com,Dan
"""
MEMBERSHIPS = """user_id,account_id,unit_id,role,valid_from,valid_to
ann,acme,acme-emea,editor,2024-01-01,
bob,acme,acme-fin,approver,2024-01-01,
cat,acme,acme-sales,editor,2024-01-01,
dan,acme,acme-emea,editor,2024-01-01,2024-03-10
dan,acme,acme-emea,approver,2024-03-10,
"""


def ev(mid: str, user: str, name: str, ts: str, obj: str | None = None) -> dict:
    event = {"type": "track", "messageId": mid, "userId": user, "event": name, "timestamp": ts}
    if obj:
        event["properties"] = {"object_id": obj}
    return event


HANDOFF_EVENTS = [
    ev("w1-1", "ann", "Workflow Created", "2024-03-01T09:00:00Z", "w1"),
    ev("w1-2", "ann", "Workflow Edited", "2024-03-01T10:00:00Z", "w1"),
    ev("w1-3", "bob", "Workflow Approved", "2024-03-01T14:00:00Z", "w1"),
    ev("w2-1", "ann", "Workflow Created", "2024-03-02T09:00:00Z", "w2"),
    ev("w2-2", "bob", "Workflow Reviewed", "2024-03-03T09:00:00Z", "w2"),
    ev("w2-3", "ann", "Workflow Edited", "2024-03-03T10:00:00Z", "w2"),
    ev("w3-a", "cat", "Workflow Created", "2024-03-05T09:00:00Z", "w3"),
    ev("w3-b", "bob", "Workflow Approved", "2024-03-05T09:00:00Z", "w3"),
    ev("w4-1", "dan", "Workflow Created", "2024-03-09T09:00:00Z", "w4"),
    ev("w4-2", "ann", "Workflow Edited", "2024-03-09T12:00:00Z", "w4"),
    ev("w4-3", "dan", "Workflow Approved", "2024-03-11T12:00:00Z", "w4"),
    ev("r1-1", "ann", "Report Created", "2024-03-18T09:00:00Z", "r1"),
    ev("x-1", "cat", "Dashboard Viewed", "2024-03-20T09:00:00Z"),
]


def build(root: Path, events: list[dict] = HANDOFF_EVENTS) -> Workspace:
    ws = Workspace.init(root / "ws", name="fixture")
    for kind, text in (("accounts", ACCOUNTS), ("units", UNITS), ("users", USERS),
                       ("memberships", MEMBERSHIPS)):
        path = root / f"{kind}.csv"
        path.write_text(text)
        ws.import_entities(kind, path)
    path = root / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(path)
    return ws
