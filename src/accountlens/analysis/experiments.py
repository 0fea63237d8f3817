"""Account-level experiments (docs/experiments.md): the effect of each variant against the
control on a metric or an outcome, with the account as the unit of randomization — standard
errors clustered by account (CR2 by default), CUPED with the pre-exposure value, a sample-ratio
check and multiply-exposed accounts left out — plus assignment and power.

Point-in-time (SPEC §8): exposures before the end of as_of, the metric as of as_of, outcomes
dated on or before it. The statistics are analysis/experiment_stats.py's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis.accounts import band_label
from accountlens.analysis.registry import (
    Analysis,
    AnalysisError,
    AnalysisRequest,
    NotFound,
    day_end,
    register,
    resolve_as_of,
)
from accountlens.metrics.registry import MetricError, metric_request
from accountlens.metrics.registry import get as get_metric
from accountlens.metrics.registry import run as run_metric
from accountlens.model import exposures
from accountlens.model.entities import OUTCOME_KINDS
from accountlens.store.base import Store, WritableStore

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The columns of a result, in this order (`users` only with unit=user).
COLUMNS = ("variant", "accounts", "mean", "effect", "relative_lift", "ci_low", "ci_high",
           "p_value", "df", "method", "srm_p_value", "srm_mismatch", "multiple_exposure")
STRATA = ("size_band", "arr")
# Bands of ARR in force (currency units) that `assign --stratify arr` balances within.
ARR_BANDS = [10_000, 50_000, 250_000]
FEW_ACCOUNTS = 50  # per arm: below it, small-sample corrections matter (CR2, Satterthwaite df)
# The smallest significance level taken: below it the t quantiles with few accounts overflow, and no
# real test needs it (the fuzz test sent 5e-324 and the power solver never ended).
MIN_ALPHA = 1e-6
OUTCOME_LOOKBACK_DAYS = 365  # the CUPED covariate of an outcome: its count in the year before

Outcome = Literal[OUTCOME_KINDS]  # type: ignore[valid-type]


class ExperimentsRequest(AnalysisRequest):
    level: Literal["account"] = Field(default="account", description="the unit of randomization")
    experiment: str = Field(description="the experiment (its id or name in the exposures)")
    metric: str | None = Field(default=None, description=(
        "a registered metric, per account (per user with unit=user) as of as_of"))
    outcome: Outcome | None = Field(default=None, description=(
        "instead of a metric: whether the account had this outcome after its first exposure"))
    outcome_value: Literal["count", "arr"] = Field(default="count", description=(
        "outcome: count (1 if it happened, else 0) or arr (the sum of its arr_delta)"))
    method: Literal["cr2", "cr1", "randomization"] = Field(default="cr2", description=(
        "cluster-robust CR2 (Satterthwaite df), CR1, or a randomization test over accounts"))
    cuped: bool = Field(default=True, description=(
        "adjust with the pre-exposure value (CUPED) to narrow the intervals"))
    control: str | None = Field(default=None, description=(
        "the control variant (default: one named control, else the first by name)"))
    unit: Literal["account", "user"] = Field(default="account", description=(
        "account: one value per account; user: per user, clustered by account"))
    alpha: float = Field(default=0.05, ge=MIN_ALPHA, lt=0.5,
                         description="1 − the intervals' confidence")
    include_multiple: bool = Field(default=False, description=(
        "keep accounts exposed to several variants (under their first exposure's variant)"))


@dataclasses.dataclass
class _Data:
    """What the estimates are computed from: one row per observation (account or user)."""

    frame: pd.DataFrame  # account_id, variant, y, x (covariate, or NaN), [user_id]
    notes: list[str]


def _value_column(frame: pd.DataFrame, name: str, key: str) -> str:
    """The column of a metric's rows that holds its value."""
    if name in frame.columns:
        return name
    numeric = [c for c in frame.columns if c != key and not c.endswith("_name")
               and frame[c].dtype.kind in "fiub"]
    if not numeric:
        raise AnalysisError(f"metric {name} has no numeric value column to compare")
    return numeric[0]


def metric_values(store: Store, settings: Any, name: str, level: str,
                  day: dt.date) -> pd.Series:
    """`name` per account (level account) or per user (level user) as of `day`."""
    import pandas as pd

    try:
        metric = get_metric(name)
    except MetricError as exc:
        raise AnalysisError(str(exc)) from exc
    if not metric.tabular:
        raise AnalysisError(f"metric {name} has several rows per {level}; compare a metric with "
                            "one value per account, e.g. mau, depth, seat_utilization")
    if level not in metric.levels:
        raise AnalysisError(f"metric {name} has no {level} level (it has "
                            f"{', '.join(metric.levels)}); use unit=account")
    try:
        rows = run_metric(store, settings.metrics, settings.analysis,
                          metric_request(name, level, day, {}, {})).frame
    except MetricError as exc:
        raise AnalysisError(f"metric {name}: {exc}") from exc
    key = f"{level}_id"
    if rows.empty:
        return pd.Series(dtype=float)
    column = _value_column(rows, name, key)
    return pd.to_numeric(rows.set_index(key)[column], errors="coerce").astype(float)


def _exposed(store: Store, request: ExperimentsRequest, as_of: dt.date,
             notes: list[str]) -> pd.DataFrame:
    """The exposed accounts (account_id, variant, first_exposed_at), multiply-exposed ones left
    out unless asked for; `multiple` in attrs: variant → accounts left out for it."""
    found = exposures.account_exposures(store, request.experiment, day_end(as_of))
    if found.empty:
        known = sorted({r["experiment"] for r in exposures.experiments_overview(
            store, day_end(as_of))})
        if exposures.design(store, request.experiment) is not None:
            raise AnalysisError(f"experiment {request.experiment!r} has no exposures up to "
                                f"{as_of}")
        raise NotFound(f"unknown experiment {request.experiment!r}: no exposures up to "
                            f"{as_of}" + (f"; known: {', '.join(known)}" if known else
                                          " (send Experiment Viewed events or import exposures)"))
    several = found[found["variants"].map(len) > 1]
    multiple: dict[str, int] = {}
    for variants in several["variants"]:
        for variant in variants:
            multiple[variant] = multiple.get(variant, 0) + 1
    if len(several):
        shown = ", ".join(several["account_id"].head(5)) + (", …" if len(several) > 5 else "")
        what = ("kept under the variant of their first exposure" if request.include_multiple
                else "left out (include_multiple keeps them)")
        notes.append(f"{len(several)} account(s) were exposed to several variants ({shown}): "
                     f"{what}")
        if not request.include_multiple:
            found = found[found["variants"].map(len) == 1]
    frame = found.rename(columns={"first_variant": "variant"})[
        ["account_id", "variant", "first_exposed_at"]].reset_index(drop=True)
    frame.attrs["multiple"] = multiple
    return frame


def _outcome_values(store: Store, exposed: pd.DataFrame, request: ExperimentsRequest,
                    as_of: dt.date, before: dt.date) -> tuple[pd.Series, pd.Series]:
    """Per exposed account: the outcome after its first exposure up to as_of, and the same in
    the OUTCOME_LOOKBACK_DAYS before `before` (the covariate)."""
    rows = store.df("SELECT account_id, date, coalesce(arr_delta, 0) AS arr FROM outcomes "
                    "WHERE kind = ? AND date <= ?", [request.outcome, as_of])
    rows = rows[rows["account_id"].isin(exposed["account_id"])]
    starts = exposed.set_index("account_id")["first_exposed_at"].map(
        lambda t: t.astimezone(dt.UTC).date())
    rows = rows.assign(start=rows["account_id"].map(starts))
    after = rows[rows["date"] > rows["start"]]
    earlier = rows[(rows["date"] < before)
                   & (rows["date"] >= before - dt.timedelta(days=OUTCOME_LOOKBACK_DAYS))]
    ids = exposed["account_id"]
    if request.outcome_value == "arr":
        y = after.groupby("account_id")["arr"].sum()
        x = earlier.groupby("account_id")["arr"].sum()
    else:
        y = after.groupby("account_id").size().clip(upper=1)
        x = earlier.groupby("account_id").size()
    return (y.reindex(ids, fill_value=0).astype(float).set_axis(ids),
            x.reindex(ids, fill_value=0).astype(float).set_axis(ids))


def _user_accounts(store: Store, end: dt.datetime) -> pd.Series:
    """user → the account their active events up to `end` are most attributed to (of two
    with as many events, the first by id: the same on every engine)."""
    rows = store.df(
        """SELECT user_id, account_id FROM (
               SELECT user_id, account_id, count(*) AS n FROM events
               WHERE type IN ('track', 'page', 'screen') AND user_id IS NOT NULL
                 AND account_id IS NOT NULL AND timestamp < $end GROUP BY ALL)
           QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY n DESC, account_id) = 1""",
        {"end": end})
    return rows.set_index("user_id")["account_id"]


def _data(store: Store, settings: Any, request: ExperimentsRequest, as_of: dt.date) -> _Data:
    import numpy as np

    notes: list[str] = []
    exposed = _exposed(store, request, as_of, notes)
    first_day = min(t.astimezone(dt.UTC).date() for t in exposed["first_exposed_at"])
    before = first_day - dt.timedelta(days=1)
    if request.outcome is not None:
        y, x = _outcome_values(store, exposed, request, as_of, first_day)
        frame = exposed.assign(y=exposed["account_id"].map(y), x=exposed["account_id"].map(x))
        notes.append(f"outcome: {request.outcome} ({request.outcome_value}) dated after each "
                     f"account's first exposure, up to {as_of}; covariate: the same in the "
                     f"{OUTCOME_LOOKBACK_DAYS} days before {first_day}")
    else:
        assert request.metric is not None
        level = request.unit
        y = metric_values(store, settings, request.metric, level, as_of)
        x = (metric_values(store, settings, request.metric, level, before) if request.cuped
             else y.iloc[0:0])
        if level == "user":
            owner = _user_accounts(store, day_end(as_of))
            users = owner[owner.isin(exposed["account_id"])].rename("account_id").reset_index()
            frame = users.merge(exposed, on="account_id")
            frame = frame.assign(y=frame["user_id"].map(y), x=frame["user_id"].map(x))
        else:
            frame = exposed.assign(y=exposed["account_id"].map(y),
                                   x=exposed["account_id"].map(x))
        missing = frame["y"].isna()
        if missing.any():
            notes.append(f"{int(missing.sum())} exposed {level}(s) have no value of "
                         f"{request.metric} as of {as_of}: left out")
            frame = frame[~missing]
        notes.append(f"metric: {request.metric} per {level} as of {as_of}; covariate: the same "
                     f"as of {before}, the day before the first exposure")
    frame = frame.reset_index(drop=True)
    frame.attrs["multiple"] = exposed.attrs["multiple"]
    frame.attrs["exposed_counts"] = exposed["variant"].value_counts().to_dict()
    if not request.cuped:
        frame["x"] = np.nan
    return _Data(frame, notes)


def _covariate(frame: pd.DataFrame, notes: list[str], cuped: bool) -> np.ndarray | None:
    """The CUPED covariate (missing values filled with the mean), or None (said in notes)."""
    import numpy as np

    from accountlens.analysis import experiment_stats as stats

    if not cuped:
        return None
    x = frame["x"].astype(float)
    if x.notna().sum() < 2 or float(x.std(ddof=0) if x.notna().any() else 0) == 0.0:
        notes.append("CUPED skipped: the pre-exposure covariate has no variance")
        return None
    filled = x.fillna(x.mean()).to_numpy()
    y = frame["y"].to_numpy(dtype=float)
    theta = float(stats.cuped_theta(y, filled))
    adjusted = y - theta * (filled - filled.mean())
    var_y = float(np.var(y, ddof=1))
    reduction = 1 - float(np.var(adjusted, ddof=1)) / var_y if var_y > 0 else 0.0
    filled_note = (f"; {int(x.isna().sum())} without a pre-exposure value took its mean"
                   if x.isna().any() else "")
    notes.append(f"CUPED: theta {theta:.4g}, variance reduced by {reduction:.0%}{filled_note}")
    return filled


def _control(request: ExperimentsRequest, variants: Sequence[str]) -> str:
    if request.control is not None:
        if request.control not in variants:
            raise AnalysisError(f"control {request.control!r} is not a variant of "
                                f"{request.experiment!r} (its variants: {', '.join(variants)})")
        return request.control
    return "control" if "control" in variants else sorted(variants)[0]


def run(store: Store, settings: Any, request: ExperimentsRequest) -> pd.DataFrame:
    import pandas as pd

    from accountlens.analysis import experiment_stats as stats

    if (request.metric is None) == (request.outcome is None):
        raise AnalysisError("name exactly one of metric (a registered metric) or outcome ("
                            + ", ".join(OUTCOME_KINDS) + ") to compare the variants on, "
                            + ("not both" if request.metric else "none given"))
    if request.account is not None:
        raise AnalysisError("an experiment compares accounts: it cannot be restricted to one "
                            "account (leave out account)")
    if request.outcome is not None and request.unit == "user":
        raise AnalysisError("outcomes are per account: use unit=account with an outcome")
    as_of = resolve_as_of(store, request.as_of)
    data = _data(store, settings, request, as_of)
    frame, notes = data.frame, data.notes
    counts = frame.groupby("variant")["account_id"].nunique()
    variants = sorted(frame.attrs["exposed_counts"])
    for variant in variants:
        if counts.get(variant, 0) < 2:
            raise AnalysisError(
                f"variant {variant!r} of {request.experiment!r} has {counts.get(variant, 0)} "
                "account(s) to compare (at least 2 per variant are needed)")
    control = _control(request, variants)
    order = [control, *[v for v in variants if v != control]]

    srm = _sample_ratio(store, request.experiment, frame.attrs["exposed_counts"], order)
    notes.insert(0, _srm_note(srm))
    covariate = _covariate(frame, notes, request.cuped)
    user_level = request.unit == "user"
    rows = []
    control_rows = frame["variant"] == control
    for variant in order:
        mine = frame["variant"] == variant
        row: dict[str, Any] = {
            "variant": variant, "accounts": int(frame.loc[mine, "account_id"].nunique()),
            "mean": float(frame.loc[mine, "y"].mean()), "effect": 0.0,
            "relative_lift": math.nan, "ci_low": math.nan, "ci_high": math.nan,
            "p_value": math.nan, "df": math.nan, "method": request.method}
        if variant != control:
            keep = (mine | control_rows).to_numpy()
            part = frame[keep]
            estimate = stats.compare(
                part["y"].to_numpy(dtype=float), (part["variant"] == variant).to_numpy(),
                clusters=part["account_id"].to_numpy() if user_level else None,
                covariate=covariate[keep] if covariate is not None else None,
                method=request.method, alpha=request.alpha)
            row.update(effect=estimate.effect, relative_lift=estimate.relative_lift,
                       ci_low=estimate.ci_low, ci_high=estimate.ci_high,
                       p_value=estimate.p_value, df=estimate.df, method=estimate.method)
            if user_level:
                warning = stats.user_level_bias_warning(
                    part["y"].to_numpy(dtype=float), (part["variant"] == variant).to_numpy(),
                    part["account_id"].to_numpy())
                if warning:
                    notes.append(f"{variant}: {warning}")
        row.update(srm_p_value=srm.p_value, srm_mismatch=bool(srm.mismatch),
                   multiple_exposure=int(frame.attrs["multiple"].get(variant, 0)))
        if user_level:
            row["users"] = int(mine.sum())
        rows.append(row)
    result = pd.DataFrame(rows, columns=[*COLUMNS, *(["users"] if user_level else [])])
    result["method"] = rows[-1]["method"]  # the control's row too: the comparisons' label
    for column in ("mean", "effect", "relative_lift", "ci_low", "ci_high", "p_value", "df",
                   "srm_p_value"):
        result[column] = result[column].astype(float)
    smallest = min(int(counts.get(v, 0)) for v in order)
    if smallest < FEW_ACCOUNTS:
        notes.append(
            f"few accounts (the smallest arm has {smallest}, fewer than {FEW_ACCOUNTS}): "
            + ("CR2 with Satterthwaite df" if request.method == "cr2" else
               f"{request.method} may be optimistic; cr2 (CR2 with Satterthwaite df) is safer"))
    unexposed = _assigned_unexposed(store, request.experiment, frame)
    if unexposed:
        notes.append(f"{unexposed} assigned account(s) were not exposed by {as_of}: not analysed")
    result.attrs["notes"] = notes
    result.attrs["table_columns"] = [*COLUMNS[:8], *(["users"] if user_level else [])]
    return result


def _sample_ratio(store: Store, experiment: str, counts: dict[str, int],
                  order: Sequence[str]) -> Any:
    from accountlens.analysis import experiment_stats as stats

    design = exposures.design(store, experiment)
    observed = {v: int(counts.get(v, 0)) for v in order}
    weights = None
    if design is not None:
        observed.update({v: int(counts.get(v, 0)) for v in design.variants})
        weights = {v: design.shares.get(v, 0.0) for v in observed}
        if not all(w > 0 for w in weights.values()):  # a variant the design does not have
            weights = None
    return stats.sample_ratio_check(observed, weights)


def _srm_note(srm: Any) -> str:
    counts = ", ".join(f"{v} {n}" for v, n in srm.observed.items())
    expected = ", ".join(f"{v} {share:.0%}" for v, share in srm.expected_share.items())
    if srm.mismatch:
        return (f"SAMPLE RATIO MISMATCH (p = {srm.p_value:.2g}): accounts {counts} against the "
                f"expected {expected}; assignment or exposure logging is broken, so the effects "
                "cannot be trusted")
    return (f"sample ratio: accounts {counts} against the expected {expected} "
            f"(p = {srm.p_value:.2g}): no mismatch")


def _assigned_unexposed(store: Store, experiment: str, frame: pd.DataFrame) -> int:
    assigned = exposures.assigned_accounts(store, experiment)
    return len(set(assigned) - set(frame["account_id"]))


register(Analysis(
    name="experiments",
    summary="Account-level experiments: each variant's effect on a metric or an outcome against "
            "the control, with account-clustered (CR2) intervals, CUPED, a sample-ratio check and "
            "multiply-exposed accounts left out.",
    request=ExperimentsRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
    command="experiments analyze",
))


# --- assignment ---------------------------------------------------------------------------------
def _strata(store: Store, settings: Any, day: dt.date, by: str | None) -> dict[str, str | None]:
    """account → its stratum (`by`: size_band or arr, on `day`), for every account."""
    rows = store.rows(
        """SELECT a.account_id, a.employees, s.arr, s.account_id IS NOT NULL AS customer
           FROM accounts a LEFT JOIN (
               SELECT account_id, sum(coalesce(arr, 0)) AS arr FROM subscriptions
               WHERE start_date <= $day AND (end_date IS NULL OR end_date > $day)
               GROUP BY ALL) s USING (account_id)
           ORDER BY a.account_id""", {"day": day})
    strata: dict[str, str | None] = {}
    for row in rows:
        if by == "size_band":
            value = row["employees"]
            strata[row["account_id"]] = ("(none)" if value is None else
                                         band_label(value, settings.metrics.size_bands))
        elif by == "arr":
            value = row["arr"]
            strata[row["account_id"]] = ("(no contract)" if value is None else
                                         band_label(value, ARR_BANDS))
        else:
            strata[row["account_id"]] = None
    return strata


def _customers(store: Store, day: dt.date) -> set[str]:
    return {r["account_id"] for r in store.rows(
        "SELECT DISTINCT account_id FROM subscriptions WHERE start_date <= ? "
        "AND (end_date IS NULL OR end_date > ?)", [day, day])}


def assign(store: WritableStore, settings: Any, experiment: str, variants: Sequence[str],
           weights: Sequence[float] | None = None, stratify: str | None = None,
           accounts: str = "all", created_by: str = "cli",
           description: str | None = None) -> dict[str, Any]:
    """Assign accounts to the variants of `experiment` (docs/experiments.md, "Assignment"):
    deterministic by account, balanced within strata with `stratify`, persisted; a rerun keeps
    every earlier assignment and assigns only accounts new since. `accounts`: all, or
    customers (a subscription in force on the default as-of day)."""
    if stratify is not None and stratify not in STRATA:
        raise AnalysisError(f"stratify by one of {', '.join(STRATA)}, not {stratify!r}")
    if accounts not in ("all", "customers"):
        raise AnalysisError(f"accounts must be all or customers, not {accounts!r}")
    day = resolve_as_of(store, None)
    strata = _strata(store, settings, day, stratify)
    if accounts == "customers":
        live = _customers(store, day)
        strata = {a: s for a, s in strata.items() if a in live}
    stored = exposures.design(store, experiment.strip())
    if stored is not None and weights is None:  # a rerun need not repeat the weights
        weights = list(stored.weights)
    try:
        new = exposures.checked_design(experiment, variants, weights, stratify)
        done = exposures.assign(store, new, strata, created_by, description)
    except exposures.ExperimentError as exc:
        raise AnalysisError(str(exc)) from exc
    design: exposures.Design = done["design"]
    fresh: dict[tuple[str, str], int] = {}
    for account, variant in done["new"].items():
        key = (strata.get(account) or "(all)", variant)
        fresh[key] = fresh.get(key, 0) + 1
    rows = [{**r, "new": fresh.get((r["stratum"], r["variant"]), 0)}
            for r in exposures.assignment_counts(store, design.experiment)]
    return {"experiment": design.experiment, "variants": list(design.variants),
            "weights": list(design.weights), "stratify_by": design.stratify_by,
            "assigned": len(done["new"]), "kept": done["kept"], "strata": rows}


def experiments_list(store: Store, as_of: dt.date | None = None) -> list[dict[str, Any]]:
    """Every experiment known, one row per variant (model/exposures.py)."""
    day = resolve_as_of(store, as_of)
    return exposures.experiments_overview(store, day_end(day))


# --- power --------------------------------------------------------------------------------------
POWER_COLUMNS = ("metric", "unit", "accounts_per_arm", "users_per_account", "icc", "sd",
                 "baseline_mean", "alpha", "power", "design_effect", "effective_n_per_arm",
                 "mde", "relative_mde", "effect", "accounts_needed")


def _estimated(store: Store, settings: Any, metric: str, unit: str,
               as_of: dt.date | None) -> dict[str, Any]:
    """sd, users per account, ICC, mean and cluster-size CV of `metric` in the data."""
    import numpy as np

    from accountlens.analysis import experiment_stats as stats

    day = resolve_as_of(store, as_of)
    values = metric_values(store, settings, metric, unit, day).dropna()
    if unit == "account":
        if len(values) < 2:
            raise AnalysisError(f"metric {metric} has fewer than 2 account values as of {day}")
        return {"sd": float(values.std(ddof=1)), "users_per_account": 1.0, "icc": 0.0,
                "baseline_mean": float(values.mean()), "cluster_size_cv": 0.0}
    owner = _user_accounts(store, day_end(day))
    users = values[values.index.isin(owner.index)]
    clusters = owner.reindex(users.index).to_numpy()
    if len(users) < 4 or len(set(clusters)) < 2:
        raise AnalysisError(f"metric {metric} has too few user values as of {day} to estimate")
    sizes = np.unique(clusters, return_counts=True)[1]
    return {"sd": float(users.std(ddof=1)), "users_per_account": float(sizes.mean()),
            "icc": max(0.0, float(stats.icc(users.to_numpy(dtype=float), clusters))),
            "baseline_mean": float(users.mean()),
            "cluster_size_cv": float(sizes.std(ddof=0) / sizes.mean())}


def power(store: Store, settings: Any, accounts_per_arm: int | None = None,
          effect: float | None = None, users_per_account: float | None = None,
          icc: float | None = None, sd: float | None = None, metric: str | None = None,
          unit: str = "account", alpha: float = 0.05, power: float = 0.8,
          as_of: dt.date | None = None) -> dict[str, Any]:
    """The minimum detectable effect with `accounts_per_arm`, or the accounts per arm needed
    to detect `effect`; the inputs given, else (with `metric`) estimated from the data."""
    from accountlens.analysis import experiment_stats as stats

    if (accounts_per_arm is None) == (effect is None):
        raise AnalysisError("give exactly one of accounts_per_arm (for the minimum detectable "
                            "effect) or effect (for the accounts needed)")
    if unit not in ("account", "user"):
        raise AnalysisError(f"unit must be account or user, not {unit!r}")
    if not MIN_ALPHA <= alpha < 0.5:  # power's own range: experiment_stats checks it
        raise AnalysisError(f"alpha must be in [{MIN_ALPHA:g}, 0.5), got {alpha:g}")
    inputs: dict[str, Any] = {"sd": 1.0, "users_per_account": 1.0, "icc": 0.0,
                              "baseline_mean": None, "cluster_size_cv": 0.0}
    if metric is not None:
        inputs.update(_estimated(store, settings, metric, unit, as_of))
    given = {"sd": sd, "users_per_account": users_per_account, "icc": icc}
    inputs.update({k: float(v) for k, v in given.items() if v is not None})
    if (not 0 < inputs["sd"] < 1e15 or not 1 <= inputs["users_per_account"] <= 1e6
            or not 0 <= inputs["icc"] <= 1):
        raise AnalysisError("sd must be positive, users_per_account at least 1 and icc in [0, 1]")
    shared = {"users_per_account": inputs["users_per_account"], "icc": inputs["icc"],
              "sd": inputs["sd"], "alpha": alpha, "power": power,
              "cluster_size_cv": inputs["cluster_size_cv"]}
    if effect is not None and not (math.isfinite(effect) and abs(effect) >= inputs["sd"] / 1000):
        raise AnalysisError(f"effect must be a number of at least a thousandth of the sd "
                            f"({inputs['sd']:g}) in size: smaller ones need more than ten million "
                            "accounts per arm")
    needed = None
    try:
        if effect is not None:
            needed = float(stats.accounts_needed(effect, **shared))
            accounts_per_arm = max(2, math.ceil(needed))
        assert accounts_per_arm is not None
        if accounts_per_arm < 2:
            raise AnalysisError("accounts_per_arm must be at least 2")
        result = stats.minimum_detectable_effect(accounts_per_arm,
                                                 baseline_mean=inputs["baseline_mean"], **shared)
    except ValueError as exc:  # an input the statistics refuse, said in its words
        if isinstance(exc, AnalysisError):
            raise
        raise AnalysisError(str(exc)) from exc
    row: dict[str, Any] = dict.fromkeys(POWER_COLUMNS)
    row.update({k: v for k, v in dataclasses.asdict(result).items() if k in POWER_COLUMNS})
    row.update(metric=metric, unit=unit, baseline_mean=inputs["baseline_mean"], effect=effect,
               accounts_needed=needed)
    return row
