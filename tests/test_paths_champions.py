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


# ---- champions on the precedence scenario (tests/test_membership_precedence.py) -------------
# As of 2024-06-30 with the default 90-day lookback: the window is [04-02, 07-01); a user who
# left at T within it is ranked on [T − 90 days, T). Quiet: no event since 06-17.
CHAMPION_COLUMNS = ["champion", "status", "left_on", "events", "share_of_activity", "last_seen",
                    "days_since_seen", "admins", "admins_left", "risk", "customer"]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from tests.test_membership_precedence import build_scenario

    workspace = build_scenario(tmp_path_factory.mktemp("champions"))
    yield workspace
    workspace.close()


def champion_rows(ws, **params) -> dict[str, tuple]:
    frame = ws.analysis("champions", **params)
    frame = frame.astype(object).where(frame.notna(), None)
    return {r["account_id"]: tuple(r[c] for c in CHAMPION_COLUMNS)
            for r in frame.to_dict(orient="records")}


def test_champions_from_effective_memberships(scenario) -> None:
    rows = champion_rows(scenario, as_of=dt.date(2024, 6, 30))
    assert rows == {
        # ann's CRM admin membership ended 06-20 while her SDK group membership stays open: she
        # left. Ranked on [03-22, 06-20): ann 5, bob 2 (05-10, 06-10) → 5/7; 07-01 − 06-15 09:00
        # = 15.6 days. No admin is left, one left within the lookback.
        "acme": ("ann", "left", "2024-06-20", 5, 0.7143, "2024-06-15", 15, 0, 1, "high", True),
        # hank left 05-01 (60 days before as_of) and did only 2 things since 04-02, ida 6; on
        # [01-31, 05-01) hank has 8, ida 1 (04-25) → 8/9; 07-01 − 04-20 09:00 = 71.6 days
        "stark": ("hank", "left", "2024-05-01", 8, 0.8889, "2024-04-20", 71, 0, 0, "high", False),
        # cat's end (08-01) is after as_of: not known yet, she is an active admin
        "globex": ("cat", "active", None, 2, 1.0, "2024-06-24", 6, 1, 0, "low", False),
        # dan's event of 06-15 reopened his SDK membership after the CRM end of 06-01
        "initech": ("dan", "active", None, 4, 1.0, "2024-06-25", 5, 0, 0, "low", False),
        # eve's group call of 06-20 reopened hers; her last event (05-20) makes her quiet
        "umbrella": ("eve", "quiet", None, 2, 1.0, "2024-05-20", 41, 0, 0, "high", False),
        # no human activity: present, no champion; high for a customer, low otherwise
        "vandelay": (None, "none", None, None, None, None, None, 0, 0, "high", True),
        "hooli": (None, "none", None, None, None, None, None, 0, 0, "low", False),
        # `nobody` has no date, member or event by as_of: not known, no row
    }
    order = list(scenario.analysis("champions", as_of=dt.date(2024, 6, 30)).account_id)
    assert order == ["umbrella", "stark", "acme", "vandelay", "globex", "initech", "hooli"]


def test_champion_status_is_point_in_time(scenario) -> None:
    # as of 06-19 eve's group call of 06-20 is not known: she left on 06-01 (ranked on
    # [03-03, 06-01): her 2 events)
    eve = champion_rows(scenario, as_of=dt.date(2024, 6, 19), account="umbrella")["umbrella"]
    assert eve[:4] == ("eve", "left", "2024-06-01", 2)
    # as of 06-14 dan's event of 06-15 is not known: he left on 06-01 (05-10 and 05-20 before)
    dan = champion_rows(scenario, as_of=dt.date(2024, 6, 14), account="initech")["initech"]
    assert dan[:4] == ("dan", "left", "2024-06-01", 2)
    # as of 08-10 cat's end of 08-01 is known and within the lookback [05-13, 08-11): she is
    # ranked on [05-03, 08-01) (her 2 events) and is the admin who left
    cat = champion_rows(scenario, as_of=dt.date(2024, 8, 10), account="globex")["globex"]
    assert cat[:4] + cat[7:10] == ("cat", "left", "2024-08-01", 2, 0, 1, "high")


def test_a_departure_before_the_lookback_does_not_rank_the_leaver(scenario) -> None:
    # 30-day lookback [06-01, 07-01): hank left 05-01, before it, so he is ranked on the window
    # itself (nothing); ida's 06-01, 06-10, 06-20 make her the champion
    ida = champion_rows(scenario, as_of=dt.date(2024, 6, 30), account="stark",
                        lookback_days=30)["stark"]
    assert ida[:5] == ("ida", "active", None, 3, 1.0)
