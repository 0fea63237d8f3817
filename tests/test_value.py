"""The `value` analysis (docs/signals.md): time-to-value benchmarks, delay, its cost and the
projected value date, hand-computed; point-in-time (SPEC §8); filters, errors and the CLI, REST
and Python interfaces.

As of 2024-06-30 with the default `[metrics]`: value events Report Created / Report Shared / …,
an account realizes value with its 2nd value user (min_users 2), activated if within 30 days.
Each account `X` with a time-to-value of k days has a contract from D and value users X-a at
D + 1 and X-b at D + k (00:00 UTC), so its time-to-value is exactly k days.

  account  plan   start       ARR    value users      ttv
  r1…r5    pro    2024-02-01  365    2 each           2, 4, 6, 8, 10
  late     pro    2024-02-01  365    2                40 (not activated: > 30 days)
  p_slow   pro    2024-05-01  3650   1 (05-11)        —
  old      pro    2023-06-01  5000   0                — (acquired before the first event)
  b1       basic  2024-02-01  730    2                20
  b_new    basic  2024-06-25  1000   0                —
  b_stuck  basic  2024-03-01  7300   0                —
  gone     basic  2024-02-01  500    0                — (its contract ends on as_of: no row)

Benchmarks (accounts that realized value, tracked from acquisition; old is not):
  pro: 2, 4, 6, 8, 10, 40 → 6 accounts ≥ 5, median (6 + 8) / 2 = 7   → "plan=pro"
  basic: 20 → 1 account < 5: the overall median of 2, 4, 6, 8, 10, 20, 40 = 8 → "all"
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
from accountlens.workspace import Workspace

AS_OF = "2024-06-30"
TTV = {"r1": 2, "r2": 4, "r3": 6, "r4": 8, "r5": 10, "late": 40, "b1": 20}
PLANS = {"r1": "pro", "r2": "pro", "r3": "pro", "r4": "pro", "r5": "pro", "late": "pro",
         "p_slow": "pro", "old": "pro", "b1": "basic", "b_new": "basic", "b_stuck": "basic",
         "gone": "basic"}

ACCOUNTS = "account_id,name,industry,employees,plan\n" + "".join(
    f"{a},{a.title()},{'retail' if plan == 'pro' else 'energy'},100,\n"
    for a, plan in PLANS.items()) + "trial,Trial,retail,10,free\n"
SUBSCRIPTIONS = """subscription_id,account_id,plan,seats,arr,start,end,status
s-r1,r1,pro,5,365,2024-02-01,,active
s-r2,r2,pro,5,365,2024-02-01,,active
s-r3,r3,pro,5,365,2024-02-01,,active
s-r4,r4,pro,5,365,2024-02-01,,active
s-r5,r5,pro,5,365,2024-02-01,,active
s-late,late,pro,5,365,2024-02-01,,active
s-p_slow,p_slow,pro,5,3650,2024-05-01,,active
s-old,old,pro,5,5000,2023-06-01,,active
s-b1,b1,basic,5,730,2024-02-01,,active
s-b_new,b_new,basic,5,1000,2024-06-25,,active
s-b_stuck,b_stuck,basic,5,7300,2024-03-01,,active
s-gone,gone,basic,5,500,2024-02-01,2024-06-30,active
"""
START = dt.date(2024, 2, 1)


def _track(user: str, name: str, day: dt.date | str, hour: str = "00:00:00") -> dict:
    return {"type": "track", "messageId": f"{user}-{name}-{day}-{hour}", "userId": user,
            "event": name, "timestamp": f"{day}T{hour}Z"}


def _events(future: bool) -> list[dict]:
    events = [_track("trial-a", "Dashboard Viewed", "2024-01-15", "09:00:00")]  # first tracked
    for account, k in TTV.items():
        events += [_track(f"{account}-a", "Report Created", START + dt.timedelta(days=1)),
                   _track(f"{account}-b", "Report Shared", START + dt.timedelta(days=k))]
    events += [_track("p_slow-a", "Report Created", "2024-05-11"),
               _track("b_stuck-a", "Dashboard Viewed", "2024-03-05"),
               _track("old-a", "Dashboard Viewed", "2024-02-10")]
    if future:  # value after as_of: p_slow and b_stuck would realize value, newco too
        events += [_track("p_slow-b", "Report Shared", "2024-07-05"),
                   _track("b_stuck-a", "Report Shared", "2024-07-01"),
                   _track("b_stuck-b", "Report Shared", "2024-07-01"),
                   _track("newco-a", "Report Shared", "2024-07-11"),
                   _track("newco-b", "Report Shared", "2024-07-11")]
    return events


def _memberships(future: bool) -> str:
    lines = ["user_id,account_id,role,valid_from,valid_to", "trial-a,trial,editor,2024-01-01,"]
    accounts = [*PLANS, *(["newco"] if future else [])]
    lines += [f"{a}-{s},{a},editor,2024-01-01," for a in accounts for s in "ab"]
    return "\n".join(lines) + "\n"


# After as_of: a subscription starting later, an end date and status set later, a new account.
FUTURE_SUBSCRIPTIONS = """s-b_new-up,b_new,basic,5,9999,2024-07-01,,active
s-newco,newco,pro,5,365,2024-07-10,,active
"""


def build(root: Path, future: bool = False) -> Path:
    """The fixture workspace (closed); with `future`, changes dated after as_of as well."""
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace.init(root / "ws", name="value")
    subscriptions = SUBSCRIPTIONS
    accounts = ACCOUNTS
    if future:
        subscriptions = (subscriptions.replace("s-r1,r1,pro,5,365,2024-02-01,,active",
                                               "s-r1,r1,pro,5,365,2024-02-01,2024-08-01,cancelled")
                         + FUTURE_SUBSCRIPTIONS)
        accounts += "newco,Newco,retail,100,\n"
    for kind, text in (("accounts", accounts), ("subscriptions", subscriptions),
                       ("memberships", _memberships(future))):
        (root / f"{kind}.csv").write_text(text)
        ws.import_entities(kind, root / f"{kind}.csv")
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _events(future)))
    ws.import_events(root / "events.jsonl")
    ws.close()
    return root / "ws"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = al.open(build(tmp_path_factory.mktemp("value")))
    yield ws
    ws.close()


def _value(ws: Workspace, **params) -> list[dict]:
    return ws.analysis_result("value", **{"as_of": AS_OF, **params}).records()


def test_delay_cost_and_projection_by_hand(workspace: Workspace) -> None:
    rows = _value(workspace)
    by = {r["account_id"]: r for r in rows}
    # by cost of delay, then delay; old (no cost) last; gone's contract ended on as_of
    assert [r["account_id"] for r in rows] == [
        "b_stuck", "p_slow", "late", "b1", "r5", "r4", "b_new", "r1", "r2", "r3", "old"]

    # b_stuck: 121 days since 03-01, overall benchmark 8 → 113 days late, 7300/365 × 113 = 2260;
    # no value user and 03-01 + 8 = 03-09 has passed: overdue, no date
    assert {k: by["b_stuck"][k] for k in (
        "days_since_acquisition", "expected_ttv_days", "benchmark_segment", "benchmark_accounts",
        "delay_days", "value_users", "needed_users", "projected_value_date",
        "projection_basis")} == {
        "days_since_acquisition": 121, "expected_ttv_days": 8.0, "benchmark_segment": "all",
        "benchmark_accounts": 7, "delay_days": 113.0, "value_users": 0, "needed_users": 2,
        "projected_value_date": None, "projection_basis": "overdue"}
    assert by["b_stuck"]["cost_of_delay"] == pytest.approx(2260.0)

    # p_slow: 60 days, pro benchmark 7 → 53 days, 3650/365 × 53 = 530; 1 value user in 60 days
    # → 2 users at 60 days per user: 05-01 + 120 days = 08-29
    p = by["p_slow"]
    assert (p["delay_days"], p["benchmark_segment"], p["benchmark_accounts"]) == (53.0, "plan=pro", 6)
    assert p["cost_of_delay"] == pytest.approx(530.0)
    assert (p["projected_value_date"], p["projection_basis"]) == ("2024-08-29", "pace")
    assert (p["activated"], p["value_users"], p["time_to_value_days"]) == (False, 1, None)

    # late: value with its 2nd user after 40 days, not activated (window 30), 33 days behind
    # the pro median 7, 365/365 × 33 = 33
    late = by["late"]
    assert (late["activated"], late["activated_on"], late["value_reached_on"]) == (
        False, None, "2024-03-12")
    assert late["time_to_value_days"] == pytest.approx(40.0)
    assert (late["delay_days"], late["projected_value_date"], late["projection_basis"]) == (
        pytest.approx(33.0), "2024-03-12", "reached")
    assert late["cost_of_delay"] == pytest.approx(33.0)

    # b1: 20 days against the overall 8 → 12, 730/365 × 12 = 24; activated on 02-21
    assert (by["b1"]["activated"], by["b1"]["activated_on"]) == (True, "2024-02-21")
    assert by["b1"]["cost_of_delay"] == pytest.approx(24.0)
    # r5: 10 − 7 = 3; r4: 8 − 7 = 1; r1…r3 faster than the median: 0
    assert [by[a]["delay_days"] for a in ("r5", "r4", "r3", "r1")] == pytest.approx([3, 1, 0, 0])
    # b_new: 5 days old, not behind 8; no value user yet: 06-25 + 8 days = 07-03
    assert (by["b_new"]["delay_days"], by["b_new"]["cost_of_delay"]) == (0.0, 0.0)
    assert (by["b_new"]["projected_value_date"], by["b_new"]["projection_basis"]) == (
        "2024-07-03", "benchmark")
    # old: acquired (2023-06-01) before the first tracked event (2024-01-15)
    assert by["old"]["acquired_before_tracking"] is True
    assert (by["old"]["delay_days"], by["old"]["cost_of_delay"], by["old"]["projection_basis"]) == (
        None, None, "before_tracking")


def test_notes_say_which_accounts_predate_tracking(workspace: Workspace) -> None:
    notes = workspace.analysis_result("value", as_of=AS_OF).notes
    assert any("1 of 11 accounts were acquired before the first tracked event (2024-01-15)" in n
               for n in notes)
    assert any("cost_of_delay is an estimate" in n for n in notes)


def test_overall_benchmark_and_filters_do_not_move_it(workspace: Workspace) -> None:
    overall = {r["account_id"]: r for r in _value(workspace, benchmark_by="none")}
    # everyone against the overall median 8: p_slow 60 − 8 = 52, late 40 − 8 = 32
    assert (overall["p_slow"]["delay_days"], overall["late"]["delay_days"]) == (52.0, 32.0)
    assert {r["benchmark_segment"] for r in overall.values() if r["benchmark_segment"]} == {"all"}
    energy = _value(workspace, industry="energy")
    assert [r["account_id"] for r in energy] == ["b_stuck", "b1", "b_new"]
    one = _value(workspace, account="p_slow")
    assert len(one) == 1 and (one[0]["expected_ttv_days"], one[0]["benchmark_accounts"]) == (7.0, 6)
    assert _value(workspace, plan="enterprise") == []


def test_bad_requests(workspace: Workspace) -> None:
    with pytest.raises(ValidationError, match="benchmark_by"):
        workspace.analysis("value", benchmark_by="colour")
    with pytest.raises(ValidationError, match="as_of"):
        workspace.analysis("value", as_of="2024-02-30")


def test_nothing_after_as_of_changes_the_rows(tmp_path: Path) -> None:
    base, later = al.open(build(tmp_path / "base")), al.open(build(tmp_path / "later", future=True))
    try:
        assert _value(later) == _value(base)
        # the later data is there: p_slow realizes value on 07-05 (65 days after 05-01)
        p_slow = _value(later, as_of="2024-07-10", account="p_slow")[0]
        assert (p_slow["value_reached_on"], p_slow["projection_basis"]) == ("2024-07-05", "reached")
    finally:
        base.close()
        later.close()


def test_cli_rest_and_python_give_the_same_rows(tmp_path: Path) -> None:
    from accountlens.api.app import create_app
    from accountlens.cli.main import app as cli
    from accountlens.serve.live import LiveWorkspace

    root = build(tmp_path)
    ws = al.open(root)
    python_rows = _value(ws, industry="energy")
    ws.close()
    runner = CliRunner()
    out = runner.invoke(cli, ["value", "--dir", str(root), "--as-of", AS_OF, "--industry",
                              "energy", "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == python_rows
    bad = runner.invoke(cli, ["value", "--dir", str(root), "--benchmark-by", "colour"])
    assert bad.exit_code == 1 and "--benchmark-by" in bad.output
    live = LiveWorkspace(workspace=al.open(root), log=None, loader=None)
    try:
        client = TestClient(create_app([live]))
        body = client.get("/api/v1/analyses/value",
                          params={"as_of": AS_OF, "industry": "energy"}).json()
        assert body["rows"] == python_rows
        assert client.get("/api/v1/analyses/value", params={"benchmark_by": "x"}).status_code == 422
    finally:
        live.workspace.close()
