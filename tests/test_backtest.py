"""The rolling-origin backtest (analysis/backtest.py, analysis/evaluation.py, docs/prediction.md):
each figure against an independent reference, calibration on simulated probabilities, the
planted world's figures (the model beats the health score), a test cut-off trained exactly as
`predict` would have been on that day, and the same rows through the CLI, REST and Python."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy.stats import mannwhitneyu, rankdata
from typer.testing import CliRunner

from accountlens.analysis import evaluation, features, learning
from accountlens.analysis.labels import Labelled, known_outcomes, training_set
from accountlens.api.app import create_app
from accountlens.cli.main import app as cli
from accountlens.serve.live import LiveWorkspace
from tests import outcome_world

AS_OF = dt.date(2024, 12, 31)  # the world's last active day: the default as-of
PREDICTION = {"max_training_cutoffs": 6, "backtest_cutoffs": 2}


# --- the figures, by hand ------------------------------------------------------------------------
def test_auc_against_pair_counting_and_mann_whitney() -> None:
    labels = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.3, 0.1])
    # positive pairs ranked right: 0.9 beats all 3 negatives, 0.4 beats 0.3 and 0.1 → 5 of 6
    assert learning.auc(labels, scores) == pytest.approx(5 / 6)
    tied = np.array([0.9, 0.4, 0.4, 0.3, 0.1])  # a tie counts one half: 5.5 of 6
    assert learning.auc(labels, tied) == pytest.approx(5.5 / 6)
    rng = np.random.default_rng(3)
    labels = rng.random(500) < 0.2
    scores = rng.normal(size=500) + labels
    u = mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert learning.auc(labels.astype(int), scores) == pytest.approx(u / (labels.sum() * (~labels).sum()))
    assert np.isnan(learning.auc(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3])))


def test_average_precision_brier_and_lift_by_hand() -> None:
    labels = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.3, 0.1])
    # positives at ranks 1 and 3: precision 1/1 and 2/3
    assert learning.pr_auc(labels, scores) == pytest.approx((1 + 2 / 3) / 2)
    assert learning.brier(labels, scores) == pytest.approx(
        ((0.9 - 1) ** 2 + 0.8 ** 2 + (0.4 - 1) ** 2 + 0.3 ** 2 + 0.1 ** 2) / 5)
    # 20 accounts, 4 positive (rate 0.2); the top 2 by score hold 1 positive: 0.5 / 0.2 = 2.5
    labels = np.array([0, 1] + [1, 1, 1] + [0] * 15)
    scores = np.arange(20, 0, -1, dtype=float)
    assert learning.top_decile_lift(labels, scores) == pytest.approx(2.5)
    assert learning.top_decile_lift(labels[::-1], scores) == pytest.approx(0.0)
    # 25 accounts: the top tenth is ceil(2.5) = 3
    labels = np.array([1, 1, 1] + [0] * 20 + [1, 1])
    assert learning.top_decile_lift(labels, np.arange(25, 0, -1, dtype=float)) == pytest.approx(
        1.0 / (5 / 25))
    assert np.isnan(learning.top_decile_lift(np.zeros(5), np.arange(5.0)))


def test_calibration_table_by_hand() -> None:
    probability = np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.4])
    labels = np.array([0, 1, 0, 1, 1, 0])
    table = learning.calibration_table(labels, probability, bins=3)
    # sorted: (0.1, 0.2 | 0.4, 0.5 | 0.8, 0.9)
    assert table["count"].tolist() == [2, 2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.15, 0.45, 0.85])
    assert table["observed_rate"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert table["positives"].tolist() == [0, 1, 2]


def test_calibration_of_known_probabilities() -> None:
    """y ~ Bernoulli(p) for 20,000 known p: each bin's observed rate is within 0.025 of its mean
    p, the Brier score is E[p(1 − p)]; a distorted forecast (p²) is caught by the table."""
    rng = np.random.default_rng(11)
    p = rng.beta(1.2, 3.0, size=20_000)
    y = (rng.random(p.size) < p).astype(int)
    table = learning.calibration_table(y, p, bins=10)
    assert table["count"].sum() == p.size and table["count"].min() == 2000
    assert (table["observed_rate"] - table["mean_predicted"]).abs().max() < 0.025
    assert learning.brier(y, p) == pytest.approx(np.mean(p * (1 - p)), abs=0.004)
    distorted = learning.calibration_table(y, p ** 2, bins=10)
    assert (distorted["observed_rate"] - distorted["mean_predicted"]).abs().max() > 0.1
    assert learning.brier(y, p ** 2) > learning.brier(y, p) + 0.005


def test_the_candidates_are_calibrated_on_held_out_rows() -> None:
    """A known logistic truth over two features (named like account features) and a null: both
    candidates' calibrated probabilities match the truth on rows they never saw."""
    rng = np.random.default_rng(5)
    rows = 9000
    frame = pd.DataFrame({"mau": rng.normal(size=rows), "seat_utilization": rng.normal(size=rows),
                          "trait_noise": rng.normal(size=rows),
                          "account_id": [f"a{i // 3}" for i in range(rows)]})
    truth = 1 / (1 + np.exp(-(-1.5 + 1.2 * frame["mau"] - 0.8 * frame["seat_utilization"])))
    frame["label"] = (rng.random(rows) < truth).astype(float)
    train, test = frame.iloc[:6000], frame.iloc[6000:]
    training = Labelled("churn", train.reset_index(drop=True), (AS_OF,))
    for kind in learning.CANDIDATES:
        model = learning.fit(kind, training, seed=0)
        assert model.method == "isotonic"  # 6,000 rows, over 200 of each class
        predicted = model.probability(test)
        assert np.abs(predicted - truth.iloc[6000:]).mean() < 0.05, kind
        table = learning.calibration_table(test["label"].to_numpy(), predicted, bins=5)
        assert (table["observed_rate"] - table["mean_predicted"]).abs().max() < 0.05, kind
    small = Labelled("churn", train.iloc[:900].reset_index(drop=True), (AS_OF,))
    assert learning.fit("logistic", small, seed=0).method == "sigmoid"


# --- the planted world -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    ws = outcome_world.build(tmp_path_factory.mktemp("backtest"), prediction=PREDICTION)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def summary(world) -> pd.DataFrame:
    return world.analysis("backtest", outcome="churn")


def test_the_model_beats_the_health_score(world, summary) -> None:
    assert summary.attrs["as_of"] == AS_OF
    assert summary["source"].tolist() == ["logistic", "lightgbm", "health"]
    rows = summary.set_index("source")
    assert rows["used"].sum() == 1 and not rows.loc["health", "used"]
    used = rows.index[rows["used"]][0]
    assert rows.loc[used, "auc"] > 0.75 and rows.loc[used, "auc"] > rows.loc["health", "auc"] + 0.15
    assert rows.loc[used, "lift_top_decile"] > 2 and rows.loc[used, "pr_auc"] > rows.loc["health", "pr_auc"]
    assert rows["labelled"].nunique() == 1 and rows["positives"].nunique() == 1
    assert rows["positives"].iloc[0] >= 25 and (rows["cutoffs"] == 2).all()
    assert rows.loc["health", "calibration"].startswith("one-feature logistic")
    assert rows.loc["logistic", "calibration"] == "sigmoid"
    # the pooled AUC again, from the test predictions by ranks (Mann–Whitney)
    backtest = evaluation.backtest(world.store, world.config, "churn", AS_OF)
    frame = backtest.predictions
    for source in evaluation.SOURCES:
        ranks = rankdata(frame[f"{source}_rank"])
        positive = frame["label"].to_numpy() == 1
        n1, n0 = positive.sum(), (~positive).sum()
        by_ranks = (ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
        assert rows.loc[source, "auc"] == pytest.approx(by_ranks)
    assert any("chosen by the backtest" in n for n in summary.attrs["notes"])


def test_cutoff_and_calibration_views_add_up(world, summary) -> None:
    cutoffs = world.analysis("backtest", outcome="churn", view="cutoffs", limit=1000)
    expected = [AS_OF - dt.timedelta(days=90 + 30 * j) for j in range(2)]
    pooled = summary.set_index("source")
    for source, part in cutoffs.groupby("source"):
        assert sorted(part["cutoff"], reverse=True) == expected
        assert part["labelled"].sum() == pooled.loc[source, "labelled"]
        assert part["positives"].sum() == pooled.loc[source, "positives"]
        assert (part["train_labelled"] > part["train_positives"]).all()
        assert (part["train_positives"] > 0).all()
    calibration = world.analysis("backtest", outcome="churn", view="calibration", bins=5, limit=1000)
    for source, part in calibration.groupby("source"):
        assert part["bin"].tolist() == [1, 2, 3, 4, 5]
        assert part["count"].sum() == pooled.loc[source, "labelled"] == part["labelled"].iloc[0]
        assert part["positives"].sum() == pooled.loc[source, "positives"]
        assert part["mean_predicted"].is_monotonic_increasing
        mean = (part["mean_predicted"] * part["count"]).sum() / part["count"].sum()
        assert abs(mean - pooled.loc[source, "base_rate"]) < 0.05  # calibrated on the whole
    for outcome in ("renewal", "expansion"):
        other = world.analysis("backtest", outcome=outcome)
        assert other["source"].tolist() == ["logistic", "lightgbm", "health"]
        assert (other["labelled"] > 0).all()
    renewal = world.analysis("backtest", outcome="renewal").set_index("source")
    assert renewal.loc["health", "labelled"] < pooled.loc["health", "labelled"]  # decided only


def test_a_test_cutoff_knows_only_its_past(world, summary, tmp_path_factory) -> None:
    """The backtest's predictions for t₀ are exactly those of models trained, as `predict` trains
    them, on a workspace that holds only what was known on t₀ (its future rewritten)."""
    first = AS_OF - dt.timedelta(days=90)
    then = outcome_world.build(tmp_path_factory.mktemp("then"), truncate=first, prediction=PREDICTION)
    try:
        training = training_set(then.store, then.config, "churn", first,
                                known_outcomes(then.store, first))
        backtest = evaluation.backtest(world.store, world.config, "churn", AS_OF)
        tested = backtest.predictions[backtest.predictions["cutoff"] == first]
        rows = features.account_features(world.store, world.config, first).set_index("account_id")
        rows = rows.loc[tested["account_id"]].reset_index()
        assert len(tested) > 100 and backtest.training[first] == (training.labelled, training.positives)
        for kind in learning.CANDIDATES:
            model = learning.fit(kind, training, seed=world.config.prediction.seed)
            np.testing.assert_allclose(model.probability(rows), tested[f"{kind}_probability"],
                                       rtol=1e-9, atol=1e-12)
    finally:
        then.close()


def test_nothing_to_measure_gives_no_rows_and_says_why(tmp_path_factory) -> None:
    small = outcome_world.build(tmp_path_factory.mktemp("few"), accounts=12)
    try:
        rows = small.analysis("backtest", outcome="churn")
        assert len(rows) == 0
        notes = rows.attrs["notes"]
        assert sum("not measured: too few outcomes to learn churn then (the outcomes dated" in n
                   for n in notes) == 4  # the default backtest_cutoffs
        assert notes[-2].startswith("a model needs at least 30 labelled rows")
        assert rows.attrs["notes"][-1] == "nothing measured: no rows"
    finally:
        small.close()


# --- every interface -------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "params", "through_cli"), [
    ("backtest", {"outcome": "churn"}, True),
    ("backtest", {"outcome": "churn", "view": "cutoffs"}, False),  # the CLI opens its own store:
    ("backtest", {"outcome": "churn", "view": "calibration"}, False),  # each run computes anew
    ("predict", {"outcome": "churn", "drivers": 3}, True),
])
def test_cli_rest_and_python_give_the_same_rows(world, summary, name, params, through_cli) -> None:
    result = world.analysis_result(name, **params)
    assert result.as_of == AS_OF and len(result.frame)
    client = TestClient(create_app([LiveWorkspace(workspace=world, log=None, loader=None)]))
    body = client.get(f"/api/v1/analyses/{name}", params=params).json()
    assert body["rows"] == result.records() and body["notes"] == result.notes
    if name == "predict":
        drivers = body["rows"][0]["drivers"]
        assert len(drivers) == 3 and set(drivers[0]) == {"feature", "value", "contribution"}
    if not through_cli:
        return
    flags = [part for key, value in params.items()
             for part in (f"--{key.replace('_', '-')}", str(value))]
    out = CliRunner().invoke(cli, [name, *flags, "--dir", str(world.root), "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == body["rows"]
