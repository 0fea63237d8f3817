"""Labels and training sets for the outcome models (docs/prediction.md): which accounts are
eligible at a cut-off day, what their churn / renewal / expansion label is, and the labelled
rows a model learns from — every one read as known on the day asked about, never later."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accountlens.analysis.features import NUMERIC
from accountlens.analysis.health import health_table
from accountlens.analysis.registry import days_before
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

    from accountlens.config import PredictionSection

OUTCOMES = ("churn", "renewal", "expansion")
# A renewal decision: the account renewed, grew, shrank or left.
DECISIONS = ("renewal", "expansion", "contraction", "churn")

# Only outcomes dated on or before the day asked about are ever read (SPEC §8).
_OUTCOMES_SQL = """
SELECT account_id, kind, date FROM outcomes
WHERE date <= $as_of AND kind IN ('renewal', 'expansion', 'contraction', 'churn')
ORDER BY account_id, date, kind
"""


def known_outcomes(store: Store, as_of: dt.date) -> pd.DataFrame:
    """The decision outcomes dated on or before `as_of` (account_id, kind, date)."""
    import pandas as pd

    frame = store.df(_OUTCOMES_SQL, {"as_of": as_of})
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    return frame


def cutoffs(as_of: dt.date, prediction: PredictionSection, count: int) -> list[dt.date]:
    """The `count` cut-offs whose labels are complete on `as_of`, latest first:
    as_of − horizon_days − k · cutoff_step_days."""
    days = [days_before(as_of, prediction.horizon_days + k * prediction.cutoff_step_days)
            for k in range(count)]
    return list(dict.fromkeys(days))  # near the calendar's first day several clamp to it


def in_window(outcomes: pd.DataFrame, cutoff: dt.date, horizon_days: int) -> pd.DataFrame:
    """The outcomes dated in (cutoff, cutoff + horizon_days]."""
    last = cutoff + dt.timedelta(days=horizon_days)
    return outcomes[(outcomes["date"] > cutoff) & (outcomes["date"] <= last)]


def label(outcome: str, accounts: pd.Series, window: pd.DataFrame) -> pd.Series:
    """Each account's label (1.0, 0.0, or NaN when it is not labelled) from the outcomes of its
    window: churn and expansion label every account; renewal only those with a decision."""
    import numpy as np
    import pandas as pd

    def had(kinds: tuple[str, ...]) -> pd.Series:
        return accounts.isin(set(window.loc[window["kind"].isin(kinds), "account_id"]))

    if outcome == "churn":
        return had(("churn",)).astype(float)
    if outcome == "expansion":
        return had(("expansion",)).astype(float)
    if outcome == "renewal":
        stayed = (~had(("churn",))).astype(float)
        return pd.Series(np.where(had(DECISIONS), stayed, np.nan), index=accounts.index)
    raise ValueError(f"unknown outcome {outcome!r}; use one of {', '.join(OUTCOMES)}")


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """What a model learns from: every numeric account feature and the numeric account traits
    the health factors read (`trait_NAME` columns)."""
    traits = sorted(c for c in frame.columns if c.startswith("trait_"))
    return [c for c in (*NUMERIC, *traits) if c in frame.columns]


@dataclass(frozen=True)
class Labelled:
    """Labelled rows (features, health score, `cutoff`, `label`) at some cut-offs."""

    outcome: str
    frame: pd.DataFrame
    cutoffs: tuple[dt.date, ...]

    @property
    def labelled(self) -> int:
        return len(self.frame)

    @property
    def positives(self) -> int:
        return int(self.frame["label"].sum()) if len(self.frame) else 0

    @property
    def negatives(self) -> int:
        return self.labelled - self.positives

    def accounts(self, label: float) -> int:
        """How many different accounts have rows with this label."""
        return int(self.frame.loc[self.frame["label"] == label, "account_id"].nunique())

    def describe(self) -> str:
        span = (f" ({min(self.cutoffs)} to {max(self.cutoffs)})" if len(self.cutoffs) > 1
                else f" ({self.cutoffs[0]})" if self.cutoffs else "")
        return (f"{self.labelled} labelled rows ({self.positives} positive, {self.negatives} "
                f"negative; {self.accounts(1.0)} different accounts positive, "
                f"{self.accounts(0.0)} negative) at {len(self.cutoffs)} cut-off(s){span}")


def labelled_at(store: Store, settings: Any, outcome: str, cutoffs: list[dt.date],
                outcomes: pd.DataFrame) -> Labelled:
    """The eligible, labelled accounts at each cut-off (the customers on it), with their
    point-in-time features and health score. `outcomes` must hold only what was known when the
    labels are used; each window must end on or before that day."""
    import pandas as pd

    horizon = settings.prediction.horizon_days
    frames = []
    for cutoff in cutoffs:
        table = health_table(store, settings, cutoff)
        table = table[table["customer"].astype(bool)].reset_index(drop=True)
        table["label"] = label(outcome, table["account_id"], in_window(outcomes, cutoff, horizon))
        frames.append(table[table["label"].notna()].assign(cutoff=cutoff))
    frame = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame(columns=["account_id", "cutoff", "label"]))
    return Labelled(outcome, frame, tuple(cutoffs))


def training_set(store: Store, settings: Any, outcome: str, as_of: dt.date,
                 outcomes: pd.DataFrame) -> Labelled:
    """What a model trained as of `as_of` learns from: the labelled accounts at the training
    cut-offs, from the outcomes known on `as_of` (later ones are dropped here as well)."""
    prediction = settings.prediction
    known = outcomes[outcomes["date"] <= as_of]
    return labelled_at(store, settings, outcome,
                       cutoffs(as_of, prediction, prediction.max_training_cutoffs), known)


def window_accounts(outcome: str, outcomes: pd.DataFrame, days: list[dt.date],
                    horizon_days: int) -> tuple[int, int | None]:
    """At most how many different accounts the windows of `days` can label positive and
    negative, from the outcomes alone (None: not bounded by them): a cheap check before any
    feature is computed."""
    positives: set[Any] = set()
    negatives: set[Any] = set()
    for day in days:
        window = in_window(outcomes, day, horizon_days)
        for account, kinds in window.groupby("account_id")["kind"].agg(set).items():
            if outcome == "renewal":
                (negatives if "churn" in kinds else positives).add(account)
            elif outcome in kinds:
                positives.add(account)
    return len(positives), (len(negatives) if outcome == "renewal" else None)


def shortfall(training: Labelled, prediction: PredictionSection) -> str | None:
    """What `training` holds when it is too small to learn from (None when it is not): fewer
    labelled rows than `min_outcomes`, or fewer different accounts than `min_class` (two at
    least) in either class — an account's one churn labels it at several cut-offs, and those
    rows are not independent."""
    if (training.labelled >= prediction.min_outcomes
            and min(training.accounts(1.0), training.accounts(0.0)) >= max(prediction.min_class, 2)):
        return None
    return training.describe()


def early_shortfall(outcome: str, as_of: dt.date, outcomes: pd.DataFrame,
                    prediction: PredictionSection) -> str | None:
    """`shortfall` decided from the outcomes alone when they already rule a model out (so a
    workspace without outcomes answers at once), else None."""
    days = cutoffs(as_of, prediction, prediction.max_training_cutoffs)
    known = outcomes[outcomes["date"] <= as_of]
    positives, negatives = window_accounts(outcome, known, days, prediction.horizon_days)
    fewest = positives if negatives is None else min(positives, negatives)
    if fewest >= max(prediction.min_class, 2):
        return None
    counted = (f"{positives} account(s) with a positive" + (
        f" and {negatives} with a negative" if negatives is not None else "") + f" {outcome} label")
    return (f"the outcomes dated on or before {as_of} give at most {counted} in the {len(days)} "
            f"training windows ({min(days)} to "
            f"{max(days) + dt.timedelta(days=prediction.horizon_days)})")


def needs(prediction: PredictionSection) -> str:
    return (f"a model needs at least {prediction.min_outcomes} labelled rows and "
            f"{max(prediction.min_class, 2)} different accounts of each class "
            "(prediction.min_outcomes, prediction.min_class)")


def too_few(outcome: str, counts: str, prediction: PredictionSection) -> str:
    """The note for a training set too small: what it holds and what a model needs."""
    return f"too few outcomes to learn {outcome}: {counts}; {needs(prediction)}"
