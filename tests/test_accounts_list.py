"""The `accounts` and `activity` analyses (docs/web-api.md): the accounts list with its filters,
search, sorting, paging and 12-week sparkline, and the activity series by day and week, on a
hand-computed world; point-in-time (SPEC §8); the slices match the metrics'.

The world, as of 2024-06-30 (a Sunday): the sparkline's weeks end on as_of, week 11 is
06-24..06-30, week 10 06-17..06-23, …, week 0 04-08..04-14 ((as_of − day) // 7 = 11 − week).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

import accountlens as al
from accountlens.analysis.registry import run_analysis
from accountlens.metrics.registry import metric_request
from accountlens.metrics.registry import run as run_metric
from accountlens.workspace import Workspace

AS_OF = "2024-06-30"
D = dt.date(2024, 6, 30)

# hq: the parent of acme; soylent: created, no contract, no activity (known, not a customer);
# initech: created after as_of (unknown on it).
ACCOUNTS = """account_id,name,domain,industry,region,employees,plan,parent_account_id,created_at,owner
hq,Holding Corp,holding.com,finance,emea,5000,enterprise,,2023-01-01,olga
acme,Acme Retail,acme.com,retail,emea,500,pro,hq,2023-06-01,alice
globex,Globex,globex.com,energy,amer,80,free,,2024-01-01,bob
soylent,Soylent,soylent.com,food,apac,30,free,,2024-03-01,
initech,Initech,initech.io,retail,apac,20,free,,2024-09-01,
"""
UNITS = """unit_id,account_id,kind,name,parent_unit_id
acme-sales,acme,department,Sales,
acme-emea,acme,team,EMEA,acme-sales
acme-fin,acme,department,Finance,
"""
USERS = """user_id,email,name,created_at
ann,ann@acme.com,Ann,
bob,bob@acme.com,Bob,
cat,cat@acme.com,Cat,
dan,dan@acme.com,Dan,
eve,eve@globex.com,Eve,
hal,hal@acme.com,Hal,2024-08-01
"""
# bob's role changes on 03-10; cat's CRM row ends 06-01 (and closes her SDK membership from a
# group call); dan's end (08-01) is after as_of: not known yet; eve is in globex and, for a
# month, in acme.
MEMBERSHIPS = """user_id,account_id,unit_id,role,valid_from,valid_to
ann,acme,acme-emea,editor,2024-01-01,
bob,acme,acme-fin,editor,2024-01-01,2024-03-10
bob,acme,acme-fin,approver,2024-03-10,
cat,acme,acme-sales,editor,2024-01-01,2024-06-01
dan,acme,acme-emea,viewer,2024-02-01,2024-08-01
eve,globex,,admin,2024-01-15,
eve,acme,acme-sales,viewer,2024-04-01,2024-05-01
"""
ENTITLEMENTS = '"{""api_calls"": 100, ""modules"": [""reports""]}"'
# acme: s1 in force on as_of (ends the day after), s2 starts after it; globex: s3 ends on
# as_of (not in force: half-open), s4 starts on it (in force); hq: open-ended.
SUBSCRIPTIONS = f"""subscription_id,account_id,product,plan,seats,arr,start,end,status,entitlements
s1,acme,cloud,pro,10,12000,2023-07-01,2024-07-01,active,{ENTITLEMENTS}
s2,acme,cloud,enterprise,20,30000,2024-07-01,2025-07-01,active,
s3,globex,cloud,free,5,0,2024-01-01,2024-06-30,active,
s4,globex,cloud,pro,5,6000,2024-06-30,2025-06-30,active,
s5,hq,cloud,enterprise,50,100000,2023-01-01,,active,
"""
OUTCOMES = """account_id,kind,date,arr_delta,source
acme,expansion,2024-03-15,6000,crm
globex,conversion,2024-06-30,6000,crm
"""


def track(mid: str, user: str | None, name: str, ts: str, group: str | None = None,
          **properties) -> dict:
    event = {"type": "track", "messageId": mid, "event": name, "timestamp": ts}
    if user:
        event["userId"] = user
    else:
        event["anonymousId"] = "bot"
        properties["actor_kind"] = "automation"
    if group:
        event["context"] = {"groupId": group}
    if properties:
        event["properties"] = properties
    return event


EVENTS = [
    {"type": "group", "messageId": "g-cat", "userId": "cat", "groupId": "acme",
     "timestamp": "2024-01-01T08:00:00Z"},
    {"type": "identify", "messageId": "i-gus", "userId": "gus",
     "traits": {"email": "gus@acme.com", "name": "Gus"}, "timestamp": "2024-06-20T08:00:00Z"},
    {"type": "identify", "messageId": "i-eve", "userId": "eve", "traits": {"title": "Manager"},
     "timestamp": "2024-02-01T08:00:00Z"},
    track("c1", "cat", "Report Created", "2024-03-01T09:00:00Z"),  # acme's first event
    track("a0", "ann", "Report Viewed", "2024-04-07T12:00:00Z"),  # as_of − 84: before week 0
    track("a1", "ann", "Report Viewed", "2024-04-08T00:30:00Z"),  # week 0
    track("e1", "eve", "Report Viewed", "2024-04-15T09:00:00Z", group="acme"),  # week 1
    track("e2", "eve", "Report Viewed", "2024-05-20T09:00:00Z"),  # globex (membership), week 6
    track("d1", "dan", "Report Viewed", "2024-05-20T09:00:00Z"),  # week 6
    track("c2", "cat", "Report Viewed", "2024-05-31T09:00:00Z"),  # week 7 (not in the 30 days)
    track("e3", "eve", "Report Created", "2024-06-01T09:00:00Z"),  # globex, week 7, last of eve
    track("a2", "ann", "Report Viewed", "2024-06-18T09:00:00Z"),  # week 10
    track("g1", "gus", "Report Viewed", "2024-06-20T09:00:00Z"),  # acme by e-mail domain, week 10
    track("b1", "bob", "Dashboard Viewed", "2024-06-23T23:59:00Z"),  # week 10's last minute
    track("b2", "bob", "Workflow Approved", "2024-06-24T09:00:00Z"),  # week 11
    track("a3", "ann", "Report Viewed", "2024-06-25T09:00:00Z"),
    track("a4", "ann", "API Called", "2024-06-28T09:00:00Z"),
    track("a5", "ann", "API Called", "2024-06-29T09:00:00Z", product="reports"),
    track("x1", None, "Sync Completed", "2024-06-29T10:00:00Z", group="acme"),  # automation
    track("a6", "ann", "Report Created", "2024-06-30T10:00:00Z"),
]

# Everything dated after as_of (SPEC §8): none of it may change a row or object as of it.
LATER_EVENTS = [
    track("l1", "ann", "Report Viewed", "2024-07-02T09:00:00Z"),
    {"type": "group", "messageId": "l-ivy", "userId": "ivy", "groupId": "acme",
     "timestamp": "2024-07-03T08:00:00Z"},
    track("l2", "ivy", "Report Created", "2024-07-03T09:00:00Z"),
    track("l3", "eve", "Report Viewed", "2024-07-03T09:00:00Z"),
    track("l4", None, "Sync Completed", "2024-07-04T10:00:00Z", group="globex"),
    {"type": "identify", "messageId": "l-eve", "userId": "eve",
     "traits": {"title": "VP", "level": 3}, "timestamp": "2024-07-05T08:00:00Z"},
    {"type": "group", "messageId": "l-soy", "userId": "eve", "groupId": "soylent",
     "traits": {"owner": "zed"}, "timestamp": "2024-07-06T08:00:00Z"},
]
LATER_MEMBERSHIPS = """user_id,account_id,unit_id,role,valid_from,valid_to
ann,acme,acme-emea,editor,2024-01-01,2024-07-10
ann,acme,acme-fin,admin,2024-07-10,
gus,acme,acme-sales,editor,2024-07-01,
"""
LATER_SUBSCRIPTIONS = """subscription_id,account_id,product,plan,seats,arr,start,end,status
s6,soylent,cloud,pro,3,3000,2024-08-01,2025-08-01,active
s3,globex,cloud,free,5,0,2024-01-01,2024-06-30,cancelled
"""
LATER_OUTCOMES = """account_id,kind,date,arr_delta,source
acme,churn,2024-07-15,-12000,crm
"""


def build(root: Path, later: bool = False) -> Path:
    """The world's workspace at `root/ws` (with everything after as_of too when `later`)."""
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace.init(root / "ws", name="world")
    files = [("accounts", ACCOUNTS), ("units", UNITS), ("users", USERS),
             ("memberships", MEMBERSHIPS), ("subscriptions", SUBSCRIPTIONS), ("outcomes", OUTCOMES)]
    if later:
        files += [("memberships", LATER_MEMBERSHIPS), ("subscriptions", LATER_SUBSCRIPTIONS),
                  ("outcomes", LATER_OUTCOMES)]
    for n, (kind, text) in enumerate(files):
        path = root / f"{n}-{kind}.csv"
        path.write_text(text)
        ws.import_entities(kind, path)
    events = EVENTS + (LATER_EVENTS if later else [])
    path = root / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(path)
    ws.close()
    return root / "ws"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = al.open(build(tmp_path_factory.mktemp("accounts")))
    yield ws
    ws.close()


def _rows(ws: Workspace, **params) -> list[dict]:
    params.setdefault("as_of", AS_OF)
    return ws.analysis_result("accounts", **params).records()


def _by_id(ws: Workspace, **params) -> dict[str, dict]:
    return {r["account_id"]: r for r in _rows(ws, **params)}


# --- the accounts list ------------------------------------------------------------------------
def test_one_row_per_account_known_on_the_day_sorted_by_arr(workspace: Workspace) -> None:
    rows = _rows(workspace)
    # initech is created after as_of; soylent is known (created) but has no contract
    assert [r["account_id"] for r in rows] == ["hq", "acme", "globex", "soylent"]
    assert [r["arr"] for r in rows] == [100000.0, 12000.0, 6000.0, 0.0]
    assert list(rows[0]) == [
        "account_id", "account_name", "domain", "parent_account_id", "industry", "region", "plan",
        "size_band", "maturity", "deployment_scale", "owner", "customer", "arr", "seats", "mau",
        "seat_utilization", "health_score", "health_grade", "health_trend", "renewal_date",
        "days_to_renewal", "last_active_day", "activity", "users"]


def test_attributes_contract_and_members(workspace: Workspace) -> None:
    rows = _by_id(workspace)
    acme, globex, hq, soylent = rows["acme"], rows["globex"], rows["hq"], rows["soylent"]
    assert {k: acme[k] for k in ("account_name", "domain", "parent_account_id", "industry",
                                 "region", "plan", "size_band", "owner", "customer")} == {
        "account_name": "Acme Retail", "domain": "acme.com", "parent_account_id": "hq",
        "industry": "retail", "region": "emea", "plan": "pro", "size_band": "250-999",
        "owner": "alice", "customer": True}
    # acme: s1 (10 seats) in force; MAU: ann, bob, gus (06-01..06-30); cat's 05-31 is outside
    assert (acme["seats"], acme["mau"], acme["seat_utilization"]) == (10, 3, 0.3)
    # globex: s3 ended on as_of, s4 (5 seats, 6,000) started on it; MAU: eve (06-01)
    assert (globex["plan"], globex["arr"], globex["seats"], globex["mau"]) == ("pro", 6000.0, 5, 1)
    assert (soylent["customer"], soylent["seats"], soylent["seat_utilization"]) == (False, 0, None)
    # members standing at the end of as_of: ann, bob, dan (an end after as_of is not known);
    # cat left 06-01 (her SDK membership closed by the CRM end), eve 05-01; gus is no member
    assert (acme["users"], globex["users"], hq["users"], soylent["users"]) == (3, 1, 0, 0)
    assert (acme["last_active_day"], globex["last_active_day"], hq["last_active_day"]) == (
        "2024-06-30", "2024-06-01", None)


def test_renewal_is_the_earliest_end_in_force_half_open(workspace: Workspace) -> None:
    rows = _by_id(workspace)
    assert (rows["acme"]["renewal_date"], rows["acme"]["days_to_renewal"]) == ("2024-07-01", 1)
    # s3 ends on as_of itself: not in force, so not the renewal; s4 ends a year later
    assert (rows["globex"]["renewal_date"], rows["globex"]["days_to_renewal"]) == ("2025-06-30", 365)
    assert (rows["hq"]["renewal_date"], rows["hq"]["days_to_renewal"]) == (None, None)
    assert rows["soylent"]["renewal_date"] is None
    # the day after: s1 has ended, s2 (to 2025-07-01) is in force
    acme = _by_id(workspace, as_of="2024-07-01")["acme"]
    assert (acme["renewal_date"], acme["days_to_renewal"], acme["arr"]) == ("2025-07-01", 365, 30000.0)


def test_sparkline_weeks_by_hand(workspace: Workspace) -> None:
    rows = _by_id(workspace)
    # acme, weeks 0..11: ann (04-08) | eve (04-15, explicit group) | - - - - | dan (05-20) |
    # cat (05-31) | - - | ann, gus, bob (06-23 23:59) | ann, bob; the automation is no user
    assert rows["acme"]["activity"] == [1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 3, 2]
    assert rows["globex"]["activity"] == [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert rows["hq"]["activity"] == [0] * 12
    # a week later, week 11 is 07-01..07-07 (nothing) and acme's 06-24..06-30 is week 10
    later = _by_id(workspace, as_of="2024-07-07")["acme"]["activity"]
    assert later == [1, 0, 0, 0, 0, 1, 1, 0, 0, 3, 2, 0]


def test_maturity_and_deployment_scale_match_the_metrics_slices(workspace: Workspace) -> None:
    rows = _by_id(workspace)
    # full months since the first contract: hq 2023-01-01 → 17, acme 2023-07-01 → 11,
    # globex 2024-01-01 → 5; soylent has none
    assert {a: r["maturity"] for a, r in rows.items()} == {
        "hq": "12-23 months", "acme": "3-11 months", "globex": "3-11 months", "soylent": "(none)"}
    assert {r["deployment_scale"] for r in rows.values()} == {"<5 users"}
    # narrower bands so the accounts differ: acme (MAU 3) 2-19, globex (1) and hq (0) <2
    settings = workspace.config.model_copy(deep=True)
    settings.metrics.deployment_scale_bands = [2, 20]
    listed = run_analysis(workspace.store, settings, "accounts", as_of=D).frame
    scales = dict(zip(listed["account_id"], listed["deployment_scale"]))
    assert scales == {"hq": "<2 users", "acme": "2-19 users", "globex": "<2 users",
                      "soylent": "<2 users"}
    for name, values in (("deployment_scale", scales), ("maturity", {
            a: r["maturity"] for a, r in rows.items()})):
        config = settings if name == "deployment_scale" else workspace.config
        for band in set(values.values()) - {"(none)"}:
            request = metric_request("arr", "account", D, {name: band}, {})
            metric = run_metric(workspace.store, config.metrics, config.analysis, request).frame
            assert set(metric["account_id"]) == {a for a, v in values.items() if v == band}, band
    by_filter = _rows(workspace, maturity="12-23 months")
    assert [r["account_id"] for r in by_filter] == ["hq"]


def test_health_columns_are_the_health_analysis(workspace: Workspace) -> None:
    health = {r["account_id"]: r for r in workspace.analysis_result(
        "health", as_of=AS_OF, limit=100).records()}
    for row in _rows(workspace):
        h = health[row["account_id"]]
        assert (row["health_score"], row["health_grade"], row["health_trend"]) == (
            h["score"], h["grade"], h["trend"])
    grade = health["acme"]["grade"]
    assert "acme" in [r["account_id"] for r in _rows(workspace, grade=grade)]
    assert all(r["health_grade"] == grade for r in _rows(workspace, grade=grade))


def test_filters_search_and_customers(workspace: Workspace) -> None:
    ids = lambda **p: [r["account_id"] for r in _rows(workspace, **p)]  # noqa: E731
    assert ids(industry="retail") == ["acme"]
    assert ids(region="emea") == ["hq", "acme"]
    assert ids(owner="bob") == ["globex"]
    assert ids(size_band="50-249") == ["globex"]
    assert ids(customers_only=True) == ["hq", "acme", "globex"]
    assert ids(q="ACM") == ["acme"]  # the id and the name, any case
    assert ids(q="holding.com") == ["hq"]  # the domain
    assert ids(q="soy") == ["soylent"]
    assert ids(q="nothing like it") == []
    assert ids(account="globex") == ["globex"]


def test_sort_and_offset_paging(workspace: Workspace) -> None:
    ids = lambda **p: [r["account_id"] for r in _rows(workspace, **p)]  # noqa: E731
    assert ids(sort="account_name", descending=False) == ["acme", "globex", "hq", "soylent"]
    assert ids(sort="mau") == ["acme", "globex", "hq", "soylent"]  # ties: account_id
    # nulls last either way
    assert ids(sort="renewal_date", descending=False) == ["acme", "globex", "hq", "soylent"]
    assert ids(sort="renewal_date") == ["globex", "acme", "hq", "soylent"]
    page = workspace.analysis_result("accounts", as_of=AS_OF, limit=2, offset=1)
    assert [r["account_id"] for r in page.records()] == ["acme", "globex"]
    assert page.total_rows == 4 and page.notes[0] == "showing rows 2–3 of 4"
    last = workspace.analysis_result("accounts", as_of=AS_OF, limit=2, offset=2)
    assert [r["account_id"] for r in last.records()] == ["globex", "soylent"]
    assert last.total_rows == 4  # not all rows are shown
    everything = workspace.analysis_result("accounts", as_of=AS_OF, limit=10)
    assert everything.total_rows is None and not everything.notes
    past = workspace.analysis_result("accounts", as_of=AS_OF, offset=10)
    assert past.records() == [] and past.total_rows == 4


def test_bad_requests(workspace: Workspace) -> None:
    with pytest.raises(ValidationError, match="sort"):
        workspace.analysis("accounts", sort="activity")  # a list: not sortable
    with pytest.raises(ValidationError, match="grade"):
        workspace.analysis("accounts", grade="great")
    with pytest.raises(ValidationError, match="offset"):
        workspace.analysis("accounts", offset=-1)
    with pytest.raises(ValidationError, match="days"):
        workspace.analysis("activity", days=0)
    with pytest.raises(ValidationError, match="days"):
        workspace.analysis("activity", days=1096)


# --- the activity series ----------------------------------------------------------------------
def _series(ws: Workspace, **params) -> list[tuple]:
    params.setdefault("as_of", AS_OF)
    return [(r["period"], r["active_accounts"], r["active_users"], r["events"])
            for r in ws.analysis_result("activity", **params).records()]


def test_activity_by_day_zero_filled(workspace: Workspace) -> None:
    assert _series(workspace, days=7) == [
        ("2024-06-24", 1, 1, 1),  # bob
        ("2024-06-25", 1, 1, 1),  # ann
        ("2024-06-26", 0, 0, 0),
        ("2024-06-27", 0, 0, 0),
        ("2024-06-28", 1, 1, 1),  # ann's API call
        ("2024-06-29", 1, 1, 2),  # ann, and the automation (an event, no user)
        ("2024-06-30", 1, 1, 1),
    ]
    assert len(_series(workspace)) == 90  # the default: 90 days, every one shown
    assert _series(workspace, days=7, industry="energy") == [
        (f"2024-06-{d}", 0, 0, 0) for d in range(24, 31)]


def test_activity_by_week(workspace: Workspace) -> None:
    # (06-16, 06-30]: the weeks of Monday 06-17 (ann, gus, bob) and 06-24
    assert _series(workspace, days=14, grain="week") == [
        ("2024-06-17", 1, 3, 3), ("2024-06-24", 1, 2, 6)]
    # (06-20, 06-30]: the first week counts 06-21..06-23 only (bob's 06-23)
    assert _series(workspace, days=10, grain="week") == [
        ("2024-06-17", 1, 1, 1), ("2024-06-24", 1, 2, 6)]
    # globex over (05-21, 06-30]: eve's 06-01 (a Saturday) in the week of 05-27
    assert _series(workspace, days=40, grain="week", industry="energy") == [
        ("2024-05-20", 0, 0, 0), ("2024-05-27", 1, 1, 1), ("2024-06-03", 0, 0, 0),
        ("2024-06-10", 0, 0, 0), ("2024-06-17", 0, 0, 0), ("2024-06-24", 0, 0, 0)]
    both = _series(workspace, days=84, grain="week")
    assert sum(r[3] for r in both) == 15  # the active events of (04-07, 06-30]: not a0, c1


# --- point in time ----------------------------------------------------------------------------
def test_nothing_after_as_of_changes_the_rows(tmp_path: Path) -> None:
    base, later = al.open(build(tmp_path / "base")), al.open(build(tmp_path / "later", later=True))
    try:
        assert _rows(later, limit=100) == _rows(base, limit=100)
        for grain, days in (("day", 90), ("week", 120)):
            assert _series(later, grain=grain, days=days) == _series(base, grain=grain, days=days)
        # the later data is there: a week on, ann's and ivy's events count
        assert _rows(later, as_of="2024-07-07") != _rows(base, as_of="2024-07-07")
    finally:
        base.close()
        later.close()


def test_the_default_as_of_is_the_latest_event_day(workspace: Workspace) -> None:
    assert workspace.analysis("accounts").attrs["as_of"] == D
    assert workspace.analysis("activity").attrs["as_of"] == D
