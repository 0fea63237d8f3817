"""The analyses must rank planted effects first on a generated workspace (tests/planted.py)."""

from __future__ import annotations

import pytest

from tests import planted


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    workspace = planted.build(tmp_path_factory.mktemp("planted"), accounts=80)
    yield workspace
    workspace.close()


def test_slow_finance_approvals_rank_first(ws) -> None:
    by_dept = ws.analysis("handoffs", view="bottlenecks", level="department", lookback_days=400)
    top = by_dept.iloc[0]
    assert top.to_actor == "Finance"
    assert top.latency_ratio > 3
    by_user = ws.analysis("handoffs", view="bottlenecks", level="user", lookback_days=400, limit=5)
    assert by_user.iloc[0].to_actor.endswith("-approver-0")  # the Finance approvers


# tests/planted.py records every outcome after the last event: asked as of that day.
OUTCOMES_DAY = "2024-07-19"


def test_planted_sequence_is_the_most_significant_precursor_of_renewal(ws) -> None:
    patterns = ws.analysis("sequences", outcome="renewal", as_of=OUTCOMES_DAY)
    assert patterns.iloc[0].pattern == "trainer: Training Completed → executive: Plan Approved"
    assert patterns.iloc[0].lift > 1.4 and patterns.iloc[0].q_value < 0.01
    churn = ws.analysis("sequences", outcome="churn", as_of=OUTCOMES_DAY)
    assert "trainer: Training Completed → executive: Plan Approved" not in set(churn.pattern.head(3))
