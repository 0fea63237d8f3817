"""Onboarding paths, time-to-value by role/department and champion risk on the shared fixture."""

from __future__ import annotations

import datetime as dt

import pytest

from tests import fixtures_b2b


@pytest.fixture
def ws(tmp_path):
    workspace = fixtures_b2b.build(tmp_path)
    yield workspace
    workspace.close()


def test_onboarding_paths_per_role(ws) -> None:
    paths = ws.analysis("paths")
    got = {(r.role, r.path): r for r in paths.itertuples()}
    bob = got[("approver", "Workflow Approved → Workflow Reviewed → Workflow Approved")]
    assert (bob.users, bob.activated_users, bob.activation_rate, bob.median_ttv_days) == (1, 1, 1.0, 0.0)
    # ann's repeated events collapse; her first value event (Report Created) comes after 17 days
    ann = got[("editor", "Workflow Created → Workflow Edited → Workflow Created")]
    assert (ann.users, ann.activated_users, ann.median_ttv_days) == (1, 0, 17.0)
    dan = got[("editor", "Workflow Created → Workflow Approved")]  # role at first event: editor
    assert (dan.activated_users, dan.median_ttv_days) == (1, 2.13)
    assert len(paths) == 4
    only_editors = ws.analysis("paths", role="editor", steps=1)
    assert list(only_editors.path) == ["Workflow Created"] and only_editors.users[0] == 3


def test_time_to_value_by_role_and_department(ws) -> None:
    by_role = ws.analysis("paths", view="ttv").set_index("role")
    editor = by_role.loc["editor"]
    assert (editor.users, editor.reached_value) == (3, 2)
    assert editor.reached_share == pytest.approx(0.6667, abs=1e-4)
    assert editor.activation_rate == pytest.approx(0.3333, abs=1e-4)
    assert editor.median_ttv_days == 9.56  # median of 17 and 2.125 days
    by_dept = ws.analysis("paths", view="ttv", level="department")
    assert dict(zip(by_dept.department, by_dept.users)) == {"Sales": 3, "Finance": 1}


def test_champion_active_then_left_then_quiet(ws, tmp_path) -> None:
    champions = ws.analysis("champions")
    acme = champions.set_index("account_id").loc["acme"]
    assert (acme.champion, acme.events, acme.status, acme.risk) == ("ann", 6, "active", "low")
    assert acme.share_of_activity == pytest.approx(6 / 13, abs=1e-4)
    assert acme.days_since_seen == 2
    quiet = ws.analysis("champions", as_of=dt.date(2024, 4, 10))
    assert quiet.iloc[0].status == "quiet" and quiet.iloc[0].risk == "high"
    (tmp_path / "leave.csv").write_text(
        "user_id,account_id,unit_id,role,valid_from,valid_to\n"
        "ann,acme,acme-emea,editor,2024-01-01,2024-03-19\n")
    ws.import_entities("memberships", tmp_path / "leave.csv")
    left = ws.analysis("champions").iloc[0]
    assert (left.champion, left.status, left.left_on, left.risk) == ("ann", "left", "2024-03-19", "high")
