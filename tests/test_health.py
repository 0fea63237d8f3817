"""The health score (analysis/health.py): hand-computed scores, weights, a missing factor's
weight redistributed, segment weights, steps, the biggest lever, grades, parent accounts
aggregated from their children, trend and history; CLI, REST and Python give the same rows."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from accountlens.analysis.health import factor_score, score_accounts, with_groups
from accountlens.config import HealthFactor, HealthSection, HealthSegmentWeights
from accountlens.workspace import Workspace
from tests import small_workspace
from tests.conftest import start_server
from tests.test_features import EVENTS, MEMBERSHIPS, SUBSCRIPTIONS


def _health(**extra) -> HealthSection:
    factors = {
        "usage": HealthFactor(input="seat_utilization", weight=2, points=[(0, 0), (1, 100)]),
        "nps": HealthFactor(input="trait:nps", weight=1, points=[(0, 0), (100, 100)]),
        "champion": HealthFactor(input="champion_present", weight=1, points=[(0, 0), (1, 100)],
                                 steps=True),
    }
    return HealthSection(factors=factors, **extra)


def _features(**columns) -> pd.DataFrame:
    base = {"account_id": ["x", "y", "z"], "plan": ["pro", "enterprise", "pro"],
            "industry": ["retail"] * 3, "region": ["EU"] * 3, "size_band": ["<50"] * 3}
    return pd.DataFrame({**base, **columns})


# --- the scorer on hand-built features --------------------------------------------------------
def test_curves_interpolate_flat_beyond_the_ends_and_steps() -> None:
    curve = HealthFactor(input="v", weight=1, points=[(0.1, 0), (0.7, 100)])
    values = pd.Series([0.0, 0.1, 0.4, 0.7, 2.0, None])
    assert list(factor_score(curve, values).round(6).fillna(-1)) == [0, 0, 50, 100, 100, -1]
    steps = HealthFactor(input="v", weight=1, points=[(0, 10), (5, 50), (10, 90)], steps=True)
    assert list(factor_score(steps, pd.Series([-3.0, 0.0, 4.9, 5.0, 12.0]))) == [10, 10, 10, 50, 90]


def test_weights_contributions_and_a_missing_factor_redistributed() -> None:
    features = _features(seat_utilization=[0.5, 0.9, None], trait_nps=[40.0, None, 70.0],
                         champion_present=[1.0, 0.0, 0.0])
    out = score_accounts(features, _health())
    # x: usage 50 (w 2/4), nps 40 (w 1/4), champion 100 (w 1/4) → 25 + 10 + 25 = 60
    x = out.iloc[0]
    assert x["score"] == pytest.approx(60)
    assert (x["usage_contribution"], x["nps_contribution"], x["champion_contribution"]) == (
        pytest.approx(25), pytest.approx(10), pytest.approx(25))
    assert x["missing"] == [] and x["grade"] == "concerning"
    # y: nps missing → weights 2/3 and 1/3: 90·2/3 + 0·1/3 = 60
    y = out.iloc[1]
    assert y["missing"] == ["nps"]
    assert (y["usage_weight"], y["nps_weight"], y["champion_weight"]) == (
        pytest.approx(2 / 3), 0.0, pytest.approx(1 / 3))
    assert y["score"] == pytest.approx(60)
    # the lever: champion would add 100·1/3 = 33.3 points, usage (90 → 100) 10·2/3
    assert (y["lever"], y["lever_gain"]) == ("champion", pytest.approx(100 / 3))
    # z: usage missing → nps 70·1/2 + champion 0·1/2 = 35: poor (below 40)
    z = out.iloc[2]
    assert (z["score"], z["grade"], z["missing"]) == (pytest.approx(35), "poor", ["usage"])
    contributions = out[[c for c in out.columns if c.endswith("_contribution")]].sum(axis=1)
    assert list(contributions.round(9)) == list(out["score"].round(9))


def test_segment_weights_and_an_account_without_any_input() -> None:
    segments = [HealthSegmentWeights(by="plan", value="enterprise", weights={"usage": 0})]
    features = _features(seat_utilization=[0.5, 0.9, None], trait_nps=[40.0, 80.0, None],
                         champion_present=[1.0, 0.0, None])
    out = score_accounts(features, _health(segments=segments))
    # y is enterprise: usage weighs nothing → nps 80·1/2 + champion 0·1/2 = 40, and a factor
    # weighted 0 by its segment is not reported missing
    assert out.iloc[1]["score"] == pytest.approx(40) and out.iloc[1]["usage_weight"] == 0
    assert out.iloc[0]["score"] == pytest.approx(60)  # x (pro) keeps the configured weights
    z = out.iloc[2]  # no input at all: no score, grade unknown, every factor missing
    assert pd.isna(z["score"]) and z["grade"] == "unknown"
    assert z["missing"] == ["usage", "nps", "champion"] and pd.isna(z["lever"])


def test_grades_at_their_boundaries() -> None:
    features = _features(seat_utilization=[0.7, 0.6999, 0.4], trait_nps=[None] * 3,
                         champion_present=[None] * 3)
    grades = list(score_accounts(features, _health()).grade)
    assert grades == ["healthy", "concerning", "concerning"]  # 70 healthy, 40 not poor


def test_parents_aggregate_their_descendants_weighted_by_arr() -> None:
    table = pd.DataFrame({
        "account_id": ["hq", "eu", "us", "eu-de"],
        "parent_account_id": [None, "hq", "hq", "eu"],
        "arr": [0.0, 10_000.0, 30_000.0, 10_000.0],
        "score": [None, 80.0, 40.0, 20.0],
    })
    out = with_groups(table, HealthSection()).set_index("account_id")
    assert out.loc["hq", "children"] == ["eu", "us"]
    # hq: eu, us and eu-de (a grandchild): (80·10k + 40·30k + 20·10k) / 50k = 44
    assert out.loc["hq", "group_score"] == pytest.approx(44)
    assert out.loc["hq", "group_grade"] == "concerning"
    # eu: itself and eu-de: (80·10k + 20·10k) / 20k = 50
    assert out.loc["eu", "group_score"] == pytest.approx(50)
    assert pd.isna(out.loc["us", "group_score"]) and out.loc["us", "children"] == []


def test_a_cycle_in_the_hierarchy_ends() -> None:
    table = pd.DataFrame({"account_id": ["a", "b"], "parent_account_id": ["b", "a"],
                          "arr": [1.0, 3.0], "score": [20.0, 60.0]})
    out = with_groups(table, HealthSection()).set_index("account_id")
    assert out.loc["a", "group_score"] == pytest.approx(50)  # (20·1 + 60·3) / 4


# --- on a workspace ----------------------------------------------------------------------------
ACCOUNTS = """account_id,name,industry,employees,plan,owner,nps,parent_account_id
a,Alpha,retail,500,free,alice,40,hq
b,Beta,energy,80,pro,bob,,hq
hq,Holding,retail,5000,enterprise,alice,,
"""
HEALTH_TOML = """
[health]
trend_days = 30
history_step_days = 10
history_points = 3

[health.factors.usage]
input = "seat_utilization"
weight = 2
points = [[0, 0], [1, 100]]

[health.factors.nps]
input = "trait:nps"
weight = 1
points = [[0, 0], [100, 100]]
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = tmp_path_factory.mktemp("health")
    ws = small_workspace.build(root, "health", {"accounts": ACCOUNTS, "subscriptions": SUBSCRIPTIONS,
                                            "memberships": MEMBERSHIPS}, EVENTS)
    ws.close()
    config = root / "ws" / "accountlens.toml"
    text = config.read_text()
    start = text.index("[health]")
    end = text.index("[prediction]")
    config.write_text(text[:start] + HEALTH_TOML.lstrip() + "\n" + text[end:])
    return root / "ws"


def _rows(root: Path, **params) -> dict[str, dict]:
    with Workspace.open(root) as ws:
        frame = ws.analysis("health", **params)
    return {row["account_id"]: row for row in frame.to_dict(orient="records")}


def test_scores_on_a_workspace_by_hand(workspace: Path) -> None:
    rows = _rows(workspace, as_of=dt.date(2024, 6, 30))
    a = rows["a"]
    # a: MAU 1 (u1) of 10 seats (s1) → usage 10; nps 40 (the CSV's) → (2·10 + 40) / 3 = 20
    assert (a["usage_value"], a["nps_value"]) == (pytest.approx(0.1), 40)
    assert a["score"] == pytest.approx(20) and a["grade"] == "poor"
    # b: no subscription in force (s3 ended 06-15) and no nps → no score
    assert pd.isna(rows["b"]["score"]) and rows["b"]["missing"] == ["usage", "nps"]
    # hq: a parent with no contract or activity of its own; its group is a (b has no score)
    assert rows["hq"]["children"] == ["a", "b"]
    assert rows["hq"]["group_score"] == pytest.approx(20)
    # trend: as of 2024-05-31 a had MAU 1 (u1 on 05-20) of 10 seats, nps 40 → also 20
    assert a["previous_score"] == pytest.approx(20) and a["trend"] == pytest.approx(0)


def test_trend_and_history(workspace: Path) -> None:
    rows = _rows(workspace, as_of=dt.date(2024, 7, 20))
    a = rows["a"]
    # 2024-07-20: s2 in force (20 seats), MAU 1 (e5 on 07-01), nps 55 from the group call of
    # 07-15 → (2·5 + 55) / 3 = 21.667; 2024-06-20: 10 seats, MAU 1, nps 40 → 20
    assert a["score"] == pytest.approx(65 / 3)
    assert a["trend"] == pytest.approx(65 / 3 - 20)
    history = _rows_list(workspace, as_of=dt.date(2024, 7, 20), history=True, account="a")
    days = [pd.Timestamp(r["day"]).date() for r in history]
    assert days == [dt.date(2024, 6, 30), dt.date(2024, 7, 10), dt.date(2024, 7, 20)]
    # each point equals the score computed as of that day (point-in-time)
    for row in history:
        alone = _rows(workspace, as_of=pd.Timestamp(row["day"]).date())["a"]
        assert row["score"] == pytest.approx(alone["score"])
    assert history[1]["trend"] == pytest.approx(history[1]["score"] - history[0]["score"])


def _rows_list(root: Path, **params) -> list[dict]:
    with Workspace.open(root) as ws:
        return ws.analysis("health", **params).to_dict(orient="records")


def test_factors_view_and_filters(workspace: Path) -> None:
    rows = _rows_list(workspace, as_of=dt.date(2024, 6, 30), view="factors", account="a")
    assert [(r["factor"], r["contribution"]) for r in rows] == [
        ("nps", pytest.approx(40 / 3)), ("usage", pytest.approx(20 / 3))]
    assert {r["account_id"] for r in _rows_list(workspace, as_of=dt.date(2024, 6, 30),
                                                industry="energy")} == {"b"}
    assert {r["account_id"] for r in _rows_list(workspace, as_of=dt.date(2024, 6, 30),
                                                owner="alice")} == {"a", "hq"}


def test_cli_rest_and_python_give_the_same_rows(workspace: Path) -> None:
    with Workspace.open(workspace) as ws:
        python = ws.analysis_result("health", as_of=dt.date(2024, 6, 30)).to_dict()
    cli = subprocess.run(
        [sys.executable, "-m", "accountlens", "health", "--dir", str(workspace), "--as-of",
         "2024-06-30", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == python["rows"]
    table = subprocess.run(
        [sys.executable, "-m", "accountlens", "health", "--dir", str(workspace), "--as-of",
         "2024-06-30"], capture_output=True, text=True, timeout=120)
    assert "more columns with --format json or csv" in table.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "accountlens", "health", "--dir", str(workspace), "--view", "x"],
        capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "view" in (bad.stderr + bad.stdout)
    server = start_server(workspace)
    try:
        body = httpx.get(server.url + "/api/v1/analyses/health",
                         params={"as_of": "2024-06-30"}, timeout=60).json()
        assert body["rows"] == python["rows"] and body["notes"] == python["notes"]
        bad_request = httpx.get(server.url + "/api/v1/analyses/health",
                                params={"level": "user"}, timeout=10)
        assert bad_request.status_code == 422
    finally:
        server.stop()
