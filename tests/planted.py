"""A generated workspace with planted multi-user effects, for tests that analyses find them.

Planted: (1) approvals by Finance approvers take ~10× longer than any other handoff;
(2) in accounts that renew, a trainer's `Training Completed` is followed within 5–20 days by an
executive's `Plan Approved` (90 % of renewals, 15 % of churns). Everything else is noise drawn
from the same roles and events.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from accountlens.workspace import Workspace

ROLES = ["viewer", "editor", "approver", "trainer", "executive", "analyst"]
NOISE_EVENTS = ["Dashboard Viewed", "Report Viewed", "Comment Added", "Filter Applied", "Export Run"]
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def build(root: Path, accounts: int = 40, seed: int = 5) -> Workspace:
    rng = np.random.default_rng(seed)
    ws = Workspace.init(root / "ws", name="planted")
    units = ["unit_id,account_id,kind,name,parent_unit_id"]
    members = ["user_id,account_id,unit_id,role,valid_from,valid_to"]
    outcomes = ["account_id,kind,date"]
    events: list[dict] = []
    seq = 0

    def emit(user: str, name: str, when: dt.datetime, obj: str | None = None) -> None:
        nonlocal seq
        seq += 1
        event = {"type": "track", "messageId": f"p{seq}", "userId": user, "event": name,
                 "timestamp": when.isoformat()}
        if obj:
            event["properties"] = {"object_id": obj}
        events.append(event)

    for a in range(accounts):
        acc = f"acc{a:03d}"
        for dept in ("Sales", "Finance", "Ops"):
            units.append(f"{acc}-{dept.lower()},{acc},department,{dept},")
        users: dict[str, list[str]] = {}
        for role in ROLES:
            for i in range(2):
                dept = "Finance" if (role == "approver" and i == 0) else rng.choice(["Sales", "Ops"])
                user = f"{acc}-{role}-{i}"
                users.setdefault(role, []).append(user)
                members.append(f"{user},{acc},{acc}-{dept.lower()},{role},2023-06-01,")
        renews = rng.random() < 0.5
        outcomes.append(f"{acc},{'renewal' if renews else 'churn'},2024-07-19")
        # shared work items: editor creates, approver approves (Finance approvers are slow)
        for o in range(20):
            t0 = START + dt.timedelta(days=float(rng.uniform(0, 190)))
            editor = users["editor"][int(rng.integers(2))]
            approver_index = int(rng.integers(2))
            approver = users["approver"][approver_index]
            mean_hours = 40.0 if approver_index == 0 else 4.0
            emit(editor, "Workflow Created", t0, f"{acc}-w{o}")
            reviewer = users["viewer"][int(rng.integers(2))]
            t1 = t0 + dt.timedelta(hours=float(rng.exponential(3.0)))
            emit(reviewer, "Comment Added", t1, f"{acc}-w{o}")
            t2 = t1 + dt.timedelta(hours=float(rng.exponential(mean_hours)))
            emit(approver, "Workflow Approved", t2, f"{acc}-w{o}")
        # the planted influence sequence
        if rng.random() < (0.9 if renews else 0.15):
            t0 = START + dt.timedelta(days=float(rng.uniform(60, 150)))
            emit(users["trainer"][0], "Training Completed", t0)
            emit(users["executive"][0], "Plan Approved", t0 + dt.timedelta(days=float(rng.uniform(5, 20))))
        # noise
        for _ in range(60):
            role = ROLES[int(rng.integers(len(ROLES)))]
            name = NOISE_EVENTS[int(rng.integers(len(NOISE_EVENTS)))]
            emit(users[role][int(rng.integers(2))], name,
                 START + dt.timedelta(days=float(rng.uniform(0, 200))))
        if rng.random() < 0.3:  # some noise uses the planted event names in the wrong order
            t0 = START + dt.timedelta(days=float(rng.uniform(60, 150)))
            emit(users["executive"][1], "Plan Approved", t0)
            emit(users["trainer"][1], "Training Completed", t0 + dt.timedelta(days=3))
    ids = sorted({line.split(",")[1] for line in members[1:]})  # every account that has members
    accounts_csv = ["account_id", *ids]
    for kind, lines in (("accounts", accounts_csv), ("units", units), ("memberships", members),
                        ("outcomes", outcomes)):
        (root / f"{kind}.csv").write_text("\n".join(lines) + "\n")
        ws.import_entities(kind, root / f"{kind}.csv")
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(root / "events.jsonl")
    return ws
