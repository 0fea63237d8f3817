"""Metrics measured from acquisition warn when an account was acquired before the first tracked
event: its activation window and time-to-value started before anything could be seen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accountlens.cli.main import app as cli
from accountlens.workspace import Workspace

AS_OF = "2024-03-31"
USERS = """user_id,email,name
ann,ann@early.com,Ann
bob,bob@early.com,Bob
cat,cat@late.com,Cat
dan,dan@late.com,Dan
"""
EVENTS = [  # the first tracked event of the workspace is ann's, on 2024-01-03
    ("e1", "ann", "Report Created", "2024-01-03T09:00:00Z"),
    ("e2", "bob", "Report Shared", "2024-01-05T10:00:00Z"),
    ("e3", "cat", "Report Created", "2024-02-02T09:00:00Z"),
    ("e4", "dan", "Workflow Approved", "2024-02-03T12:00:00Z"),
    ("e5", "ann", "Dashboard Viewed", "2024-03-20T09:00:00Z"),
]
NOTE = ("1 of 2 accounts were acquired before the first tracked event (2024-01-03); their "
        "activation, time-to-value and adoption velocity are not measured from acquisition")
MEASURED_FROM_ACQUISITION = ("activation", "time_to_value", "adoption_velocity")


def build(root: Path, early_contract: str) -> Workspace:
    """`early` (contract from `early_contract`) and `late` (contract from 2024-02-01, after
    tracking began), two users each with value events, as CSV and JSONL imports."""
    ws = Workspace.init(root, name="acquisition")
    files = {
        "accounts": "account_id,name,domain,industry\nearly,Early,early.com,retail\n"
                    "late,Late,late.com,retail\n",
        "users": USERS,
        "memberships": "user_id,account_id,role,valid_from\n"
                       f"ann,early,editor,{early_contract}\nbob,early,approver,{early_contract}\n"
                       "cat,late,editor,2024-02-01\ndan,late,approver,2024-02-01\n",
        "subscriptions": "subscription_id,account_id,plan,seats,arr,start,end\n"
                         f"s1,early,team,5,1000,{early_contract},2025-01-01\n"
                         "s2,late,team,5,1000,2024-02-01,2025-02-01\n",
    }
    for kind in ("accounts", "users", "memberships", "subscriptions"):
        path = root.parent / f"{root.name}-{kind}.csv"
        path.write_text(files[kind])
        ws.import_entities(kind, path)
    events = root.parent / f"{root.name}-events.jsonl"
    events.write_text("".join(json.dumps({"type": "track", "messageId": mid, "userId": user,
                                          "event": name, "timestamp": ts}) + "\n"
                              for mid, user, name, ts in EVENTS))
    ws.import_events(events)
    return ws


@pytest.fixture(scope="module")
def early(tmp_path_factory) -> Workspace:
    ws = build(tmp_path_factory.mktemp("acq") / "ws", early_contract="2024-01-01")
    yield ws
    ws.close()


@pytest.mark.parametrize("name", MEASURED_FROM_ACQUISITION)
@pytest.mark.parametrize("level", ["account", "all", "industry"])
def test_note_names_the_count_and_the_first_tracked_day(early, name, level) -> None:
    result = early.metric_result(name, level=level, as_of=AS_OF)
    assert result.notes == [NOTE]
    assert result.to_dict()["notes"] == [NOTE] and result.to_frame().attrs["notes"] == [NOTE]


def test_values_are_still_computed_from_the_contract_start(early) -> None:
    # early: acquired 2024-01-01 00:00 (contract); its 2nd value user (bob) on 2024-01-05
    # 10:00 → 4 days 10 h = 4.41667 days. late: acquired 2024-02-01 (contract, before cat's
    # first event on 02-02); dan's value event 2024-02-03 12:00 → 2.5 days.
    ttv = early.metric("time_to_value", level="account", as_of=AS_OF)
    assert dict(zip(ttv.account_id, ttv.time_to_value_days.round(5))) == {
        "early": round(4 + 10 / 24, 5), "late": 2.5}
    activation = early.metric("activation", level="all", as_of=AS_OF)
    assert activation.activated_accounts.tolist() == [2] and activation.accounts.tolist() == [2]


def test_no_note_at_user_level_or_for_other_metrics(early) -> None:
    for name in ("activation", "time_to_value"):  # a user's acquisition is their first event
        assert early.metric_result(name, level="user", as_of=AS_OF).notes == []
    assert early.metric_result("mau", level="account", as_of=AS_OF).notes == []


def test_metrics_table_shows_a_shared_note_once(early) -> None:
    table = early.metrics_table_result(["mau", "activation", "time_to_value"], level="account",
                                       as_of=AS_OF)
    assert table.notes == [NOTE]
    assert early.metrics_table_result(["mau", "dau"], level="account", as_of=AS_OF).notes == []


def test_note_counts_only_the_requested_accounts_as_of_the_day(early) -> None:
    assert early.metric_result("activation", level="account", as_of=AS_OF,
                               account="late").notes == []
    assert early.metric_result("activation", level="account", as_of=AS_OF,
                               account="early").notes == [NOTE.replace("1 of 2", "1 of 1")]
    # on 2024-01-04 only `early` is known (late's contract starts in February)
    assert early.metric_result("time_to_value", level="account", as_of="2024-01-04").notes == [
        NOTE.replace("1 of 2", "1 of 1")]
    # before any event there is no first tracked event to compare with
    assert early.metric_result("time_to_value", level="account", as_of="2024-01-02").notes == []


def test_cli_prints_the_note(tmp_path) -> None:
    build(tmp_path / "ws", early_contract="2024-01-01").close()  # the CLI opens it itself
    out = CliRunner().invoke(cli, ["metrics", "activation", "--dir", str(tmp_path / "ws"),
                                   "--as-of", AS_OF, "--level", "all"])
    assert out.exit_code == 0, out.output
    assert f"note: {NOTE}" in out.stdout


def test_no_note_when_no_account_predates_tracking(tmp_path) -> None:
    # early's contract starts on the first tracked day itself: not before it
    with build(tmp_path / "ws", early_contract="2024-01-03") as ws:
        for name in MEASURED_FROM_ACQUISITION:
            assert ws.metric_result(name, level="account", as_of=AS_OF).notes == []
        assert ws.metrics_table_result(["activation", "time_to_value"], level="all",
                                       as_of=AS_OF).notes == []
