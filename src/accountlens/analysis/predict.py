"""Churn, renewal and expansion probabilities per account (docs/prediction.md): trained at
cut-offs whose outcomes are known on as_of, the model chosen by the rolling-origin backtest and
used only when it beats the health score there, with each account's drivers and, for churn, a
survival model's view of when.

`probabilities()` is the entry point for other analyses (renewals)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis import evaluation, learning
from accountlens.analysis.features import AccountFilters, filtered
from accountlens.analysis.health import health_table
from accountlens.analysis.labels import (
    Labelled,
    early_shortfall,
    known_outcomes,
    shortfall,
    too_few,
    training_set,
)
from accountlens.analysis.registry import Analysis, register, resolve_as_of
from accountlens.store.base import Store
from accountlens.store.cache import BoundedCache

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Outcome = Literal["churn", "renewal", "expansion"]
ModelChoice = Literal["auto", "logistic", "lightgbm", "health"]
SEGMENT_COLUMNS = ("plan", "industry", "region", "size_band", "owner")
COLUMNS = ("account_id", "outcome", "probability", "decile", "source", "survival_churn_probability",
           "median_days_to_churn", "health_score", "arr", *SEGMENT_COLUMNS, "base", "drivers")

# Fitted models (candidates, the health baseline, the survival model), by (store, data version,
# day, settings, outcome, source); the backtests are kept in evaluation.BACKTESTS.
MODELS = BoundedCache(32)
CACHES = (MODELS, evaluation.BACKTESTS)


class PredictRequest(AccountFilters):
    level: Literal["account"] = Field(default="account", description="accounts (the only level)")
    outcome: Outcome = Field(default="churn", description=(
        "churn, renewal (given a renewal decision) or expansion within prediction.horizon_days"))
    model: ModelChoice = Field(default="auto", description=(
        "auto: the model the backtest chooses, used only if it beats the health score there; "
        "or logistic, lightgbm, health"))
    drivers: int = Field(default=5, ge=0, le=50, description="the top drivers listed per account")


def _key(store: Store, settings: Any, as_of: dt.date, *parts: str) -> tuple:
    return (store.instance, store.data_version, as_of, settings.model_dump_json(), *parts)


def _fitted(store: Store, settings: Any, outcome: str, as_of: dt.date, source: str,
            training: Labelled) -> Any:
    kept = MODELS.get(_key(store, settings, as_of, outcome, source))
    if kept is None:
        kept = (learning.fit_health(training, settings.health) if source == "health"
                else learning.fit(source, training, settings.prediction.seed))
        MODELS.put(_key(store, settings, as_of, outcome, source), kept)
    return kept


def _survival(store: Store, settings: Any, as_of: dt.date, training: Labelled,
              outcomes: pd.DataFrame) -> learning.Survival | None:
    key = _key(store, settings, as_of, "churn", "survival")
    if key not in MODELS:
        MODELS.put(key, learning.fit_survival(training, outcomes, as_of,
                                              settings.prediction.horizon_days))
    return MODELS.get(key)


def _empty(notes: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({"account_id": pd.Series(dtype=object),
                          "probability": pd.Series(dtype=float),
                          "source": pd.Series(dtype=object), "drivers": pd.Series(dtype=object),
                          "base": pd.Series(dtype=float)})
    frame.attrs["notes"] = notes
    return frame


def _backtest_note(backtest: evaluation.Backtest, source: str) -> str:
    if not backtest.measured:
        return "not backtested: " + ("; ".join(backtest.notes) or "no test cut-off")
    figures, health = backtest.pooled(source), backtest.pooled("health")
    return (f"backtest ({len(backtest.measured)} test cut-off(s), {health['labelled']} labelled "
            f"accounts, {health['positives']} positive): pooled AUC {figures['auc']:.3f} "
            f"for {learning.MODEL_NAMES[source]} vs the health score's {health['auc']:.3f}")


def probabilities(store: Store, settings: Any, outcome: str, as_of: dt.date,
                  model: str = "auto", drivers: int = 5) -> pd.DataFrame:
    """Per customer on `as_of`: `probability` of `outcome` within prediction.horizon_days,
    `source` (logistic, lightgbm or health), `drivers` (the top contributions to its log-odds)
    and `base`. No rows, and a note saying why, when there are too few outcomes to learn from
    or (model auto) nothing to backtest on. `attrs["notes"]`: what it rests on."""
    return _predicted(store, settings, outcome, as_of, model, drivers)[0]


def _predicted(store: Store, settings: Any, outcome: str, as_of: dt.date, model: str,
               drivers: int) -> tuple[pd.DataFrame, Labelled | None, pd.DataFrame]:
    """`probabilities()`, with the training set and the outcomes known on as_of."""
    import pandas as pd

    prediction = settings.prediction
    outcomes = known_outcomes(store, as_of)
    counts = early_shortfall(outcome, as_of, outcomes, prediction)
    if counts is not None:
        return _empty([too_few(outcome, counts, prediction) + "; no predictions"]), None, outcomes
    training = training_set(store, settings, outcome, as_of, outcomes)
    counts = shortfall(training, prediction)
    if counts is not None:
        return _empty([too_few(outcome, counts, prediction) + "; no predictions"]), None, outcomes
    backtest = evaluation.backtest(store, settings, outcome, as_of)
    notes = []
    if model == "auto":
        source, why = backtest.choice()
        if source is None:
            return _empty([why + "; no predictions (ask for a model by name to predict "
                                 "untested)"]), None, outcomes
        notes.append(why)
    else:
        source = model
        notes.append(f"{learning.MODEL_NAMES[source]} as asked; " + _backtest_note(backtest, source))
    fitted = _fitted(store, settings, outcome, as_of, source, training)
    current = health_table(store, settings, as_of)
    current = current[current["customer"].astype(bool)].reset_index(drop=True)
    parts, base = fitted.contributions(current)
    if source == "health":
        listed = learning.drivers(fitted.driver_values(current), fitted.factors, parts, drivers)
        explained = "the health factors' shares of the health score's log-odds"
    else:
        listed = learning.drivers(current, fitted.columns, parts, drivers)
        explained = ("exact contributions to the uncalibrated log-odds (coefficient × "
                     "standardised value)" if source == "logistic" else
                     "exact contributions to the uncalibrated log-odds (tree SHAP values)")
    frame = pd.DataFrame({"account_id": current["account_id"],
                          "probability": fitted.probability(current), "source": source,
                          "drivers": listed, "base": base})
    calibration = ("one-feature logistic fit of the label on the health score" if source == "health"
                   else f"{fitted.method} calibration on cross-validated scores")
    notes += [f"trained as of {as_of} on {training.describe()}; probabilities by {calibration}",
              f"drivers: {explained}; the calibration is monotone, so they explain the ranking"]
    if outcome == "renewal":
        notes.append("renewal: the probability of renewing given a renewal decision within "
                     f"{prediction.horizon_days} days")
    frame.attrs["notes"] = notes
    return frame, training, outcomes


def _deciles(probability: pd.Series) -> np.ndarray:
    """1 for the tenth with the highest probability, … 10 for the lowest."""
    import numpy as np

    order = np.argsort(-probability.to_numpy(), kind="stable")
    ranks = np.empty(len(order), dtype=int)
    ranks[order] = np.arange(len(order))
    return (ranks * 10 // max(len(order), 1) + 1).astype(int)


def run(store: Store, settings: Any, request: PredictRequest) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    as_of = resolve_as_of(store, request.as_of)
    scored, training, outcomes = _predicted(store, settings, request.outcome, as_of, request.model,
                                            request.drivers)
    notes = list(scored.attrs.get("notes", []))
    if not len(scored):
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS
                              if request.outcome == "churn" or "churn" not in c})
        empty.attrs["notes"] = notes
        return empty
    current = health_table(store, settings, as_of).set_index("account_id")
    frame = scored.assign(outcome=request.outcome, decile=_deciles(scored["probability"]))
    frame["health_score"] = frame["account_id"].map(current["score"]).astype(float)
    for column in ("arr", *SEGMENT_COLUMNS):
        frame[column] = frame["account_id"].map(current[column])
    if request.outcome == "churn" and training is not None:
        survival = _survival(store, settings, as_of, training, outcomes)
        if survival is None:
            frame["survival_churn_probability"] = np.nan
            frame["median_days_to_churn"] = np.nan
            notes.append("the survival model did not converge: no survival columns")
        else:
            rows = current.loc[frame["account_id"]].reset_index()
            frame["survival_churn_probability"], frame["median_days_to_churn"] = survival.predict(rows)
            notes.append(f"survival: a penalised Cox model (penalizer {learning.COX_PENALIZER}) of "
                         "the days to churn, followed up to as_of; median_days_to_churn is empty "
                         "where the predicted survival stays above one half")
    frame = filtered(frame, request)
    frame = frame.sort_values(["probability", "account_id"], ascending=[False, True])
    rows = frame[[c for c in COLUMNS if c in frame.columns]].reset_index(drop=True)
    rows.attrs["notes"] = notes
    rows.attrs["table_columns"] = [c for c in ("account_id", "probability", "decile", "source",
                                               "median_days_to_churn", "health_score", "arr")
                                   if c in rows.columns]
    return rows


register(Analysis(
    name="predict",
    summary="Each customer's probability of churn, renewal or expansion within the horizon, "
            "with its top drivers; the model is chosen by a rolling-origin backtest and used "
            "only when it beats the health score there.",
    request=PredictRequest,
    run=run,
))
