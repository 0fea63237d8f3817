"""Account features (analysis/features.py) are point-in-time (SPEC §8): subscriptions by their
dates, half-open and never by `status`; memberships as known on the day; traits as sent by then;
events before the end of the day. Expected values are hand-computed from the fixture below."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from accountlens.analysis.features import account_features
from accountlens.config import HealthFactor, HealthSection
from accountlens.workspace import Workspace
from tests import small_workspace

ACCOUNTS = """account_id,name,industry,employees,plan,owner,nps
a,Alpha,retail,500,free,alice,40
b,Beta,energy,80,pro,bob,
"""
# a: s1 in force [2024-01-01, 2024-07-01), then s2 from 2024-07-01 (the CRM calls it cancelled:
# the status is ignored). b: s3 ended 2024-06-15 although the CRM still says active.
SUBSCRIPTIONS = """subscription_id,account_id,plan,seats,arr,start,end,status
s1,a,pro,10,12000,2024-01-01,2024-07-01,active
s2,a,enterprise,20,30000,2024-07-01,2025-07-01,cancelled
s3,b,pro,5,5000,2024-02-01,2024-06-15,active
"""
MEMBERSHIPS = """user_id,account_id,role,valid_from,valid_to
u1,a,editor,2024-01-01,
u2,a,editor,2024-01-01,2024-06-01
u3,a,admin,2024-01-01,2024-08-01
u4,b,editor,2024-02-01,
"""


def _track(mid: str, user: str, ts: str) -> dict:
    return {"type": "track", "messageId": mid, "userId": user, "event": "Report Created",
            "timestamp": ts}


EVENTS = [
    _track("e1", "u1", "2024-06-30T23:00:00Z"),  # last 30 days of 2024-06-30: [06-01, 07-01)
    _track("e2", "u1", "2024-06-10T09:00:00Z"),  # last 30 days
    _track("e3", "u1", "2024-05-20T09:00:00Z"),  # the 30 days before: [05-02, 06-01)
    _track("e4", "u3", "2024-04-01T09:00:00Z"),  # neither window
    _track("e5", "u1", "2024-07-01T00:00:00Z"),  # after 2024-06-30: not read as of that day
    _track("e6", "u4", "2024-03-15T09:00:00Z"),
    # a `group` call after 2024-06-30 changes the nps trait: known from 2024-07-15 only
    {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "a",
     "traits": {"nps": 55}, "timestamp": "2024-07-15T09:00:00Z"},
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root: Path = tmp_path_factory.mktemp("features")
    ws = small_workspace.build(root, "features", {"accounts": ACCOUNTS, "subscriptions": SUBSCRIPTIONS,
                                            "memberships": MEMBERSHIPS}, EVENTS)
    yield ws
    ws.close()


def _settings(ws: Workspace):
    nps = HealthFactor(input="trait:nps", weight=1, points=[(0, 0), (100, 100)])
    return ws.config.model_copy(update={"health": HealthSection(factors={"nps": nps})})


def _row(ws: Workspace, day: dt.date, account: str) -> dict:
    frame = account_features(ws.store, _settings(ws), day)
    return frame.set_index("account_id").loc[account].to_dict()


def test_subscriptions_are_half_open_and_read_by_their_dates(workspace: Workspace) -> None:
    a = _row(workspace, dt.date(2024, 6, 30), "a")
    assert (a["customer"], a["subscriptions"], a["plan"], a["arr"], a["seats"]) == (
        True, 1, "pro", 12000.0, 10.0)
    # 2024-01-01 → 2024-06-30: 31+29+31+30+31 (Jan–May of a leap year) + 29 = 181 days
    assert a["tenure_days"] == 181
    renewed = _row(workspace, dt.date(2024, 7, 1), "a")  # s1 has ended, s2 (status cancelled) runs
    assert (renewed["subscriptions"], renewed["plan"], renewed["arr"]) == (1, "enterprise", 30000.0)
    b = _row(workspace, dt.date(2024, 6, 30), "b")  # status "active", but ended 2024-06-15
    assert (b["customer"], b["subscriptions"], b["plan"], b["arr"]) == (False, 0, "pro", 0.0)


def test_memberships_events_and_traits_as_known_on_the_day(workspace: Workspace) -> None:
    a = _row(workspace, dt.date(2024, 6, 30), "a")
    # u1 and u3 are members (u3's end, 2024-08-01, is not known yet); u2 left 2024-06-01
    assert (a["members"], a["users_left_90d"]) == (2, 1)
    assert (a["events_30d"], a["events_prev_30d"], a["days_since_active"]) == (2, 1, 0)
    assert a["event_trend"] == pytest.approx((2 - 1) / 1)
    assert (a["owner"], a["industry"], a["size_band"]) == ("alice", "retail", "250-999")
    assert a["trait_nps"] == 40  # the CSV's value: the group call of 2024-07-15 is not known yet
    assert _row(workspace, dt.date(2024, 7, 20), "a")["trait_nps"] == 55
    b = _row(workspace, dt.date(2024, 6, 30), "b")
    # 2024-03-15 → 2024-06-30: 16 (rest of March) + 30 + 31 + 30 = 107 days
    assert (b["days_since_active"], b["events_30d"], b["members"]) == (107, 0, 1)


def test_an_account_unknown_on_the_day_has_no_row(workspace: Workspace) -> None:
    frame = account_features(workspace.store, _settings(workspace), dt.date(2024, 1, 15))
    assert list(frame["account_id"]) == ["a"]  # b's contract starts 2024-02-01, no events yet
