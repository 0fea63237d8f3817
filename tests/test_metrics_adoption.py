"""Adoption, activation and contract metrics on the small fixture, against hand-computed answers.

Windows on as_of 2024-03-31: DAU = 03-31, WAU = 03-25…03-31, MAU = 03-02…03-31 (ann's 03-01
event is outside). See tests/test_metrics_fixture.py for who is where.
"""

from __future__ import annotations

import json

import pytest

from tests.test_metrics_fixture import AS_OF, build_fixture, metrics_ws, records, track  # noqa: F401

ACCOUNTS = ("acme", "botco", "globex", "noseat")


def values(ws, name: str, level: str, column: str, **kwargs) -> dict:
    frame = ws.metric(name, level=level, as_of=kwargs.pop("as_of", AS_OF), **kwargs)
    return {k: v[column] for k, v in records(frame, level).items()}


def test_active_users_per_account(metrics_ws) -> None:
    assert values(metrics_ws, "dau", "account", "dau") == {"acme": 2, "botco": 0, "globex": 1, "noseat": 0}
    assert values(metrics_ws, "wau", "account", "wau") == {"acme": 3, "botco": 0, "globex": 2, "noseat": 1}
    # cat counts in acme and in globex (user in two accounts); botco is automation only.
    assert values(metrics_ws, "mau", "account", "mau") == {"acme": 3, "botco": 0, "globex": 2, "noseat": 1}
    assert values(metrics_ws, "mau", "all", "mau") == {"all": 5}


def test_role_change_mid_window_counts_under_both_roles(metrics_ws) -> None:
    mau = values(metrics_ws, "mau", "role", "mau")
    assert mau == {"(none)": 0, "admin": 1, "analyst": 1, "approver": 1, "editor": 2, "viewer": 1}
    assert values(metrics_ws, "wau", "role", "wau")["viewer"] == 0


def test_unit_levels_roll_up_the_hierarchy(metrics_ws) -> None:
    # bob, dan, eve and cat-in-globex act outside any team.
    assert values(metrics_ws, "mau", "team", "mau") == {"(none)": 4, "acme-emea": 2}
    # acme-emea (ann, cat) rolls up into acme-sales with bob; eve has no unit.
    assert values(metrics_ws, "mau", "department", "mau") == {
        "(none)": 1, "acme-sales": 3, "globex-ops": 2}


def test_active_accounts_count_automation(metrics_ws) -> None:
    rows = records(metrics_ws.metric("active_accounts", level="account", as_of=AS_OF), "account")
    assert rows["botco"] == {"active_1d": 1, "active_7d": 1, "active_30d": 1}
    assert rows["noseat"] == {"active_1d": 0, "active_7d": 1, "active_30d": 1}
    total = records(metrics_ws.metric("active_accounts", level="all", as_of=AS_OF), "scope")["all"]
    assert total == {"active_1d": 3, "active_7d": 4, "active_30d": 4}


def test_seat_utilization(metrics_ws) -> None:
    rows = records(metrics_ws.metric("seat_utilization", level="account", as_of=AS_OF), "account")
    assert rows["acme"] == {"mau": 3, "seats": 10, "seat_utilization": 0.3}
    assert rows["globex"]["seat_utilization"] == 0.4
    assert rows["botco"]["seat_utilization"] == 0.0
    assert rows["noseat"] == {"mau": 1, "seats": 0, "seat_utilization": None}  # no seats
    everyone = records(metrics_ws.metric("seat_utilization", level="all", as_of=AS_OF), "scope")
    assert everyone["all"]["seat_utilization"] == pytest.approx(5 / 17)


def test_breadth_depth_stickiness(metrics_ws) -> None:
    # 6 names in the window: Dashboard Viewed, Report Created, Workflow Approved, Report Shared,
    # Home (page), Sync Run (automation).
    breadth = values(metrics_ws, "breadth", "account", "breadth")
    assert breadth == pytest.approx({"acme": 4 / 6, "botco": 1 / 6, "globex": 2 / 6, "noseat": 1 / 6})
    depth = values(metrics_ws, "depth", "account", "depth")
    assert depth == {"acme": 2.0, "botco": None, "globex": 1.0, "noseat": 1.0}
    assert values(metrics_ws, "depth", "user", "depth")["ann"] == 3.0
    stick = records(metrics_ws.metric("stickiness", level="account", as_of=AS_OF), "account")
    assert stick["acme"]["mean_dau"] == pytest.approx(6 / 30)
    assert stick["acme"]["stickiness"] == pytest.approx(6 / 30 / 3)
    assert values(metrics_ws, "stickiness", "user", "stickiness")["ann"] == pytest.approx(3 / 30)


def test_users_per_account(metrics_ws) -> None:
    rows = records(metrics_ws.metric("users_per_account", level="account", as_of=AS_OF), "account")
    assert {k: (v["members"], v["active_users"]) for k, v in rows.items()} == {
        "acme": (3, 3), "botco": (0, 0), "globex": (2, 2), "noseat": (1, 1)}
    everyone = records(metrics_ws.metric("users_per_account", level="all", as_of=AS_OF), "scope")
    assert everyone["all"]["users_per_account"] == 1.5


def test_activation_and_time_to_value(metrics_ws) -> None:
    users = records(metrics_ws.metric("activation", level="user", as_of=AS_OF), "user")
    # ann: value event 29 days after acquisition (> 14); eve: value event is her first event.
    assert {k: v["activated"] for k, v in users.items()} == {
        "ann": False, "bob": True, "cat": True, "dan": False, "eve": True}
    accounts = records(metrics_ws.metric("activation", level="account", as_of=AS_OF), "account")
    # acme: acquired 03-01 (subscription); bob 03-28 and ann 03-30 → 2 value users in 30 days.
    assert accounts["acme"]["activated"] and str(accounts["acme"]["activated_on"]) == "2024-03-30"
    assert {k: v["activated"] for k, v in accounts.items() if k != "acme"} == {
        "botco": False, "globex": False, "noseat": False}
    assert accounts["noseat"]["value_users"] == 1
    by_industry = records(metrics_ws.metric("activation", level="industry", as_of=AS_OF), "industry")
    assert by_industry["retail"]["activation_rate"] == 0.5
    ttv = values(metrics_ws, "time_to_value", "user", "time_to_value_days")
    assert ttv.pop("dan") is None  # no value event yet
    assert ttv == pytest.approx({"ann": 29 + 1 / 24, "bob": 8.0, "cat": 2.0, "eve": 0.0})
    account_ttv = values(metrics_ws, "time_to_value", "account", "time_to_value_days")
    assert account_ttv["acme"] == pytest.approx(29 + 10 / 24)
    assert account_ttv["globex"] is None


def test_adoption_velocity(metrics_ws) -> None:
    # globex acquired 02-01: dan (02-15) is early; cat (03-29) is after the 8 weeks (03-28).
    assert values(metrics_ws, "adoption_velocity", "account", "adoption_velocity") == {
        "acme": 3 / 8, "botco": 0.0, "globex": 1 / 8, "noseat": 1 / 8}


def test_value_contribution(metrics_ws) -> None:
    frame = metrics_ws.metric("value_contribution", level="role", as_of=AS_OF)
    got = {(r.account_id, r.role): r.share for r in frame.itertuples()}
    assert got == pytest.approx({("acme", "analyst"): 1 / 3, ("acme", "approver"): 1 / 3,
                                 ("acme", "editor"): 1 / 3, ("noseat", "editor"): 1.0})


def test_slices_and_filters(metrics_ws) -> None:
    assert values(metrics_ws, "mau", "industry", "mau") == {"energy": 3, "retail": 3}
    assert values(metrics_ws, "mau", "size_band", "mau") == {
        "(none)": 1, "250-999": 3, "50-249": 2, "<50": 0}
    # distinct users per slice: cat (acme and globex) counts once
    assert values(metrics_ws, "mau", "maturity", "mau") == {"(none)": 1, "<3 months": 4}
    assert values(metrics_ws, "mau", "deployment_scale", "mau") == {"<5 users": 5}
    assert values(metrics_ws, "mau", "plan", "mau") == {
        "(none)": 1, "enterprise": 3, "pro": 2, "starter": 0}  # botco's plan from its subscription
    assert values(metrics_ws, "mau", "account", "mau", industry="retail") == {"acme": 3, "botco": 0}
    assert values(metrics_ws, "mau", "role", "mau", account="globex") == {"admin": 1, "analyst": 1}
    assert values(metrics_ws, "depth", "user", "active_events", user="cat") == {"cat": 2}


def test_as_of_before_any_data_is_empty(metrics_ws) -> None:
    for name, level in (("mau", "account"), ("seat_utilization", "account"), ("activation", "user"),
                        ("breadth", "role"), ("contract_alignment", "account"), ("funnel", "user"),
                        ("retention", "account"), ("nrr", "all")):
        frame = metrics_ws.metric(name, level=level, as_of="2023-01-01")
        assert frame.empty, name


def test_contract_alignment(tmp_path) -> None:
    extra = [track(f"api{i}", "ann", "API Called", "2024-03-20T10:00:00Z") for i in range(4)]
    extra.append(track("rep", "dan", "Dashboard Viewed", "2024-03-21T10:00:00Z", product="reports"))
    ws = build_fixture(tmp_path, extra_events=extra)
    try:
        frame = ws.metric("contract_alignment", level="account", as_of=AS_OF)
    finally:
        ws.close()
    got = {(r.account_id, r.entitlement): (r.entitled, r.used, r.alignment) for r in frame.itertuples()}
    assert got == {
        ("acme", "api_calls"): (10.0, 4.0, 0.4),
        ("acme", "modules"): (2.0, 0.0, 0.0),
        ("acme", "seats"): (10.0, 3.0, 0.3),
        ("botco", "seats"): (2.0, 0.0, 0.0),
        ("globex", "modules"): (1.0, 1.0, 1.0),  # dan used the reports product
        ("globex", "seats"): (5.0, 2.0, 0.4),
    }


def test_rollup_is_maintained_at_load_and_after_crm_imports(tmp_path) -> None:
    ws = build_fixture(tmp_path)
    try:
        assert values(ws, "mau", "account", "mau")["noseat"] == 1  # builds the rollup
        more = tmp_path / "more.jsonl"
        more.write_text(json.dumps(track("e2", "fay", "Report Created", "2024-03-30T08:00:00Z",
                                         account="noseat")) + "\n")
        ws.import_events(more)  # the load pipeline refreshes 2024-03-30 only
        assert ws.store.scalar("SELECT count(*) FROM daily_activity WHERE user_id = 'fay'") == 1
        assert values(ws, "mau", "account", "mau")["noseat"] == 2
        moved = tmp_path / "moved.csv"
        moved.write_text("user_id,account_id,unit_id,role,valid_from,valid_to\n"
                         "eve,globex,,editor,2024-01-01,\n")
        ws.import_entities("memberships", moved)  # eve now in two accounts: events re-attributed
        eve_account = ws.store.scalar("SELECT account_id FROM events WHERE message_id = 'e1'")
        mau = values(ws, "mau", "account", "mau")
        assert mau["noseat"] == (2 if eve_account == "noseat" else 1)
        assert ws.store.scalar(
            "SELECT count(*) FROM daily_activity WHERE user_id = 'eve' AND account_id IS NOT DISTINCT FROM ?",
            [eve_account]) == 1
    finally:
        ws.close()


def test_read_only_workspace_queries_events_inline(tmp_path) -> None:
    from accountlens.workspace import Workspace

    ws = build_fixture(tmp_path)
    root = ws.root
    ws.close()
    with Workspace.open(root, read_only=True) as ro:
        assert values(ro, "mau", "account", "mau") == {"acme": 3, "botco": 0, "globex": 2, "noseat": 1}


def test_activation_windows_include_their_last_moment(tmp_path) -> None:
    """"Within N days" includes exactly N days, at user (14) and account (30) level alike."""
    from accountlens.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", name="boundary")

    def value(mid: str, user: str, name: str, ts: str) -> dict:
        return {"type": "track", "messageId": mid, "userId": user, "event": name,
                "timestamp": ts, "context": {"groupId": "a"}}

    events = [value("1", "u", "Dashboard Viewed", "2024-03-01T10:00:00Z"),
              value("2", "u", "Report Created", "2024-03-31T10:00:00Z"),   # account day 30 exactly
              value("3", "v", "Dashboard Viewed", "2024-03-02T10:00:00Z"),
              value("4", "v", "Report Created", "2024-03-16T10:00:00Z")]  # user day 14 exactly
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(tmp_path / "e.jsonl")
    account = ws.metric("activation", level="account", as_of="2024-04-30").iloc[0]
    users = ws.metric("activation", level="user", as_of="2024-04-30").set_index("user_id")
    ws.close()
    assert bool(account.activated) and str(account.activated_on) == "2024-03-31"
    assert bool(users.loc["v", "activated"]) and not bool(users.loc["u", "activated"])
