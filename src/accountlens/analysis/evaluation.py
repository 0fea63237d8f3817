"""The rolling-origin backtest (docs/prediction.md) shared by `backtest` and `predict`: at each
test cut-off every candidate is trained exactly as `predict` would have been on that day (only
the outcomes known then), scored on that day's customers, and compared with what happened
within the horizon; the health score is measured the same way. The figures choose the model."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accountlens.analysis import learning
from accountlens.analysis.labels import (
    cutoffs,
    early_shortfall,
    known_outcomes,
    labelled_at,
    needs,
    shortfall,
    training_set,
)
from accountlens.store.base import Store
from accountlens.store.cache import BoundedCache

if TYPE_CHECKING:
    import pandas as pd

SOURCES = (*learning.CANDIDATES, "health")
BACKTESTS = BoundedCache(32)


@dataclass
class Backtest:
    """The test-cut-off predictions of every candidate (columns `cutoff`, `account_id`, `label`,
    and per source `{source}_probability`, `{source}_rank`), what each rested on, and why any
    cut-off could not be measured."""

    outcome: str
    as_of: dt.date
    predictions: pd.DataFrame
    # test cut-off → its training set's labelled accounts and positives
    training: dict[dt.date, tuple[int, int]] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)  # candidate → calibration method(s)
    notes: list[str] = field(default_factory=list)
    min_class: int = 1  # fewer test outcomes of a class than this: no model is trusted

    @property
    def measured(self) -> list[dt.date]:
        return sorted(set(self.predictions["cutoff"]), reverse=True) if len(self.predictions) else []

    def pooled(self, source: str) -> dict[str, Any]:
        frame = self.predictions
        return learning.figures(frame["label"].to_numpy(), frame[f"{source}_probability"].to_numpy(),
                                frame[f"{source}_rank"].to_numpy())

    def per_cutoff(self, source: str) -> list[dict[str, Any]]:
        rows = []
        for cutoff in self.measured:
            part = self.predictions[self.predictions["cutoff"] == cutoff]
            rows.append({"cutoff": cutoff, **learning.figures(
                part["label"].to_numpy(), part[f"{source}_probability"].to_numpy(),
                part[f"{source}_rank"].to_numpy())})
        return rows

    def choice(self) -> tuple[str | None, str]:
        """The source `model = auto` uses and why: the candidate with the highest pooled AUC
        (ties: the simpler, logistic regression), if that AUC beats the health score's and the
        test outcomes hold at least `min_class` of each class; else the health score. None when
        the backtest measured nothing."""
        import math

        if not self.measured or math.isnan(self.pooled("health")["auc"]):
            return None, ("the backtest has nothing to test on: " + (
                "; ".join(self.notes) if self.notes else "the test cut-offs have a single class"))
        best = max(learning.CANDIDATES, key=lambda s: (self.pooled(s)["auc"], s == "logistic"))
        model, health = self.pooled(best)["auc"], self.pooled("health")["auc"]
        pooled = self.pooled("health")
        counts = (f"{len(self.measured)} test cut-off(s), {pooled['labelled']} labelled accounts, "
                  f"{pooled['positives']} positive")
        negatives = pooled["labelled"] - pooled["positives"]
        if min(pooled["positives"], negatives) < self.min_class:
            # a handful of test outcomes decides nothing: AUC on 6 positives swings by ±0.15
            return "health", (f"the backtest rests on too few outcomes to prefer a model "
                              f"({counts}; fewer than prediction.min_class = {self.min_class} of "
                              f"a class): the health score is used")
        if model > health:
            return best, (f"{learning.MODEL_NAMES[best]} chosen by the backtest: pooled AUC "
                          f"{model:.3f} vs the health score's {health:.3f} ({counts})")
        return "health", (f"no model beats the health score in the backtest (best: "
                          f"{learning.MODEL_NAMES[best]}, pooled AUC {model:.3f} vs the health "
                          f"score's {health:.3f}; {counts}): the health score is used")


def origins(as_of: dt.date, settings: Any) -> list[dt.date]:
    """t_j = as_of − horizon_days − j · cutoff_step_days, j < backtest_cutoffs."""
    prediction = settings.prediction
    return cutoffs(as_of, prediction, prediction.backtest_cutoffs)


def backtest(store: Store, settings: Any, outcome: str, as_of: dt.date) -> Backtest:
    """The rolling-origin backtest as of `as_of`; kept while the data and settings are unchanged."""
    def key() -> tuple:
        return (store.instance, store.data_version, as_of, settings.model_dump_json(), outcome)

    kept = BACKTESTS.get(key())
    if kept is None:
        kept = _backtest(store, settings, outcome, as_of)
        # keyed after computing: a first metric query builds the daily rollup, which moves the
        # data version (the data read are the same)
        BACKTESTS.put(key(), kept)
    return kept


def _backtest(store: Store, settings: Any, outcome: str, as_of: dt.date) -> Backtest:
    import pandas as pd

    prediction = settings.prediction
    outcomes = known_outcomes(store, as_of)  # the latest window ends on as_of itself
    result = Backtest(outcome, as_of, pd.DataFrame(columns=["cutoff", "account_id", "label"]),
                      min_class=prediction.min_class)
    frames = []
    methods: dict[str, set[str]] = {}
    short = False
    for test_day in origins(as_of, settings):
        # trained as `predict` would have been on the test day: outcomes known then only
        counts = early_shortfall(outcome, test_day, outcomes, prediction)
        if counts is None:
            training = training_set(store, settings, outcome, test_day, outcomes)
            counts = shortfall(training, prediction)
        if counts is not None:
            result.notes.append(f"test cut-off {test_day} not measured: too few outcomes to "
                                f"learn {outcome} then ({counts})")
            short = True
            continue
        test = labelled_at(store, settings, outcome, [test_day], outcomes)
        if not test.labelled:
            result.notes.append(f"test cut-off {test_day} not measured: no labelled accounts on it")
            continue
        frame = test.frame[["cutoff", "account_id", "label"]].copy()
        for kind in learning.CANDIDATES:
            model = learning.fit(kind, training, prediction.seed)
            methods.setdefault(kind, set()).add(model.method)
            frame[f"{kind}_probability"] = model.probability(test.frame)
            frame[f"{kind}_rank"] = frame[f"{kind}_probability"]
        health = learning.fit_health(training, settings.health)
        frame["health_probability"] = health.probability(test.frame)
        frame["health_rank"] = health.rank(test.frame)
        frames.append(frame)
        result.training[test_day] = (training.labelled, training.positives)
    if short:
        result.notes.append(needs(prediction))
    if frames:
        result.predictions = pd.concat(frames, ignore_index=True)
    result.methods = {k: "/".join(sorted(v)) for k, v in methods.items()}
    return result
