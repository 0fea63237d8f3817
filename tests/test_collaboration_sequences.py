"""Collaboration and influence sequences on hand-computed fixtures."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from accountlens.workspace import Workspace
from tests import fixtures_b2b


def test_collaboration_summary_and_graph(tmp_path) -> None:
    with fixtures_b2b.build(tmp_path) as ws:
        summary = ws.analysis("collaboration")
        assert list(summary.columns[:2]) == ["account_id", "account_name"]
        row = summary.set_index("account_id").loc["acme"]
        # handoffs: ann→bob (w1, w2), bob→ann (w2), cat→bob (w3), dan→ann, ann→dan (w4)
        assert (row.handoffs, row.collaborators, row.shared_objects) == (6, 4, 4)
        assert row.cross_team_share == 0.5  # EMEA↔(no team): 3 of 6
        assert row.cross_department_share == pytest.approx(0.6667, abs=1e-4)  # Sales↔Finance: 4
        assert row.median_latency_hours == 3.5
        # participation: ann 5, bob 4, dan 2, cat 1 of 12
        assert row.most_connected_user == "ann"
        assert row.top_user_share == pytest.approx(5 / 12, abs=1e-4)
        assert row.participation_hhi == pytest.approx(46 / 144, abs=1e-4)
        assert not row.champion_dependent
        departments = ws.analysis("collaboration", level="department")
        assert list(departments.columns[:4]) == ["account_id", "account_name", "unit_id", "unit_name"]
        assert dict(zip(zip(departments.account_id, departments.unit_name), departments.handoffs)) == {
            ("acme", "Finance"): 3, ("acme", "Sales"): 3}
        graph = ws.analysis("collaboration", view="graph", nodes="role")
        edges = {(r.source, r.target): r.weight for r in graph.itertuples()}
        assert edges == {("editor", "approver"): 4, ("approver", "editor"): 1, ("editor", "editor"): 1}


def day(n: int, hour: int = 9) -> str:
    return (dt.datetime(2024, 1, 1, hour, tzinfo=dt.UTC) + dt.timedelta(days=n)).isoformat()


@pytest.fixture
def outcomes_ws(tmp_path):
    """Six accounts; 'trainer completes training, executive approves within 30 days' in the
    three that renew (and the sixth renews without it)."""
    ws = Workspace.init(tmp_path / "ws")
    accounts = ["a1", "a2", "a3", "a4", "a5", "a6"]
    members = ["user_id,account_id,unit_id,role,valid_from,valid_to"]
    for a in accounts:
        members += [f"t_{a},{a},,trainer,2023-01-01,", f"e_{a},{a},,executive,2023-01-01,",
                    f"v_{a},{a},,viewer,2023-01-01,"]
    (tmp_path / "a.csv").write_text("account_id\n" + "".join(f"{a}\n" for a in accounts))
    ws.import_entities("accounts", tmp_path / "a.csv")  # rows of other kinds must name known accounts
    (tmp_path / "m.csv").write_text("\n".join(members) + "\n")
    ws.import_entities("memberships", tmp_path / "m.csv")
    kinds = {"a1": "renewal", "a2": "renewal", "a3": "renewal", "a4": "churn", "a5": "churn",
             "a6": "renewal"}
    outcome_day = OUTCOME_DAY.isoformat()
    (tmp_path / "o.csv").write_text("account_id,kind,date\n" + "".join(
        f"{a},{k},{outcome_day}\n" for a, k in kinds.items()))
    ws.import_entities("outcomes", tmp_path / "o.csv")
    events = []

    def act(user: str, name: str, n: int) -> None:
        events.append({"type": "track", "messageId": f"{user}-{name}-{n}", "userId": user,
                       "event": name, "timestamp": day(n)})

    for a in ("a1", "a2", "a3"):
        act(f"t_{a}", "Training Completed", 10)
        act(f"e_{a}", "Plan Approved", 20)
    act("t_a4", "Training Completed", 10)
    act("e_a4", "Plan Approved", 60)  # too late: outside the 30-day span
    act("e_a5", "Plan Approved", 5)  # wrong order
    act("t_a5", "Training Completed", 10)
    act("v_a1", "Dashboard Viewed", 1)
    act("v_a4", "Dashboard Viewed", 1)
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(tmp_path / "e.jsonl")
    yield ws
    ws.close()


# The outcomes are recorded after the last event: asked as of their day, they are known.
OUTCOME_DAY = dt.date(2024, 1, 1) + dt.timedelta(days=100)


def test_sequences_support_confidence_lift(outcomes_ws) -> None:
    ws = outcomes_ws
    # six cases are too few for significance: list every pattern, not only productive ones
    got = ws.analysis("sequences", outcome="renewal", min_support=1, as_of=OUTCOME_DAY,
                       all_patterns=True)
    rows = got.set_index("pattern")
    forward = rows.loc["trainer: Training Completed → executive: Plan Approved"]
    assert (forward.outcome_cases, forward.pattern_cases, forward.cases) == (3, 3, 6)
    assert (forward.support, forward.confidence, forward.lift) == (0.5, 1.0, 1.5)
    # P(X >= 3), X ~ Hypergeometric(6 cases, 4 renewals, 3 with the pattern) = C(4,3)/C(6,3)
    assert forward.p_value == pytest.approx(0.2)
    # its best generalization, "trainer: Training Completed" alone, is in 5 cases, 3 renewals:
    # P(X >= 3), X ~ Hypergeometric(5, 3, 3) = 1/C(5,3)
    assert forward.improvement == pytest.approx(0.4)
    assert forward.improvement_p == pytest.approx(0.1)
    productive = ws.analysis("sequences", outcome="renewal", min_support=1, as_of=OUTCOME_DAY)
    assert productive.empty  # not significant on six cases
    triple = rows.loc["viewer: Dashboard Viewed → trainer: Training Completed → executive: Plan Approved"]
    assert (triple.outcome_cases, triple.pattern_cases, triple.steps) == (1, 1, 3)
    assert "executive: Plan Approved → trainer: Training Completed" not in rows.index
    churn = ws.analysis("sequences", outcome="churn", min_support=1, as_of=OUTCOME_DAY,
                         all_patterns=True)
    reverse = churn.set_index("pattern").loc["executive: Plan Approved → trainer: Training Completed"]
    assert (reverse.outcome_cases, reverse.confidence, reverse.lift) == (1, 1.0, 3.0)
    assert list(got.p_value) == sorted(got.p_value)  # ranked by significance


def test_junior_activity_unlocks_senior(outcomes_ws) -> None:
    ws = outcomes_ws
    got = ws.analysis("sequences", view="unlocks")
    rows = {(r.junior, r.senior): r for r in got.itertuples()}
    te = rows[("trainer", "executive")]
    assert (te.accounts_with_junior, te.senior_first_active_after, te.share) == (5, 3, 0.6)
    assert te.median_lag_days == 10.0
    ve = rows[("viewer", "executive")]
    assert (ve.accounts_with_junior, ve.senior_first_active_after, ve.share, ve.median_lag_days) == (2, 1, 0.5, 19.0)
    assert rows[("viewer", "trainer")].share == 1.0
