"""Reconciliation (docs/quality.md): a fixture with one case of each check, and accounts where
CRM, billing and telemetry agree (no finding for them)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.small_workspace import build

AS_OF = dt.date(2024, 6, 30)
ACCOUNTS = """account_id,name,domain
ok,Fine Corp,fine.com
billed,Billed Only,billed.com
free,Free Rider,free.io
crowd,Crowded,crowd.com
seatdiff,Seat Diff,seatdiff.com
arrdiff,Arr Diff,arrdiff.com
"""
USERS = """user_id,email,name
ok-1,ann@fine.com,Ann
ok-2,bob@FINE.com,Bob
free-1,cy@free.io,Cy
crowd-1,di@crowd.com,Di
crowd-2,ed@crowd.com,Ed
crowd-3,fi@crowd.com,Fi
seat-1,gu@seatdiff.com,Gu
arr-1,hu@arrdiff.com,Hu
orphan-1,ivy@orphan.io,Ivy
orphan-2,jo@orphan.io,Jo
private-1,kim@gmail.com,Kim
"""
HEADER = "subscription_id,account_id,product,plan,seats,arr,start,end,status,source\n"
CRM = HEADER + """s-ok,ok,app,pro,5,6000,2024-01-01,,active,crm
s-billed,billed,app,pro,3,3600,2024-01-01,,active,crm
s-crowd,crowd,app,pro,2,2400,2024-01-01,,active,crm
s-seat,seatdiff,app,pro,10,12000,2024-01-01,,active,crm
s-arr,arrdiff,app,pro,4,12000,2024-01-01,,active,crm
s-old,free,app,pro,4,4800,2023-01-01,2024-01-01,active,crm
"""
BILLING = HEADER + """s-ok,ok,app,pro,5,6000,2024-01-01,,active,billing
s-seat,seatdiff,app,pro,12,12000,2024-01-01,,active,billing
s-arr,arrdiff,app,pro,4,15000,2024-01-01,,active,billing
"""
ACTIVE = {"ok": ["ok-1", "ok-2"], "free": ["free-1"], "crowd": ["crowd-1", "crowd-2", "crowd-3"],
          "seatdiff": ["seat-1"], "arrdiff": ["arr-1"]}


def _events() -> list[dict]:
    events = []
    for account, users in ACTIVE.items():
        for user in users:
            for day in (10, 20):
                events.append({"type": "track", "messageId": f"{user}-{day}", "userId": user,
                               "event": "Report Created", "context": {"groupId": account},
                               "timestamp": f"2024-06-{day}T12:00:00Z"})
    return events


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("reconcile")
    ws = build(root, "reconcile", {"accounts": ACCOUNTS, "users": USERS, "subscriptions": CRM},
               _events())
    (root / "billing.csv").write_text(BILLING)
    ws.import_entities("subscriptions", root / "billing.csv")
    store = ws.store
    # each import keeps its rows per source (subscriptions holds the latest row only)
    assert store.scalar("SELECT count(DISTINCT import_id) FROM subscription_sources") == 2
    # the importer refuses subscriptions of unknown accounts; one arrives all the same (an
    # account deleted from the CRM after its contract was imported)
    store.execute("INSERT INTO subscriptions (subscription_id, account_id, seats, arr, start_date, "
                  "source) VALUES ('s-ghost', 'ghost', 1, 1200, DATE '2024-02-01', 'billing')")
    yield ws
    ws.close()


def _rows(ws, **params) -> list[tuple]:
    frame = ws.analysis("reconcile", as_of=AS_OF, limit=1000, **params)
    return [(r["check"], r["account_id"] or r["domain"], r["detail"])
            for r in frame.to_dict(orient="records")]


def test_one_finding_per_planted_case(ws) -> None:
    rows = _rows(ws)
    assert [(check, key) for check, key, _ in rows] == [
        ("billed_never_seen", "billed"),
        ("active_without_contract", "free"),
        ("users_above_seats", "crowd"),
        ("domain_without_account", "orphan.io"),
        ("seats_mismatch", "seatdiff"),
        ("arr_mismatch", "arrdiff"),
        ("subscription_unknown_account", "ghost"),
    ]
    details = {check: detail for check, _, detail in rows}
    assert details["users_above_seats"] == "3 active users in the last 30 days on 2 seats in force"
    assert details["seats_mismatch"] == "seats in force differ: billing: 12 seats, crm: 10 seats"
    assert "billing: 15,000.00 ARR, crm: 12,000.00 ARR" in details["arr_mismatch"]
    assert "2 user(s) with an email at orphan.io" in details["domain_without_account"]
    assert "s-ghost" in details["subscription_unknown_account"]


def test_filters_and_the_day(ws) -> None:
    assert [r[0] for r in _rows(ws, check="seats_mismatch")] == ["seats_mismatch"]
    assert [r[0] for r in _rows(ws, account="crowd")] == ["users_above_seats"]
    # before the contracts started: nothing is billed, so no contract checks fire
    early = [(check, key) for check, key in
             ws.analysis("reconcile", as_of="2023-06-30", limit=1000)[["check", "account_id"]]
             .itertuples(index=False)]
    assert ("billed_never_seen", "billed") not in early and ("seats_mismatch", "seatdiff") not in early
