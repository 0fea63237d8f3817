"""How well churn, renewal and expansion can be predicted here (docs/prediction.md): the
rolling-origin backtest of every candidate model and of the plain health score — AUC, PR-AUC,
Brier score, top-decile lift and calibration, pooled over the test cut-offs or per cut-off,
each with the labelled accounts and positives it rests on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis import evaluation, learning
from accountlens.analysis.registry import Analysis, AnalysisRequest, register, resolve_as_of
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

FIGURES = ("auc", "pr_auc", "brier", "lift_top_decile", "base_rate", "labelled", "positives")
VIEW_COLUMNS = {
    "summary": ("source", "model", "used", "calibration", *FIGURES, "cutoffs", "first_cutoff",
                "last_cutoff"),
    "calibration": ("source", "model", "bin", "mean_predicted", "observed_rate", "count",
                    "positives", "labelled"),
    "cutoffs": ("source", "model", "cutoff", *FIGURES, "train_labelled", "train_positives"),
}
# What a terminal table shows of each view (JSON, CSV, REST and Python carry every column).
TABLE_COLUMNS = {
    "summary": ("source", "used", "auc", "pr_auc", "brier", "lift_top_decile", "labelled",
                "positives", "cutoffs"),
    "calibration": ("source", "bin", "mean_predicted", "observed_rate", "count", "positives"),
    "cutoffs": ("source", "cutoff", "auc", "pr_auc", "brier", "lift_top_decile", "labelled",
                "positives", "train_positives"),
}


class BacktestRequest(AnalysisRequest):
    level: Literal["account"] = Field(default="account", description="accounts (the only level)")
    outcome: Literal["churn", "renewal", "expansion"] = Field(default="churn", description=(
        "churn, renewal (given a renewal decision) or expansion within prediction.horizon_days"))
    view: Literal["summary", "calibration", "cutoffs"] = Field(default="summary", description=(
        "summary: one row per candidate and the health score, pooled over the test cut-offs; "
        "calibration: predicted vs observed per probability bin; cutoffs: per test cut-off"))
    bins: int = Field(default=10, ge=2, le=50, description="calibration: probability bins (equal counts)")


def _calibration(source: str, backtest: evaluation.Backtest) -> str:
    if source == "health":
        return "one-feature logistic fit on the score"
    return backtest.methods.get(source, "")


def _summary(backtest: evaluation.Backtest, used: str | None) -> list[dict[str, Any]]:
    measured = backtest.measured
    return [{"source": source, "model": learning.MODEL_NAMES[source], "used": source == used,
             "calibration": _calibration(source, backtest), **backtest.pooled(source),
             "cutoffs": len(measured), "first_cutoff": min(measured), "last_cutoff": max(measured)}
            for source in evaluation.SOURCES]


def _calibration_rows(backtest: evaluation.Backtest, bins: int) -> list[dict[str, Any]]:
    rows = []
    frame = backtest.predictions
    for source in evaluation.SOURCES:
        table = learning.calibration_table(frame["label"].to_numpy(),
                                           frame[f"{source}_probability"].to_numpy(), bins)
        for row in table.to_dict(orient="records"):
            rows.append({"source": source, "model": learning.MODEL_NAMES[source],
                         **{str(k): v for k, v in row.items()}, "labelled": len(frame)})
    return rows


def _cutoff_rows(backtest: evaluation.Backtest) -> list[dict[str, Any]]:
    rows = []
    for source in evaluation.SOURCES:
        for figures in backtest.per_cutoff(source):
            labelled, positives = backtest.training[figures["cutoff"]]
            rows.append({"source": source, "model": learning.MODEL_NAMES[source], **figures,
                         "train_labelled": labelled, "train_positives": positives})
    return rows


def run(store: Store, settings: Any, request: BacktestRequest) -> pd.DataFrame:
    import pandas as pd

    as_of = resolve_as_of(store, request.as_of)
    backtest = evaluation.backtest(store, settings, request.outcome, as_of)
    prediction = settings.prediction
    notes = [f"rolling origin as of {as_of}: {prediction.backtest_cutoffs} test cut-off(s) "
             f"{prediction.cutoff_step_days} days apart, each labelled by the outcomes of the "
             f"{prediction.horizon_days} days after it; the models of each are trained only on "
             "cut-offs whose labels were known by then"]
    notes += backtest.notes
    columns = VIEW_COLUMNS[request.view]
    if not backtest.measured:
        notes.append("nothing measured: no rows")
        rows = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    else:
        used, why = backtest.choice()
        notes.append(why)
        records = (_summary(backtest, used) if request.view == "summary"
                   else _calibration_rows(backtest, request.bins) if request.view == "calibration"
                   else _cutoff_rows(backtest))
        rows = pd.DataFrame(records, columns=list(columns))
        notes.append("health: ranked by 100 − score for churn, by the score otherwise; its "
                     "probabilities (Brier, calibration) from a one-feature logistic fit of the "
                     "label on the score at the same training cut-offs")
    rows.attrs["notes"] = notes
    rows.attrs["table_columns"] = list(TABLE_COLUMNS[request.view])
    return rows


register(Analysis(
    name="backtest",
    summary="How well churn, renewal or expansion can be predicted: a rolling-origin backtest "
            "of each candidate model and of the health score (AUC, PR-AUC, Brier, top-decile "
            "lift, calibration), pooled or per cut-off, with the counts each rests on.",
    request=BacktestRequest,
    run=run,
))
