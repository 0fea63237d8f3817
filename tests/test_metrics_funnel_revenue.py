"""Funnel, referrals, retention cohorts, revenue, drill-downs and analysis models: hand-computed."""

from __future__ import annotations

import pytest

from accountlens.config import AnalysisSection, MetricsSection
from accountlens.metrics.registry import MetricError
from tests.test_metrics_fixture import AS_OF, build_fixture, metrics_ws, records, track  # noqa: F401

INVITES = [
    track("i1", "ann", "User Invited", "2024-03-30T12:00:00Z", invitee_email="zed@acme.com"),
    track("i2", "ann", "User Invited", "2024-03-31T12:00:00Z", invitee_email="Cat@freelance.org"),
    track("i3", "bob", "User Invited", "2024-03-29T12:00:00Z", invitee_email="new@other.com"),
]
REVENUE_SUBSCRIPTIONS = """subscription_id,account_id,product,plan,seats,arr,start,end,status,entitlements
acme-1,acme,core,pro,10,10000,2023-01-01,2023-12-31,ended,
acme-2,acme,core,enterprise,10,12000,2024-01-01,,active,
globex-1,globex,core,pro,5,5000,2023-02-01,2024-01-31,ended,
botco-1,botco,core,starter,2,1000,2023-03-01,,active,
botco-2,botco,addon,starter,,500,2023-03-01,2023-12-31,ended,
"""
OUTCOMES = """account_id,kind,date,arr_delta,source
acme,expansion,2024-01-01,2000,crm
globex,churn,2024-01-31,-5000,crm
botco,contraction,2023-12-31,-500,billing
acme,renewal,2022-12-31,0,crm
"""


@pytest.fixture(scope="module")
def invited_ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("invited")
    ws = build_fixture(root, subscriptions=REVENUE_SUBSCRIPTIONS, extra_events=INVITES)
    (root / "outcomes.csv").write_text(OUTCOMES)
    ws.import_entities("outcomes", root / "outcomes.csv")
    yield ws
    ws.close()


def stages(frame) -> dict:
    return {r.stage: (r.reached, None if r.conversion != r.conversion else r.conversion)
            for r in frame.itertuples()}


def test_default_user_funnel(metrics_ws) -> None:
    frame = metrics_ws.metric("funnel", level="user", as_of=AS_OF)
    assert list(frame.stage) == ["acquisition", "activation", "retention", "referral",
                                 "referral:external", "referral:internal", "revenue"]
    got = stages(frame)
    assert got["acquisition"] == (5, None)
    assert got["activation"] == (4, 0.8)  # dan never had a value event
    # ann 29 1/24 days, bob 8, cat 2, eve 0 (value event is her first) → median 5
    assert frame.set_index("stage").loc["activation", "median_days_from_previous"] == 5.0
    assert got["retention"] == (0, 0.0)  # nobody active ≥ 7 days after activating


def test_referral_funnel_with_internal_and_external_split(invited_ws) -> None:
    invited_ws.config.metrics = MetricsSection(funnel_stages=["acquisition", "referral", "revenue"])
    try:
        users = invited_ws.metric("funnel", level="user", as_of=AS_OF).set_index("stage")
        accounts = invited_ws.metric("funnel", level="account", as_of=AS_OF).set_index("stage")
        roles = invited_ws.metric("funnel", level="role", as_of=AS_OF)
    finally:
        invited_ws.config.metrics = MetricsSection()
    assert users.loc["referral", "reached"] == 2 and users.loc["referral", "conversion"] == 0.4
    # ann: 03-01 09:00 → 03-30 12:00 (29.125 days); bob: 03-20 09:00 → 03-29 12:00 (9.125)
    assert users.loc["referral", "median_days_from_previous"] == pytest.approx(19.125)
    assert users.loc["referral:internal", "reached"] == 1  # ann (same domain; existing member)
    assert users.loc["referral:external", "reached"] == 1  # bob
    assert accounts.loc["acquisition", "reached"] == 4
    assert accounts.loc["referral", "reached"] == 1  # acme
    # acme's paid subscription started before its referral: the ordered funnel stops there.
    assert accounts.loc["revenue", "reached"] == 0
    approver = roles[(roles.role == "approver") & (roles.stage == "referral")]
    assert int(approver.reached.iloc[0]) == 1


def test_referrals_metric(invited_ws) -> None:
    rows = records(invited_ws.metric("referrals", level="user", as_of=AS_OF), "user")
    assert (rows["ann"]["internal"], rows["ann"]["external"]) == (2, 0)
    assert (rows["bob"]["internal"], rows["bob"]["external"]) == (0, 1)
    by_account = records(invited_ws.metric("referrals", level="account", as_of=AS_OF), "account")
    assert by_account["acme"]["invites"] == 3 and by_account["globex"]["invites"] == 0


def test_external_invitee_joining_a_new_account_is_a_referred_acquisition(tmp_path) -> None:
    ws = build_fixture(tmp_path, extra_events=INVITES)
    try:
        (tmp_path / "new.csv").write_text(
            "user_id,email,name\nnew,new@other.com,New\n")
        ws.import_entities("users", tmp_path / "new.csv")
        (tmp_path / "acc.csv").write_text("account_id\notherco\nthirdco\n")
        ws.import_entities("accounts", tmp_path / "acc.csv")  # memberships name known accounts
        (tmp_path / "m.csv").write_text(
            "user_id,account_id,unit_id,role,valid_from,valid_to\nnew,otherco,,admin,2024-03-30,\n")
        ws.import_entities("memberships", tmp_path / "m.csv")
        rows = records(ws.metric("referrals", level="user", as_of=AS_OF), "user")
        # The same invitee later joins a second account too: one invite, two referred accounts.
        (tmp_path / "m2.csv").write_text(
            "user_id,account_id,unit_id,role,valid_from,valid_to\nnew,thirdco,,admin,2024-03-31,\n")
        ws.import_entities("memberships", tmp_path / "m2.csv")
        twice = records(ws.metric("referrals", level="user", as_of=AS_OF), "user")
    finally:
        ws.close()
    assert rows["bob"]["referred_accounts"] == 1
    assert (twice["bob"]["invites"], twice["bob"]["external"]) == (1, 1)
    assert twice["bob"]["referred_accounts"] == 2


def test_retention_cohorts(metrics_ws) -> None:
    weekly = metrics_ws.metric("retention", level="user", as_of=AS_OF)
    cells = {(str(r.cohort)[:10], r.period): (r.cohort_size, r.retained) for r in weekly.itertuples()}
    assert cells[("2024-02-12", 0)] == (1, 1)  # dan
    assert cells[("2024-02-12", 6)] == (1, 1)  # dan's page view on 03-31
    assert ("2024-02-12", 1) not in cells
    assert cells[("2024-02-26", 4)] == (1, 1)  # ann: acquired 03-01, back on 03-30/31
    assert cells[("2024-03-25", 0)] == (2, 2)  # cat, eve
    monthly = metrics_ws.metric("retention", level="user", as_of=AS_OF, period="month")
    cells = {(str(r.cohort)[:10], r.period): (r.cohort_size, r.retained) for r in monthly.itertuples()}
    assert cells == {("2024-02-01", 0): (1, 1), ("2024-02-01", 1): (1, 1), ("2024-03-01", 0): (4, 4)}
    accounts = metrics_ws.metric("retention", level="account", as_of=AS_OF, period="month")
    cells = {(str(r.cohort)[:10], r.period): (r.cohort_size, r.retained) for r in accounts.itertuples()}
    # globex acquired 02-01 (subscription) with no February event but dan's 02-15 event
    assert cells[("2024-02-01", 0)] == (1, 1)
    assert cells[("2024-03-01", 0)] == (3, 3)  # acme, botco (automation counts), noseat
    with pytest.raises(MetricError, match="period"):
        metrics_ws.metric("retention", level="user", as_of=AS_OF, period="year")


def test_arr_nrr_grr_logo_retention(invited_ws) -> None:
    def one(name: str, column: str):
        return records(invited_ws.metric(name, level="all", as_of=AS_OF), "scope")["all"][column]

    assert one("arr", "arr") == 13000.0
    assert one("nrr", "nrr") == pytest.approx(13000 / 16500)
    assert one("grr", "grr") == pytest.approx(11000 / 16500)
    assert one("logo_retention", "logo_retention") == pytest.approx(2 / 3)
    per = records(invited_ws.metric("nrr", level="account", as_of=AS_OF), "account")
    assert per["acme"]["nrr"] == 1.2 and per["globex"]["nrr"] == 0.0
    moves = invited_ws.metric("arr_movements", level="all", as_of=AS_OF)
    assert {r.kind: r.arr_delta for r in moves.itertuples()} == {
        "churn": -5000.0, "contraction": -500.0, "expansion": 2000.0}  # 2022 renewal is outside


def test_linked_drill_down(metrics_ws) -> None:
    users = metrics_ws.metric("account_users", level="account", as_of=AS_OF, account="acme")
    got = {r.user_id: (r.active_days, r.events, r.value_events, r.top_event, r.usage_type)
           for r in users.itertuples()}
    assert got == {"ann": (3, 3, 1, "Dashboard Viewed", "occasional"),
                   "bob": (2, 2, 1, "Dashboard Viewed", "occasional"),
                   "cat": (1, 1, 1, "Report Shared", "occasional")}
    accounts = metrics_ws.metric("user_accounts", level="user", as_of=AS_OF, user="cat")
    assert list(accounts.account_id) == ["acme", "globex"]


def test_analysis_models_switch_without_reingestion(metrics_ws) -> None:
    try:
        metrics_ws.config.analysis = AnalysisSection(model="user")
        with pytest.raises(MetricError, match="analysis model"):
            metrics_ws.metric("mau", level="account", as_of=AS_OF)
        assert metrics_ws.metric("depth", as_of=AS_OF).columns[0] == "user_id"
        with pytest.raises(MetricError, match="not offered"):
            metrics_ws.metric("seat_utilization", as_of=AS_OF)
        metrics_ws.config.analysis = AnalysisSection(model="account")
        assert metrics_ws.metric("active_accounts", as_of=AS_OF).columns[0] == "account_id"
        with pytest.raises(MetricError):
            metrics_ws.metric("depth", level="user", as_of=AS_OF)
        metrics_ws.config.analysis = AnalysisSection(model="loose")
        assert not metrics_ws.metric("depth", level="user", as_of=AS_OF).empty
        with pytest.raises(MetricError, match="not offered"):
            metrics_ws.metric("account_users", as_of=AS_OF)
        with pytest.raises(MetricError):
            metrics_ws.metric("mau", level="role", as_of=AS_OF)
        metrics_ws.config.analysis = AnalysisSection(model="linked")
        assert not metrics_ws.metric("account_users", as_of=AS_OF).empty
    finally:
        metrics_ws.config.analysis = AnalysisSection()


def test_account_funnel_any_event_stage_per_account_day(tmp_path) -> None:
    """Retention (any active event ≥ 7 days after the previous stage) reads `account_days`;
    with a user filter (that table has no users) and read-only (inline), the same numbers.
    acme acquired 03-01 (subscription), back 03-10 09:00: 9.375 days; globex 02-01 → dan's
    02-15 09:00: 14.375; botco 03-01 → its automation 03-15 03:00: 14.125; noseat acquired by
    eve's 03-25 event, nothing ≥ 04-01."""
    from accountlens.workspace import Workspace

    ws = build_fixture(tmp_path)
    root = ws.root
    ws.close()
    stages_ = MetricsSection(funnel_stages=["acquisition", "retention"])
    for read_only in (False, True):
        with Workspace.open(root, read_only=read_only) as opened:
            opened.config.metrics = stages_
            frame = opened.metric("funnel", level="account", as_of=AS_OF)
            assert stages(frame) == {"acquisition": (4, None), "retention": (3, 0.75)}
            assert frame.set_index("stage").loc["retention", "median_days_from_previous"] == 14.125
            dan = opened.metric("funnel", level="account", as_of=AS_OF, user=["dan"])
            assert stages(dan) == {"acquisition": (4, None), "retention": (1, 0.25)}
            assert dan.set_index("stage").loc["retention", "median_days_from_previous"] == 14.375
            by_industry = opened.metric("funnel", level="industry", as_of=AS_OF)
            retained = by_industry[by_industry.stage == "retention"].set_index("industry")
            assert retained.reached.to_dict() == {"energy": 1, "retail": 2}
            assert retained.median_days_from_previous.to_dict() == {"energy": 14.375,
                                                                    "retail": 11.75}
            # account retention cohorts of dan's activity alone: globex, February and March
            cohorts = opened.metric("retention", level="account", as_of=AS_OF, period="month",
                                    user=["dan"])
            assert {(str(r.cohort)[:10], r.period): (r.cohort_size, r.retained)
                    for r in cohorts.itertuples()} == {("2024-02-01", 0): (1, 1),
                                                      ("2024-02-01", 1): (1, 1)}
