"""The outcome models (docs/prediction.md): the candidate classifiers with their probability
calibration and exact per-account drivers, the health score mapped to a probability (the
baseline every model must beat), and a Cox model of the time to churn.

scikit-learn, LightGBM and lifelines are imported inside the functions that use them, so
importing the analyses (and `accountlens --help`) stays fast.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accountlens.analysis.labels import Labelled, feature_columns

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from accountlens.config import HealthSection

CANDIDATES = ("logistic", "lightgbm")
MODEL_NAMES = {"logistic": "logistic regression", "lightgbm": "gradient boosting (LightGBM)",
               "health": "the health score"}
LOGISTIC_C = 0.5  # L2 strength on standardised features (smaller C: stronger regularisation)
# Isotonic calibration overfits small sets (scikit-learn's guide: "fewer than ~1000 samples");
# below these counts the 2-parameter sigmoid (Platt) is used.
ISOTONIC_MIN_ROWS = 2000
ISOTONIC_MIN_CLASS = 200
CALIBRATION_FOLDS = 5
COX_PENALIZER = 0.1


def usable_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns that vary in `frame` (all-missing or constant ones teach nothing)."""
    return [c for c in feature_columns(frame)
            if frame[c].notna().any() and frame[c].nunique(dropna=False) > 1]


def matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    import numpy as np
    import pandas as pd

    values = pd.DataFrame({c: pd.to_numeric(frame[c], errors="coerce") if c in frame.columns
                           else np.nan for c in columns}, index=frame.index)
    return values.to_numpy(dtype=float)


def calibration_method(labelled: int, fewest: int) -> str:
    return "isotonic" if labelled >= ISOTONIC_MIN_ROWS and fewest >= ISOTONIC_MIN_CLASS else "sigmoid"


@dataclass
class Model:
    """A fitted candidate: the classifier fitted on every training row (its score is what the
    drivers explain) and the monotone calibration from that score to a probability, learned on
    cross-validated scores (CalibratedClassifierCV, ensemble=False)."""

    kind: str  # logistic | lightgbm
    columns: list[str]
    calibrated: Any  # sklearn.calibration.CalibratedClassifierCV
    method: str  # sigmoid | isotonic
    trained_on: str  # Labelled.describe() of its training set

    @property
    def estimator(self) -> Any:
        return self.calibrated.calibrated_classifiers_[0].estimator

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrated.predict_proba(matrix(frame, self.columns))[:, 1]

    def contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per row and column, its exact share of the uncalibrated log-odds, and the base value
        (contributions + base = the log-odds). Logistic regression: coefficient × the
        standardised value (relative to the training mean), a missing indicator's term added to
        its feature; LightGBM: tree SHAP values (`pred_contrib`)."""
        import numpy as np

        x = matrix(frame, self.columns)
        if self.kind == "lightgbm":
            contrib = self.estimator.booster_.predict(x, pred_contrib=True)
            return contrib[:, :-1], contrib[:, -1]
        imputer, scaler, logistic = (self.estimator.named_steps[s] for s in ("impute", "scale", "fit"))
        terms = scaler.transform(imputer.transform(x)) * logistic.coef_[0]
        parts = terms[:, :len(self.columns)].copy()
        indicator = getattr(imputer, "indicator_", None)
        if indicator is not None:
            for position, column in enumerate(indicator.features_):
                parts[:, column] += terms[:, len(self.columns) + position]
        return parts, np.full(len(frame), float(logistic.intercept_[0]))

    def weights(self) -> dict[str, float]:
        """Logistic regression: the coefficient of each standardised feature."""
        coef = self.estimator.named_steps["fit"].coef_[0]
        return dict(zip(self.columns, map(float, coef[:len(self.columns)])))


def _estimator(kind: str, seed: int) -> Any:
    if kind == "logistic":
        from sklearn.impute import SimpleImputer  # type: ignore[import-untyped]
        from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
        from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
        from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

        return Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                         ("scale", StandardScaler()),
                         # Newton steps: 6× faster than lbfgs on these correlated features, and exact
                         ("fit", LogisticRegression(C=LOGISTIC_C, solver="newton-cholesky",
                                                    max_iter=200))])
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=100, learning_rate=0.05, num_leaves=7,
                              min_child_samples=10, reg_lambda=1.0, random_state=seed,
                              deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1)
    raise ValueError(f"unknown model {kind!r}; use one of {', '.join(CANDIDATES)}")


def fit(kind: str, training: Labelled, seed: int) -> Model:
    """Candidate `kind` fitted on `training`, calibrated on folds that keep each account's rows
    together (StratifiedGroupKFold), so the calibration never sees an account it was fit on."""
    from sklearn.calibration import CalibratedClassifierCV  # type: ignore[import-untyped]
    from sklearn.model_selection import StratifiedGroupKFold  # type: ignore[import-untyped]

    frame = training.frame
    columns = usable_columns(frame)
    x, y = matrix(frame, columns), frame["label"].to_numpy(dtype=int)
    groups = frame["account_id"].to_numpy()
    fewest = min(training.positives, training.negatives)
    # every fold must hold accounts of both classes (labels.shortfall ensures two of each)
    folds = max(2, min(CALIBRATION_FOLDS, training.accounts(1.0), training.accounts(0.0)))
    splits = list(StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
                  .split(x, y, groups))
    method = calibration_method(training.labelled, fewest)
    calibrated = CalibratedClassifierCV(_estimator(kind, seed), method=method, cv=splits,
                                        ensemble=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LightGBM/sklearn chatter on small folds
        calibrated.fit(x, y)
    return Model(kind, columns, calibrated, method, training.describe())


def drivers(frame: pd.DataFrame, columns: list[str], contributions: np.ndarray,
            top: int) -> list[list[dict[str, Any]]]:
    """Per row, its `top` contributions by size: [{feature, value, contribution}, …]."""
    import numpy as np

    values = matrix(frame, columns)
    out = []
    for row, parts in zip(values, contributions):
        order = np.argsort(-np.abs(parts), kind="stable")[:top]
        out.append([{"feature": columns[i], "value": None if math.isnan(row[i]) else float(row[i]),
                     "contribution": float(parts[i])} for i in order])
    return out


# --- the health score as a model (the baseline) -----------------------------------------------
@dataclass
class HealthModel:
    """The health score as a probability: a one-feature logistic fit of the label on the score
    at the training cut-offs; a missing score counts as the training median. It ranks accounts
    by 100 − score for churn and by the score for renewal and expansion."""

    outcome: str
    factors: list[str]
    fill: float
    intercept: float
    slope: float  # per score point
    factor_means: dict[str, float] = field(default_factory=dict)
    trained_on: str = ""

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        import pandas as pd

        return pd.to_numeric(frame["score"], errors="coerce").fillna(self.fill).to_numpy(dtype=float)

    def rank(self, frame: pd.DataFrame) -> np.ndarray:
        scores = self.scores(frame)
        return 100.0 - scores if self.outcome == "churn" else scores

    def log_odds(self, frame: pd.DataFrame) -> np.ndarray:
        return self.intercept + self.slope * self.scores(frame)

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        import numpy as np

        return 1.0 / (1.0 + np.exp(-self.log_odds(frame)))

    def contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The score is the sum of its factors' contributions, so the log-odds
        intercept + slope × score splits exactly into slope × (factor − its training mean) and
        the base intercept + slope × Σ means. A row without a score: no contributions."""
        import numpy as np

        parts = np.column_stack([
            self.slope * (frame[f"{f}_contribution"].to_numpy(dtype=float) - self.factor_means[f])
            for f in self.factors]) if self.factors else np.zeros((len(frame), 0))
        base = np.full(len(frame), self.intercept + self.slope * sum(self.factor_means.values()))
        missing = frame["score"].isna().to_numpy()
        parts[missing] = np.nan
        base[missing] = self.log_odds(frame)[missing]
        return parts, base

    def driver_values(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The factors' input values, named by factor, for `drivers`."""
        return frame[[f"{f}_value" for f in self.factors]].set_axis(self.factors, axis=1)


def fit_health(training: Labelled, health: HealthSection) -> HealthModel:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    frame = training.frame
    scores = frame["score"].astype(float)
    fill = float(scores.median()) if scores.notna().any() else 50.0
    x = ((scores.fillna(fill) - 50.0) / 25.0).to_numpy().reshape(-1, 1)  # lbfgs likes unit scale
    fitted = LogisticRegression(C=1e6, max_iter=1000).fit(x, frame["label"].to_numpy(dtype=int))
    slope = float(fitted.coef_[0][0]) / 25.0
    intercept = float(fitted.intercept_[0]) - 50.0 * slope
    factors = list(health.factors)
    scored = frame[scores.notna()]
    means = {f: float(np.nan_to_num(scored[f"{f}_contribution"].astype(float).mean())) for f in factors}
    return HealthModel(training.outcome, factors, fill, intercept, slope, means, training.describe())


# --- time to churn -----------------------------------------------------------------------------
@dataclass
class Survival:
    """A penalised Cox model of the days from a cut-off to churn, on standardised,
    median-imputed features."""

    columns: list[str]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    fitter: Any  # lifelines.CoxPHFitter
    horizon_days: int

    def _design(self, frame: pd.DataFrame) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        x = matrix(frame, self.columns)
        x = np.where(np.isnan(x), self.medians, x)
        return pd.DataFrame((x - self.means) / self.scales, columns=self.columns, index=frame.index)

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the probability of churn within horizon_days, and the median days to churn
        (NaN where the predicted survival never falls to one half within the follow-up)."""
        import numpy as np

        design = self._design(frame)
        survival = self.fitter.predict_survival_function(design, times=[self.horizon_days])
        median = self.fitter.predict_median(design)
        median = np.asarray(median, dtype=float).reshape(-1)
        return 1.0 - survival.to_numpy()[0], np.where(np.isfinite(median), median, np.nan)


def durations(frame: pd.DataFrame, outcomes: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Per row (account at a cut-off): `duration` (days to its first churn after the cut-off, or
    to `as_of` when none is known by then) and `event` (churned by `as_of`)."""
    import numpy as np
    import pandas as pd

    churns = outcomes[(outcomes["kind"] == "churn") & (outcomes["date"] <= as_of)]
    cutoff = pd.to_datetime(frame["cutoff"])
    joined = pd.DataFrame({"account_id": frame["account_id"].to_numpy(), "cutoff": cutoff.to_numpy(),
                           "row": np.arange(len(frame))})
    dates = churns.assign(date=pd.to_datetime(churns["date"]))[["account_id", "date"]]
    pairs = joined.merge(dates, on="account_id", how="left")
    first_churn = pairs[pairs["date"] > pairs["cutoff"]].groupby("row")["date"].min()
    first = joined["row"].map(first_churn)
    end = first.fillna(pd.Timestamp(as_of))
    return pd.DataFrame({"duration": (end - joined["cutoff"]).dt.days.to_numpy(dtype=float),
                         "event": first.notna().to_numpy(dtype=int)}, index=frame.index)


def fit_survival(training: Labelled, outcomes: pd.DataFrame, as_of: dt.date,
                 horizon_days: int) -> Survival | None:
    """Cox on every customer at the training cut-offs, followed up to `as_of`; None when it does
    not converge."""
    import numpy as np
    import pandas as pd
    from lifelines import CoxPHFitter  # type: ignore[import-untyped]

    frame = training.frame
    columns = usable_columns(frame)
    x = matrix(frame, columns)
    medians = np.nanmedian(x, axis=0)
    filled = np.where(np.isnan(x), medians, x)
    means, scales = filled.mean(axis=0), filled.std(axis=0)
    keep = scales > 0
    columns = [c for c, k in zip(columns, keep) if k]
    medians, means, scales = medians[keep], means[keep], scales[keep]
    data = pd.DataFrame((filled[:, keep] - means) / scales, columns=columns)
    data = data.join(durations(frame, outcomes, as_of).reset_index(drop=True))
    fitter = CoxPHFitter(penalizer=COX_PENALIZER)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter.fit(data, duration_col="duration", event_col="event")
    except Exception:  # noqa: BLE001 — lifelines raises ConvergenceError and numpy errors alike
        return None
    return Survival(columns, medians, means, scales, fitter, horizon_days)


# --- how good a ranking and a probability are ---------------------------------------------------
def auc(labels: np.ndarray, ranking: np.ndarray) -> float:
    """Area under the ROC curve; NaN unless both classes are present."""
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    return float(roc_auc_score(labels, ranking)) if _both(labels) else float("nan")


def pr_auc(labels: np.ndarray, ranking: np.ndarray) -> float:
    """Average precision (the area under the precision-recall curve, step-wise)."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, ranking)) if _both(labels) else float("nan")


def brier(labels: np.ndarray, probability: np.ndarray) -> float:
    """Mean squared difference between the probability and the 0/1 label."""
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(labels, probability)) if len(labels) else float("nan")


def top_decile_lift(labels: np.ndarray, ranking: np.ndarray) -> float:
    """The positive rate among the top tenth by ranking (ceil(n/10) rows; ties broken by the
    order given) ÷ the overall positive rate; NaN without positives."""
    import numpy as np

    labels = np.asarray(labels, dtype=float)
    if not len(labels) or labels.sum() == 0:
        return float("nan")
    top = np.argsort(-np.asarray(ranking, dtype=float), kind="stable")[:math.ceil(len(labels) / 10)]
    return float(labels[top].mean() / labels.mean())


def calibration_table(labels: np.ndarray, probability: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Rows sorted by probability and cut into `bins` groups of (nearly) equal size: per group
    the mean predicted probability, the observed positive rate, the count and positives."""
    import numpy as np
    import pandas as pd

    labels = np.asarray(labels, dtype=float)
    probability = np.asarray(probability, dtype=float)
    order = np.argsort(probability, kind="stable")
    rows = []
    for number, part in enumerate(np.array_split(order, min(bins, len(order))), start=1):
        rows.append({"bin": number, "mean_predicted": float(probability[part].mean()),
                     "observed_rate": float(labels[part].mean()), "count": len(part),
                     "positives": int(labels[part].sum())})
    return pd.DataFrame(rows, columns=["bin", "mean_predicted", "observed_rate", "count", "positives"])


def figures(labels: np.ndarray, probability: np.ndarray, ranking: np.ndarray) -> dict[str, Any]:
    """Every figure of one candidate on one set of labelled accounts."""
    import numpy as np

    labels = np.asarray(labels, dtype=int)
    return {"labelled": len(labels), "positives": int(labels.sum()),
            "auc": auc(labels, ranking), "pr_auc": pr_auc(labels, ranking),
            "brier": brier(labels, probability), "lift_top_decile": top_decile_lift(labels, ranking),
            "base_rate": float(labels.mean()) if len(labels) else float("nan")}


def _both(labels: np.ndarray) -> bool:
    import numpy as np

    values = np.asarray(labels)
    return bool(len(values)) and 0 < values.sum() < len(values)
