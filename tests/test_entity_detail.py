"""The account and user pages' data (docs/web-api.md): `ws.account_detail`, `ws.user_detail`,
`accountlens account|user`, `GET /api/v1/accounts/{id}` and `/api/v1/users/{id}`, hand-computed
on the world of tests/test_accounts_list.py as of 2024-06-30; point-in-time (SPEC §8); 404s and
bad parameters; CLI, REST and Python give the same object.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import accountlens as al
from accountlens.analysis import account_detail as detail_module
from accountlens.analysis.account_detail import EntityNotFound
from accountlens.store.cache import BoundedCache
from accountlens.workspace import Workspace
from tests.test_accounts_list import AS_OF, build

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = al.open(build(tmp_path_factory.mktemp("entities")))
    yield ws
    ws.close()


# --- the account page ---------------------------------------------------------------------------
def test_account_record_parent_and_units(workspace: Workspace) -> None:
    acme = workspace.account_detail("acme", as_of=AS_OF)
    assert acme.as_of == dt.date(2024, 6, 30)
    assert acme.account.model_dump() == {
        "account_id": "acme", "name": "Acme Retail", "domain": "acme.com", "industry": "retail",
        "region": "emea", "employees": 500, "plan": "pro", "size_band": "250-999",
        "owner": "alice", "created_at": at("2023-06-01T00:00:00"), "traits": {"owner": "alice"}}
    assert acme.parent.model_dump() == {"account_id": "hq", "name": "Holding Corp"}
    assert acme.children == []
    # outermost kinds first; members: memberships standing in the unit itself (dan's end of
    # 08-01 is not known on as_of; cat left Sales 06-01, eve 05-01); active: (06-01, 06-30]
    assert [u.model_dump() for u in acme.units] == [
        {"unit_id": "acme-fin", "name": "Finance", "kind": "department", "parent_unit_id": None,
         "members": 1, "active_users_30d": 1},
        {"unit_id": "acme-sales", "name": "Sales", "kind": "department", "parent_unit_id": None,
         "members": 0, "active_users_30d": 0},
        {"unit_id": "acme-emea", "name": "EMEA", "kind": "team", "parent_unit_id": "acme-sales",
         "members": 2, "active_users_30d": 1},
    ]


def test_account_users_current_first_then_by_last_activity(workspace: Workspace) -> None:
    acme = workspace.account_detail("acme", as_of=AS_OF)
    users = [(u.user_id, u.role, u.unit_name, u.member_since, u.last_active_at, u.events_30d,
              u.current) for u in acme.users]
    assert users == [
        # ann: 06-18, 06-25, 06-28, 06-29, 06-30 in (06-01, 06-30]
        ("ann", "editor", "EMEA", at("2024-01-01T00:00"), at("2024-06-30T10:00"), 5, True),
        ("bob", "approver", "Finance", at("2024-01-01T00:00"), at("2024-06-24T09:00"), 2, True),
        # no membership (attributed by e-mail domain), active in the last 30 days
        ("gus", None, None, None, at("2024-06-20T09:00"), 1, True),
        ("dan", "viewer", "EMEA", at("2024-02-01T00:00"), at("2024-05-20T09:00"), 0, True),
        # her CRM end (06-01) closed the membership of her group call too; the CRM row has the role
        ("cat", "editor", "Sales", at("2024-01-01T00:00"), at("2024-05-31T09:00"), 0, False),
        ("eve", "viewer", "Sales", at("2024-04-01T00:00"), at("2024-04-15T09:00"), 0, False),
    ]
    assert (acme.users[0].email, acme.users[0].name) == ("ann@acme.com", "Ann")
    assert (acme.users_total, acme.users_truncated) == (6, False)


def test_the_users_list_is_cut_and_says_so(workspace: Workspace, monkeypatch) -> None:
    monkeypatch.setattr(detail_module, "MAX_USERS", 2)
    # pages are kept: a cache of its own, so the page is computed under the smaller limit
    monkeypatch.setattr(detail_module, "_KEPT", BoundedCache(4))
    acme = workspace.account_detail("acme", as_of=AS_OF)
    assert [u.user_id for u in acme.users] == ["ann", "bob"]
    assert (acme.users_total, acme.users_truncated) == (6, True)


def test_account_contract_and_entitlements(workspace: Workspace) -> None:
    contract = workspace.account_detail("acme", as_of=AS_OF).contract
    # s1 runs to 2024-07-01 (in force: half-open); s2 starts that day
    assert [s.model_dump() for s in contract.subscriptions] == [{
        "subscription_id": "s1", "product": "cloud", "plan": "pro", "seats": 10, "arr": 12000.0,
        "start": dt.date(2023, 7, 1), "end": dt.date(2024, 7, 1), "days_to_end": 1}]
    assert (contract.seats, contract.arr, contract.mau, contract.seat_utilization) == (
        10, 12000.0, 3, 0.3)
    # API Called twice in 30 days of 100; the module `reports` used (product of a5); seats 3/10
    assert [e.model_dump() for e in contract.entitlements] == [
        {"entitlement": "api_calls", "usage": 2.0, "limit": 100.0, "alignment": 0.02},
        {"entitlement": "modules", "usage": 1.0, "limit": 1.0, "alignment": 1.0},
        {"entitlement": "seats", "usage": 3.0, "limit": 10.0, "alignment": 0.3}]
    globex = workspace.account_detail("globex", as_of=AS_OF).contract
    assert [s.subscription_id for s in globex.subscriptions] == ["s4"]  # s3 ended on as_of
    assert (globex.seats, globex.arr, globex.mau, globex.seat_utilization) == (5, 6000.0, 1, 0.2)
    hq = workspace.account_detail("hq", as_of=AS_OF).contract
    assert (hq.subscriptions[0].end, hq.subscriptions[0].days_to_end, hq.mau) == (None, None, 0)


def _timeline(detail) -> list[tuple]:
    return [(e.at.isoformat(), e.kind, e.user_id, e.text) for e in detail.timeline]


def test_account_timeline_newest_first(workspace: Workspace) -> None:
    assert _timeline(workspace.account_detail("acme", as_of=AS_OF)) == [
        ("2024-06-01", "user_left", "cat", "cat left"),
        ("2024-05-01", "user_left", "eve", "eve left"),
        ("2024-04-01", "user_joined", "eve", "eve joined"),
        ("2024-03-15", "outcome", None, "expansion (ARR +6,000)"),
        ("2024-03-10", "role_changed", "bob", "bob: role editor → approver"),
        ("2024-03-01", "first_event", "cat", "first event: Report Created by cat"),
        ("2024-02-01", "user_joined", "dan", "dan joined"),
        ("2024-01-01", "user_joined", "ann", "ann joined"),
        ("2024-01-01", "user_joined", "bob", "bob joined"),
        ("2024-01-01", "user_joined", "cat", "cat joined"),
        ("2023-07-01", "subscription_started", None, "s1 started: cloud pro (10 seats, ARR 12,000)"),
    ]
    # globex's champion (eve, all of its activity) was last seen 06-01: quiet after 14 days
    assert _timeline(workspace.account_detail("globex", as_of=AS_OF)) == [
        ("2024-06-30", "outcome", None, "conversion (ARR +6,000)"),
        ("2024-06-30", "subscription_started", None, "s4 started: cloud pro (5 seats, ARR 6,000)"),
        ("2024-06-30", "subscription_ended", None, "s3 ended: cloud free"),
        ("2024-06-01", "champion", "eve", "champion eve went quiet: last seen 29 days before "
                                          "as_of (100% of the activity; risk high)"),
        ("2024-05-20", "first_event", "eve", "first event: Report Viewed by eve"),
        ("2024-01-15", "user_joined", "eve", "eve joined"),
        ("2024-01-01", "subscription_started", None, "s3 started: cloud free (5 seats, ARR 0)"),
    ]


def test_the_timeline_keeps_the_newest(workspace: Workspace, monkeypatch) -> None:
    monkeypatch.setattr(detail_module, "MAX_TIMELINE", 2)
    # pages are kept: a cache of its own, so the page is computed under the smaller limit
    monkeypatch.setattr(detail_module, "_KEPT", BoundedCache(4))
    assert [e.kind for e in workspace.account_detail("acme", as_of=AS_OF).timeline] == [
        "user_left", "user_left"]


def test_a_parent_lists_its_children_with_their_health(workspace: Workspace) -> None:
    hq = workspace.account_detail("hq", as_of=AS_OF)
    health = {r["account_id"]: r for r in workspace.analysis_result(
        "health", as_of=AS_OF, limit=100).records()}
    assert [c.model_dump() for c in hq.children] == [{
        "account_id": "acme", "name": "Acme Retail", "arr": 12000.0,
        "health_score": health["acme"]["score"], "health_grade": health["acme"]["grade"]}]
    assert (hq.parent, hq.users, hq.units, hq.account.size_band) == (None, [], [], "1000+")


# --- the user page ------------------------------------------------------------------------------
def test_user_memberships_across_two_accounts(workspace: Workspace) -> None:
    eve = workspace.user_detail("eve", as_of=AS_OF)
    assert eve.user.model_dump() == {
        "user_id": "eve", "email": "eve@globex.com", "name": "Eve",
        # the profile dates from her identify call (02-01); her membership from 01-15
        "created_at": at("2024-01-15T00:00"), "traits": {"title": "Manager"}}
    assert [m.model_dump() for m in eve.memberships] == [
        {"account_id": "globex", "account_name": "Globex", "unit_id": None, "unit_name": None,
         "role": "admin", "valid_from": at("2024-01-15T00:00"), "valid_to": None,
         "source": "import"},
        {"account_id": "acme", "account_name": "Acme Retail", "unit_id": "acme-sales",
         "unit_name": "Sales", "role": "viewer", "valid_from": at("2024-04-01T00:00"),
         "valid_to": at("2024-05-01T00:00"), "source": "import"}]
    assert [a.model_dump() for a in eve.accounts] == [
        {"account_id": "globex", "account_name": "Globex", "role": "admin", "current": True,
         "last_active_at": at("2024-06-01T09:00"), "events_30d": 1},
        {"account_id": "acme", "account_name": "Acme Retail", "role": "viewer", "current": False,
         "last_active_at": at("2024-04-15T09:00"), "events_30d": 0}]


def test_user_activity_and_top_events(workspace: Workspace) -> None:
    eve = workspace.user_detail("eve", as_of=AS_OF)
    # 90 days (04-01, 06-30], zero-filled
    assert len(eve.activity) == 90
    assert (eve.activity[0].day, eve.activity[-1].day) == (dt.date(2024, 4, 2), dt.date(2024, 6, 30))
    assert {a.day.isoformat(): a.events for a in eve.activity if a.events} == {
        "2024-04-15": 1, "2024-05-20": 1, "2024-06-01": 1}
    assert [e.model_dump() for e in eve.top_events] == [
        {"name": "Report Viewed", "events": 2}, {"name": "Report Created", "events": 1}]
    # gus: no membership; attributed by his e-mail domain
    gus = workspace.user_detail("gus", as_of=AS_OF)
    assert gus.memberships == []
    assert [(a.account_id, a.role, a.current, a.events_30d) for a in gus.accounts] == [
        ("acme", None, True, 1)]
    assert gus.user.traits == {"email": "gus@acme.com", "name": "Gus"}
    ann = workspace.user_detail("ann", as_of=AS_OF)
    # a0 (04-07), a1, a2, a3; a4, a5; a6 — all within (04-01, 06-30]
    assert [(e.name, e.events) for e in ann.top_events] == [
        ("Report Viewed", 4), ("API Called", 2), ("Report Created", 1)]


# --- unknown ids, bad days ----------------------------------------------------------------------
def test_unknown_or_not_yet_known(workspace: Workspace) -> None:
    with pytest.raises(EntityNotFound, match="^no account 'nope'$"):
        workspace.account_detail("nope")
    assert issubclass(EntityNotFound, LookupError)
    # initech is created 2024-09-01: nothing of it is known on as_of
    with pytest.raises(EntityNotFound, match="no account 'initech' as of 2024-06-30"):
        workspace.account_detail("initech", as_of=AS_OF)
    assert workspace.account_detail("initech", as_of="2024-09-01").account.name == "Initech"
    with pytest.raises(EntityNotFound, match="^no user 'nope'$"):
        workspace.user_detail("nope", as_of=AS_OF)
    with pytest.raises(EntityNotFound, match="no user 'hal' as of 2024-06-30"):
        workspace.user_detail("hal", as_of=AS_OF)  # created 2024-08-01
    assert workspace.user_detail("hal", as_of="2024-08-01").user.email == "hal@acme.com"
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        workspace.account_detail("acme", as_of="2024-13-01")


def test_the_default_as_of_is_the_latest_event_day(workspace: Workspace) -> None:
    assert workspace.account_detail("acme").as_of == dt.date(2024, 6, 30)
    assert workspace.user_detail("eve").as_of == dt.date(2024, 6, 30)


# --- point in time ------------------------------------------------------------------------------
def test_nothing_after_as_of_changes_the_pages(tmp_path: Path) -> None:
    """Events, a group call with traits, an identify, memberships (an end and a role change),
    an outcome and a subscription, all dated after as_of: the pages as of it are unchanged."""
    base, later = al.open(build(tmp_path / "base")), al.open(build(tmp_path / "later", later=True))
    try:
        for account in ("acme", "globex", "hq", "soylent"):
            assert (later.account_detail(account, as_of=AS_OF).model_dump()
                    == base.account_detail(account, as_of=AS_OF).model_dump()), account
        for user in ("ann", "eve", "gus", "cat"):
            assert (later.user_detail(user, as_of=AS_OF).model_dump()
                    == base.user_detail(user, as_of=AS_OF).model_dump()), user
        # the later data is there
        assert later.user_detail("eve", as_of="2024-07-05").user.traits == {"title": "VP", "level": 3}
        assert later.account_detail("soylent", as_of="2024-07-06").account.owner == "zed"
        acme = later.account_detail("acme", as_of="2024-07-20")
        kinds = {(e.kind, e.user_id) for e in acme.timeline if e.at > dt.date(2024, 6, 30)}
        assert {("outcome", None), ("role_changed", "ann"), ("user_joined", "ivy"),
                ("user_joined", "gus"), ("subscription_started", None),
                ("subscription_ended", None)} <= kinds
        with pytest.raises(EntityNotFound):
            later.user_detail("ivy", as_of=AS_OF)  # first seen 07-03
    finally:
        base.close()
        later.close()


# --- CLI, REST and Python ------------------------------------------------------------------------
def test_cli_rest_and_python_give_the_same_object(tmp_path: Path) -> None:
    from accountlens.api.app import create_app
    from accountlens.cli.main import app as cli
    from accountlens.serve.live import LiveWorkspace

    root = build(tmp_path)
    ws = al.open(root)
    python = {("accounts", "acme"): ws.account_detail("acme", as_of=AS_OF).model_dump(mode="json"),
              ("users", "eve"): ws.user_detail("eve", as_of=AS_OF).model_dump(mode="json")}
    listed = ws.analysis_result("accounts", as_of=AS_OF, limit=2, offset=1).records()
    series = ws.analysis_result("activity", as_of=AS_OF, grain="week", days=14).records()
    ws.close()

    runner = CliRunner()
    for (kind, entity), expected in python.items():
        command = "account" if kind == "accounts" else "user"
        out = runner.invoke(cli, [command, entity, "--dir", str(root), "--as-of", AS_OF,
                                  "--format", "json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout) == expected
    table = runner.invoke(cli, ["account", "acme", "--dir", str(root), "--as-of", AS_OF])
    assert table.exit_code == 0, table.output
    for section in ("account acme as of 2024-06-30", "Acme Retail", "org units", "users (6)",
                    "subscriptions in force", "entitlements", "timeline (newest first)"):
        assert section in table.stdout, section
    table = runner.invoke(cli, ["user", "eve", "--dir", str(root), "--as-of", AS_OF])
    assert table.exit_code == 0 and "memberships" in table.stdout and "Globex" in table.stdout
    out = runner.invoke(cli, ["accounts", "--dir", str(root), "--as-of", AS_OF, "--limit", "2",
                              "--offset", "1", "--format", "json"])
    assert out.exit_code == 0 and json.loads(out.stdout) == listed
    out = runner.invoke(cli, ["activity", "--dir", str(root), "--as-of", AS_OF, "--grain", "week",
                              "--days", "14", "--format", "json"])
    assert out.exit_code == 0 and json.loads(out.stdout) == series
    bad = runner.invoke(cli, ["account", "nope", "--dir", str(root)])
    assert bad.exit_code == 1 and "no account 'nope'" in bad.output
    assert "Traceback" not in bad.output
    bad = runner.invoke(cli, ["user", "hal", "--dir", str(root), "--as-of", AS_OF])
    assert bad.exit_code == 1 and "no user 'hal' as of 2024-06-30" in bad.output
    bad = runner.invoke(cli, ["account", "acme", "--dir", str(root), "--as-of", "2024-13-01"])
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output
    bad = runner.invoke(cli, ["accounts", "--dir", str(root), "--sort", "activity"])
    assert bad.exit_code == 1 and "--sort" in bad.output

    live = LiveWorkspace(workspace=al.open(root), log=None, loader=None)
    try:
        client = TestClient(create_app([live]))
        for (kind, entity), expected in python.items():
            response = client.get(f"/api/v1/{kind}/{entity}", params={"as_of": AS_OF})
            assert response.status_code == 200, response.text
            assert response.json() == expected
        body = client.get("/api/v1/analyses/accounts",
                          params={"as_of": AS_OF, "limit": 2, "offset": 1}).json()
        assert body["rows"] == listed and body["total_rows"] == 4
        assert body["notes"][0] == "showing rows 2–3 of 4"
        body = client.get("/api/v1/analyses/activity",
                          params={"as_of": AS_OF, "grain": "week", "days": 14}).json()
        assert body["rows"] == series
        missing = client.get("/api/v1/accounts/nope")
        assert missing.status_code == 404
        assert missing.json() == {"success": False, "error": "no account 'nope'", "problems": []}
        missing = client.get("/api/v1/users/hal", params={"as_of": AS_OF})
        assert missing.status_code == 404 and missing.json()["success"] is False
        assert "no user 'hal' as of 2024-06-30" in missing.json()["error"]
        bad = client.get("/api/v1/accounts/acme", params={"as_of": "June"})
        assert bad.status_code == 422 and bad.json()["success"] is False
        assert bad.json()["problems"][0]["location"] == "query.as_of"
        bad = client.get("/api/v1/analyses/accounts", params={"sort": "activity"})
        assert bad.status_code == 422
        bad = client.get("/api/v1/analyses/accounts", params={"offset": -1})
        assert bad.status_code == 422
        schema = client.get("/openapi.json").json()
        assert {"AccountDetail", "UserDetail", "AccountUser", "TimelineEntry"} <= set(
            schema["components"]["schemas"])
        operation = schema["paths"]["/api/v1/accounts/{account_id}"]["get"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/AccountDetail"}
    finally:
        live.workspace.close()


def test_a_read_only_store_reads_the_events_inline_with_the_same_answers(tmp_path: Path) -> None:
    """Before any query has built the daily rollup, a read-only workspace cannot build it: the
    pages and both analyses read the events inline and answer the same."""
    from accountlens.model import rollup

    root = build(tmp_path)
    read_only = al.open(root, read_only=True)
    try:
        assert not rollup.is_fresh(read_only.store)
        inline = (read_only.account_detail("acme", as_of=AS_OF).model_dump(),
                  read_only.user_detail("eve", as_of=AS_OF).model_dump(),
                  read_only.analysis_result("accounts", as_of=AS_OF).records(),
                  read_only.analysis_result("activity", as_of=AS_OF, grain="week").records())
    finally:
        read_only.close()
    ws = al.open(root)
    try:
        assert inline == (ws.account_detail("acme", as_of=AS_OF).model_dump(),
                          ws.user_detail("eve", as_of=AS_OF).model_dump(),
                          ws.analysis_result("accounts", as_of=AS_OF).records(),
                          ws.analysis_result("activity", as_of=AS_OF, grain="week").records())
        assert rollup.is_fresh(ws.store)
    finally:
        ws.close()
