"""The `signals` analysis (docs/signals.md): each signal fires on a hand-computed fixture and stays
quiet just under its threshold; rows are point-in-time (SPEC §8); filters, errors, and the CLI,
REST and Python interfaces agree.

As of 2024-06-30 with the default `[signals]`: the pqa window is (06-16, 06-30] (events from
06-17T00:00), MAU (seat_cap) and quota windows from 06-01, new units from 06-01 (30 days),
unused seats from 05-02 (60 days).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

import accountlens as al
from accountlens.analysis.registry import run_analysis
from accountlens.workspace import Workspace

AS_OF = "2024-06-30"

ACCOUNTS = """account_id,name,industry,employees,plan
pq,Prospect Q,retail,40,free
users_short,Users Short,retail,40,free
paid_short,Paid Short,retail,40,free
full,Full Seats,energy,100,
roomy,Roomy,energy,100,
idle,Idle,energy,300,
heavy,Heavy,energy,300,
grow,Grow,retail,300,
"""
QUOTA = '"{""api_calls"": 3}"'
# full-old and idle-gone end on as_of: not in force that day (their status says active), so
# full has 4 seats (MAU 4: 100 %) and idle 10 (not 8 and 20).
SUBSCRIPTIONS = f"""subscription_id,account_id,plan,seats,arr,start,end,status,entitlements
full-old,full,pro,4,4000,2024-01-01,2024-06-30,active,
full-new,full,pro,4,5000,2024-06-30,2025-06-30,,
roomy-s,roomy,pro,5,5000,2024-01-01,,active,
idle-s,idle,pro,10,10000,2024-01-01,,active,{QUOTA}
idle-gone,idle,pro,10,10000,2023-01-01,2024-06-30,active,
heavy-s,heavy,pro,,8000,2024-01-01,,active,{QUOTA}
grow-s,grow,team,,3000,2024-01-01,,active,
"""
UNITS = """unit_id,account_id,kind,name,parent_unit_id
grow-sales,grow,department,Sales,
grow-emea,grow,team,EMEA,grow-sales
grow-apac,grow,team,APAC,grow-sales
grow-fin,grow,department,Finance,
grow-pay,grow,team,Payables,grow-fin
pq-team,pq,team,Pilots,
"""
MEMBER_UNITS = {"g1": "grow-emea", "g2": "grow-pay", "g3": "grow-apac", "pq1": "pq-team",
                "pq2": "pq-team", "pq3": "pq-team"}
MEMBERS = {"pq": ["pq1", "pq2", "pq3"], "users_short": ["us1", "us2"],
           "paid_short": ["ps1", "ps2", "ps3"], "full": ["f1", "f2", "f3", "f4"],
           "roomy": ["r1", "r2", "r3", "r4"], "idle": ["i1", "i2", "i3"], "heavy": ["h1"],
           "grow": ["g1", "g2", "g3"]}


def _memberships(future: bool) -> str:
    lines = ["user_id,account_id,unit_id,role,valid_from,valid_to"]
    for account, users in MEMBERS.items():
        lines += [f"{u},{account},{MEMBER_UNITS.get(u, '')},editor,2024-01-01," for u in users]
    if future:  # joins a new team after as_of
        lines.append("g4,grow,grow-apac,editor,2024-07-01,")
    return "\n".join(lines) + "\n"


def _track(user: str, name: str, ts: str) -> dict:
    return {"type": "track", "messageId": f"{user}-{name}-{ts}", "userId": user, "event": name,
            "timestamp": ts}


def _automation(account: str, name: str, ts: str, n: int) -> list[dict]:
    """Account-wide events (no user): a groupId and no userId."""
    return [{"type": "track", "messageId": f"{account}-{name}-{ts}-{i}", "event": name,
             "timestamp": ts, "context": {"groupId": account}} for i in range(n)]


EVENTS = [
    # pq: 3 users, 2 paid features (API Called, Report Shared) in the pqa window → pqa
    _track("pq1", "Report Shared", "2024-06-20T09:00:00Z"),
    _track("pq2", "API Called", "2024-06-21T09:00:00Z"),
    _track("pq3", "Dashboard Viewed", "2024-06-22T09:00:00Z"),
    # users_short: 2 users (< 3), 2 paid features
    _track("us1", "Report Shared", "2024-06-20T09:00:00Z"),
    _track("us2", "Workflow Approved", "2024-06-21T09:00:00Z"),
    # paid_short: 3 users, 1 paid feature in the window; a second one just before it starts
    _track("ps1", "Report Shared", "2024-06-20T09:00:00Z"),
    _track("ps2", "Dashboard Viewed", "2024-06-20T09:00:00Z"),
    _track("ps3", "Dashboard Viewed", "2024-06-21T09:00:00Z"),
    _track("ps1", "Workflow Approved", "2024-06-16T23:00:00Z"),
    # full: MAU 4 on 4 seats; roomy: MAU 4 on 5 seats
    *[_track(u, "Dashboard Viewed", "2024-06-05T09:00:00Z") for u in MEMBERS["full"]],
    *[_track(u, "Dashboard Viewed", "2024-06-10T09:00:00Z") for u in MEMBERS["roomy"]],
    # idle: 2 users in the 60 days (i3 before them), 3 API calls = its quota
    _track("i1", "Dashboard Viewed", "2024-05-10T09:00:00Z"),
    _track("i2", "Dashboard Viewed", "2024-06-20T09:00:00Z"),
    _track("i3", "Dashboard Viewed", "2024-04-20T09:00:00Z"),
    *_automation("idle", "API Called", "2024-06-25T09:00:00Z", 3),
    # heavy: 4 API calls on a quota of 3
    _track("h1", "Dashboard Viewed", "2024-06-01T09:00:00Z"),
    *_automation("heavy", "API Called", "2024-06-25T09:00:00Z", 4),
    # grow: active since March in EMEA (Sales); Payables (Finance) first active inside the 30
    # days, APAC (Sales) just before them
    _track("g1", "Dashboard Viewed", "2024-03-01T09:00:00Z"),
    _track("g2", "Report Created", "2024-06-10T09:00:00Z"),
    _track("g3", "Dashboard Viewed", "2024-05-31T23:00:00Z"),
]
# Everything after as_of: more users and paid features, API calls, a new team's activity.
FUTURE_EVENTS = [
    *[_track(u, "Report Shared", "2024-07-01T00:00:00Z") for us in MEMBERS.values() for u in us],
    _track("ps1", "API Called", "2024-07-02T09:00:00Z"),
    _track("g4", "Dashboard Viewed", "2024-07-03T09:00:00Z"),
    *_automation("idle", "API Called", "2024-07-01T00:00:00Z", 5),
]
FUTURE_SUBSCRIPTIONS = """pq-s,pq,pro,3,3000,2024-07-01,,active,
roomy-s,roomy,pro,5,5000,2024-01-01,2024-08-01,cancelled,
grow-up,grow,enterprise,2,9000,2024-07-15,,active,
"""


def build(root: Path, future: bool = False) -> Path:
    """The fixture workspace (closed); with `future`, changes dated after as_of as well."""
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace.init(root / "ws", name="signals")
    subscriptions = SUBSCRIPTIONS
    if future:  # roomy-s's end date, set later, replaces its open end
        subscriptions = "".join(line + "\n" for line in SUBSCRIPTIONS.splitlines()
                                if not line.startswith("roomy-s")) + FUTURE_SUBSCRIPTIONS
    for kind, text in (("accounts", ACCOUNTS), ("units", UNITS), ("subscriptions", subscriptions),
                       ("memberships", _memberships(future))):
        (root / f"{kind}.csv").write_text(text)
        ws.import_entities(kind, root / f"{kind}.csv")
    events = EVENTS + (FUTURE_EVENTS if future else [])
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(root / "events.jsonl")
    ws.close()
    return root / "ws"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = al.open(build(tmp_path_factory.mktemp("signals")))
    yield ws
    ws.close()


def _signals(ws: Workspace, settings=None, **params) -> list[dict]:
    params = {"as_of": AS_OF, **params}
    result = run_analysis(ws.store, settings or ws.config, "signals", **params)
    return result.records()


def _tuned(ws: Workspace, **signals):
    return ws.config.model_copy(update={"signals": ws.config.signals.model_copy(update=signals)})


def _fired(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["account_id"], r["signal"]) for r in rows]


def test_each_signal_fires_with_hand_computed_values(workspace: Workspace) -> None:
    rows = _signals(workspace)
    # sorted by ARR: idle 10000, heavy 8000, full 5000 (full-new only), grow 3000, pq 0
    assert _fired(rows) == [("idle", "unused_seats"), ("heavy", "over_entitlement"),
                            ("full", "seat_cap"), ("grow", "new_unit"), ("pq", "pqa")]
    by = {r["signal"]: r for r in rows}
    # idle: 10 seats in force (idle-gone ends on as_of) − 2 users active since 05-02 = 8 unused
    # ≥ 0.3 × 10
    assert {k: by["unused_seats"][k] for k in ("kind", "value", "threshold", "window_days",
                                                "active_users", "seats", "arr")} == {
        "kind": "contraction", "value": 8.0, "threshold": 3.0, "window_days": 60,
        "active_users": 2, "seats": 10.0, "arr": 10000.0}
    assert by["unused_seats"]["detail"] == "8 of 10 seats unused: 2 active users in the last 60 days"
    # heavy: 4 API calls in 30 days on a quota of 3 → 4/3
    assert by["over_entitlement"]["value"] == pytest.approx(4 / 3)
    assert by["over_entitlement"]["items"] == ["api_calls"]
    assert by["over_entitlement"]["detail"] == "api_calls: 4 used of 3 (133%)"
    # full: MAU 4 on the 4 seats of full-new (full-old ends on as_of) = 100 % ≥ 95 %
    assert (by["seat_cap"]["value"], by["seat_cap"]["threshold"], by["seat_cap"]["seats"]) == (
        1.0, 0.95, 4.0)
    assert by["seat_cap"]["detail"] == "4 monthly active users on 4 seats (100% of seats; cap at 95%)"
    # grow: Payables first active 06-10 (inside the 30 days), and with it Finance; APAC's first
    # event (05-31 23:00) is just before the window; EMEA/Sales since March
    assert by["new_unit"]["items"] == ["team: Payables", "department: Finance"]
    assert by["new_unit"]["value"] == 2.0
    assert by["new_unit"]["detail"] == ("new team Payables (first active 2024-06-10); "
                                        "new department Finance (first active 2024-06-10)")
    # pq: pq1, pq2, pq3 active, paid features API Called and Report Shared; not a customer.
    # Its team Pilots is new too, but pq itself was not active before the window: no new_unit.
    assert {k: by["pqa"][k] for k in ("kind", "value", "threshold", "active_users", "items",
                                       "customer", "arr")} == {
        "kind": "qualification", "value": 3.0, "threshold": 3.0, "active_users": 3,
        "items": ["API Called", "Report Shared"], "customer": False, "arr": 0.0}
    assert by["pqa"]["detail"] == ("3 active users, 2 paid features: API Called, Report Shared "
                                   "(last 14 days)")


def test_thresholds_are_inclusive_and_just_under_stays_quiet(workspace: Workspace) -> None:
    ws = workspace
    # users_short: 2 active users, 2 paid features; paid_short: 3 users, 1 paid feature
    assert ("users_short", "pqa") in _fired(_signals(ws, _tuned(ws, pqa_min_active_users=2)))
    assert ("paid_short", "pqa") in _fired(_signals(ws, _tuned(ws, pqa_min_paid_features=1)))
    # paid_short's Workflow Approved at 06-16 23:00 is in a 15-day window (from 06-16), not 14
    assert ("paid_short", "pqa") in _fired(_signals(ws, _tuned(ws, pqa_window_days=15)))
    # roomy: MAU 4 on 5 seats = 0.8; 1 seat of 5 unused = 0.2 of its seats
    assert ("roomy", "seat_cap") in _fired(_signals(ws, _tuned(ws, seat_cap_utilization=0.8)))
    assert ("roomy", "seat_cap") not in _fired(_signals(ws, _tuned(ws, seat_cap_utilization=0.81)))
    assert ("roomy", "unused_seats") in _fired(_signals(ws, _tuned(ws, unused_seat_share=0.2)))
    assert ("roomy", "unused_seats") not in _fired(
        _signals(ws, _tuned(ws, unused_seat_share=0.21)))
    # idle's 3 API calls on a quota of 3 is alignment 1: not over
    assert ("idle", "over_entitlement") not in _fired(_signals(workspace))
    # 31 days reach back to 05-31 00:00: APAC (05-31 23:00) is new as well
    wide = _signals(ws, _tuned(ws, new_unit_days=31), signal="new_unit")
    assert wide[0]["items"] == ["team: APAC", "team: Payables", "department: Finance"]


def test_accounts_view_has_a_boolean_per_signal(workspace: Workspace) -> None:
    rows = {r["account_id"]: r for r in _signals(workspace, view="accounts")}
    assert set(rows) == set(MEMBERS)
    assert rows["full"]["seat_cap"] and rows["full"]["signals"] == 1
    assert not any(rows["roomy"][s] for s in ("pqa", "seat_cap", "new_unit", "over_entitlement",
                                              "unused_seats"))
    assert (rows["full"]["seats"], rows["full"]["mau"], rows["full"]["seat_utilization"]) == (
        4.0, 4.0, 1.0)
    expanding = _signals(workspace, view="accounts", kind="expansion")
    assert [r["account_id"] for r in expanding] == ["heavy", "full", "grow"]
    # narrowed to expansion, an account's other columns are still filled: roomy (0.8 of its
    # seats used, 1 of 5 unused) fires seat_cap and unused_seats at these thresholds
    both = _tuned(workspace, seat_cap_utilization=0.8, unused_seat_share=0.2)
    roomy = _signals(workspace, both, view="accounts", kind="expansion", account="roomy")
    assert (roomy[0]["seat_cap"], roomy[0]["unused_seats"], roomy[0]["signals"]) == (True, True, 2)


def test_filters_and_account(workspace: Workspace) -> None:
    energy = _signals(workspace, industry="energy")
    assert _fired(energy) == [("idle", "unused_seats"), ("heavy", "over_entitlement"),
                              ("full", "seat_cap")]
    assert _fired(_signals(workspace, account="grow")) == [("grow", "new_unit")]
    assert _fired(_signals(workspace, kind="contraction")) == [("idle", "unused_seats")]
    assert _fired(_signals(workspace, signal="pqa, seat_cap")) == [("full", "seat_cap"), ("pq", "pqa")]
    assert _signals(workspace, plan="enterprise") == []


def test_bad_requests_say_what_is_wrong(workspace: Workspace) -> None:
    with pytest.raises(ValidationError, match="unknown signal upsell; signals are pqa"):
        workspace.analysis("signals", signal="pqa,upsell")
    with pytest.raises(ValidationError, match="as_of"):
        workspace.analysis("signals", as_of="2024-13-01")
    with pytest.raises(ValidationError, match="kind"):
        workspace.analysis("signals", kind="growth")


def test_nothing_after_as_of_changes_the_rows(tmp_path: Path) -> None:
    """Events after as_of, a subscription starting later, an end date set later (and a status
    changed), a membership starting later: the same rows in both views."""
    base, later = al.open(build(tmp_path / "base")), al.open(build(tmp_path / "later", future=True))
    try:
        for view in ("signals", "accounts"):
            assert _signals(later, view=view) == _signals(base, view=view)
        # the later data is there: as of a later day it counts (pq-s starts 07-01)
        assert _signals(later, as_of="2024-07-02") != _signals(base, as_of="2024-07-02")
        assert _signals(later, as_of="2024-07-02", signal="pqa", account="pq")[0]["customer"]
    finally:
        base.close()
        later.close()


def test_cli_rest_and_python_give_the_same_rows(tmp_path: Path) -> None:
    from accountlens.api.app import create_app
    from accountlens.cli.main import app as cli
    from accountlens.serve.live import LiveWorkspace

    root = build(tmp_path)
    ws = al.open(root)
    python_rows = ws.analysis_result("signals", as_of=AS_OF, industry="energy").records()
    accounts_rows = ws.analysis_result("signals", as_of=AS_OF, view="accounts").records()
    ws.close()
    assert [r["account_id"] for r in python_rows] == ["idle", "heavy", "full"]

    runner = CliRunner()
    out = runner.invoke(cli, ["signals", "--dir", str(root), "--as-of", AS_OF, "--industry",
                              "energy", "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == python_rows
    out = runner.invoke(cli, ["signals", "--dir", str(root), "--as-of", AS_OF, "--view",
                              "accounts", "--format", "json"])
    assert json.loads(out.stdout) == accounts_rows
    bad = runner.invoke(cli, ["signals", "--dir", str(root), "--signal", "upsell"])
    assert bad.exit_code == 1 and "unknown signal upsell" in bad.output
    bad = runner.invoke(cli, ["signals", "--dir", str(root), "--as-of", "2024-13-01"])
    assert bad.exit_code == 1 and "--as-of" in bad.output

    live = LiveWorkspace(workspace=al.open(root), log=None, loader=None)
    try:
        client = TestClient(create_app([live]))
        body = client.get("/api/v1/analyses/signals",
                          params={"as_of": AS_OF, "industry": "energy"}).json()
        assert body["rows"] == python_rows and body["as_of"] == AS_OF
        response = client.get("/api/v1/analyses/signals", params={"signal": "upsell"})
        assert response.status_code == 422 and "unknown signal" in response.text
        assert client.get("/api/v1/analyses/signals", params={"as_of": "June"}).status_code == 422
    finally:
        live.workspace.close()


def test_as_of_defaults_to_the_latest_event_day(workspace: Workspace) -> None:
    """Without --as-of: the latest active event day (the automations of 06-25)."""
    frame = workspace.analysis("signals")
    assert frame.attrs["as_of"] == dt.date(2024, 6, 25)
