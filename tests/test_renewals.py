"""Upcoming renewals (analysis/renewals.py): which contracts are due (half-open, inside the
window), ARR at stake, health and champion as of the day, the probability from the models (or a
note saying why there is none), expected and at-risk ARR, totals per segment."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from accountlens.workspace import Workspace
from tests import small_workspace

ACCOUNTS = """account_id,name,industry,employees,plan,owner
a,Alpha,retail,500,pro,alice
b,Beta,energy,80,pro,bob
c,Gamma,retail,20,starter,alice
"""
# as of 2024-06-30 with --days 30: due are ends in (06-30, 07-30]
SUBSCRIPTIONS = """subscription_id,account_id,plan,seats,arr,start,end,status
a1,a,pro,10,12000,2023-07-01,2024-07-01,active
a2,a,pro,5,3000,2023-07-15,2024-07-15,active
a3,a,pro,5,9000,2024-01-01,2024-12-31,active
b1,b,pro,5,5000,2023-06-30,2024-06-30,active
c1,c,starter,3,1200,2023-07-30,2024-07-30,active
c0,c,starter,3,800,2024-07-05,2024-08-05,active
"""
MEMBERSHIPS = """user_id,account_id,role,valid_from,valid_to
u1,a,admin,2023-07-01,
u2,c,editor,2023-07-30,
"""
EVENTS = [
    {"type": "track", "messageId": f"e{i}", "userId": user, "event": "Report Created",
     "timestamp": ts}
    for i, (user, ts) in enumerate([("u1", "2024-06-20T10:00:00Z"), ("u1", "2024-06-28T10:00:00Z"),
                                    ("u2", "2024-05-20T10:00:00Z")])
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root: Path = tmp_path_factory.mktemp("renewals")
    ws = small_workspace.build(root, "renewals", {"accounts": ACCOUNTS, "subscriptions": SUBSCRIPTIONS,
                                            "memberships": MEMBERSHIPS}, EVENTS)
    yield ws
    ws.close()


def test_due_contracts_arr_and_days(workspace: Workspace) -> None:
    result = workspace.analysis_result("renewals", as_of=dt.date(2024, 6, 30), days=30)
    rows = {r["account_id"]: r for r in result.records()}
    # b1 ended on 06-30 (half-open: not in force that day) and c0 starts after as_of: not due
    assert set(rows) == {"a", "c"}
    a, c = rows["a"], rows["c"]
    assert (a["renewal_date"], a["days_to_renewal"], a["renewal_arr"], a["renewal_seats"]) == (
        "2024-07-01", 1, 15000.0, 15)  # a1 and a2 (a3 ends after the window)
    assert a["subscriptions"] == ["a1", "a2"] and a["contracts"] == 2
    types = {c.name: c.type for c in result.columns}
    assert (types["renewal_seats"], types["renewal_arr"], types["renewal_date"]) == (
        "integer", "number", "date")
    assert a["total_arr"] == 24000.0  # a1 + a2 + a3 in force
    assert (c["renewal_date"], c["days_to_renewal"], c["renewal_arr"]) == ("2024-07-30", 30, 1200.0)
    assert [r["account_id"] for r in result.records()] == ["a", "c"]  # soonest first
    # health and champion as of the day, as their own analyses say
    health = workspace.analysis("health", as_of=dt.date(2024, 6, 30)).set_index("account_id")
    assert a["health_score"] == pytest.approx(health.loc["a", "score"])
    assert (a["champion_status"], a["champion_user_id"]) == ("active", "u1")
    assert c["champion_status"] == "quiet"  # u2 was last seen 05-20, over 14 days before


def test_too_few_outcomes_leave_the_probability_empty_and_say_so(workspace: Workspace) -> None:
    result = workspace.analysis_result("renewals", as_of=dt.date(2024, 6, 30), days=30)
    assert all(r["renewal_probability"] is None for r in result.records())
    assert all(r["arr_at_risk"] is None for r in result.records())
    assert any("too few" in note for note in result.notes), result.notes


def test_segments_and_filters(workspace: Workspace) -> None:
    segments = workspace.analysis("renewals", as_of=dt.date(2024, 6, 30), days=30,
                                  view="segments", by="owner")
    by = segments.set_index("segment")
    assert list(segments["segment"]) == ["alice", "(all)"]
    assert (by.loc["alice", "renewals"], by.loc["alice", "renewal_arr"]) == (2, 16200.0)
    assert by.loc["(all)", "renewal_arr"] == 16200.0
    only = workspace.analysis("renewals", as_of=dt.date(2024, 6, 30), days=30, plan="starter")
    assert list(only["account_id"]) == ["c"]
    longer = workspace.analysis("renewals", as_of=dt.date(2024, 6, 30), days=200)
    assert set(longer["account_id"]) == {"a", "c"}
    assert longer.set_index("account_id").loc["c", "subscriptions"] == ["c1"]  # c0 not yet signed


def test_point_in_time_later_changes_do_not_matter(workspace: Workspace, tmp_path: Path) -> None:
    before = workspace.analysis("renewals", as_of=dt.date(2024, 6, 30), days=30, cached=False)
    more = [{"type": "track", "messageId": f"late{i}", "userId": "u2", "event": "Report Created",
             "timestamp": "2024-07-10T10:00:00Z"} for i in range(3)]
    path = tmp_path / "late.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in more))
    workspace.import_events(path)
    after = workspace.analysis("renewals", as_of=dt.date(2024, 6, 30), days=30, cached=False)
    pd.testing.assert_frame_equal(before, after)
