"""The account health score (docs/health.md): configurable weighted factors, each scored 0–100
from an account feature (analysis/features.py) or an imported trait, with every factor's value,
score and contribution, the trend against `health.trend_days` before, the biggest lever, parent
accounts aggregated from their children (ARR-weighted), and the score's history.

A factor whose input is missing for an account has its weight redistributed over the others in
proportion to their weights (the row lists it under `missing`), so contributions always sum to
the score. Weights come from `[health.factors]`, overridden per segment by `[[health.segments]]`
(the first matching entry applies, for the factors it names).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis.features import AccountFilters, account_features, filtered
from accountlens.analysis.registry import Analysis, days_before, register, resolve_as_of
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

    from accountlens.config import HealthFactor, HealthSection

GRADES = ("healthy", "concerning", "poor")
IDENTITY = ("account_id", "parent_account_id", "plan", "industry", "region", "size_band", "owner",
            "customer", "arr")


class HealthRequest(AccountFilters):
    level: Literal["account"] = Field(default="account", description="accounts (the only level)")
    history: bool = Field(default=False, description=(
        "a series over time (health.history_points points, health.history_step_days apart, "
        "ending on as_of) instead of one day"))
    view: Literal["accounts", "factors"] = Field(default="accounts", description=(
        "accounts: one row per account; factors: one row per account and factor"))


# --- scoring (pure: features in, scores out) ---------------------------------------------------
def factor_score(factor: HealthFactor, values: pd.Series) -> pd.Series:
    """Each value scored 0–100 by the factor's curve: piecewise-linear through its points and
    flat beyond the ends, or a step function (the score of the last point at or below the
    value; below the first point, the first score). Missing values stay missing."""
    import numpy as np
    import pandas as pd

    xs = np.array([p[0] for p in factor.points], dtype=float)
    ys = np.array([p[1] for p in factor.points], dtype=float)
    raw = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
    if factor.steps:
        index = np.clip(np.searchsorted(xs, raw, side="right") - 1, 0, len(xs) - 1)
        scored = ys[index]
    else:
        scored = np.interp(raw, xs, ys)
    return pd.Series(np.where(np.isnan(raw), np.nan, scored), index=values.index)


def segment_weights(features: pd.DataFrame, health: HealthSection) -> pd.DataFrame:
    """Per account (rows aligned with `features`) the configured weight of each factor."""
    import pandas as pd

    weights = pd.DataFrame({name: float(f.weight) for name, f in health.factors.items()},
                           index=features.index)
    for segment in reversed(health.segments):  # the first matching entry applies
        matches = features[segment.by].astype("string") == segment.value
        for name, weight in segment.weights.items():
            weights.loc[matches.fillna(False).to_numpy(), name] = float(weight)
    return weights


def score_accounts(features: pd.DataFrame, health: HealthSection) -> pd.DataFrame:
    """Per account: `score`, `grade`, per factor `{f}_value`, `{f}_score`, `{f}_weight` (the
    share of the score it carries after redistribution) and `{f}_contribution`; `missing` (the
    factors without input) and the biggest lever (`lever`, and `lever_gain`: the points the score
    gains when that factor reaches 100). Rows aligned with `features`."""
    import numpy as np
    import pandas as pd

    names = list(health.factors)
    values = pd.DataFrame({n: _input(features, f) for n, f in health.factors.items()},
                          index=features.index)
    scores = pd.DataFrame({n: factor_score(f, values[n]) for n, f in health.factors.items()},
                          index=features.index)
    configured = segment_weights(features, health)
    weights = configured.where(scores.notna(), 0.0)
    total = weights.sum(axis=1)
    shares = weights.div(total.where(total > 0), axis=0)
    contributions = shares * scores.fillna(0.0)
    out = pd.DataFrame(index=features.index)
    out["score"] = contributions.sum(axis=1).where(total > 0)
    out["grade"] = grade(out["score"], health)
    missing = scores.isna() & (configured > 0)
    out["missing"] = [[n for n, m in zip(names, row) if m] for row in missing.to_numpy()]
    gains = shares * (100.0 - scores)
    has_gain = gains.fillna(0.0).max(axis=1) > 0
    out["lever"] = gains.fillna(-1.0).idxmax(axis=1).where(has_gain)
    out["lever_gain"] = gains.max(axis=1).where(has_gain, 0.0).where(total > 0)
    for name in names:
        out[f"{name}_value"] = values[name]
        out[f"{name}_score"] = scores[name]
        out[f"{name}_weight"] = shares[name].fillna(0.0)
        out[f"{name}_contribution"] = contributions[name].where(total > 0)
    return out.replace([np.inf, -np.inf], np.nan)


def grade(scores: pd.Series, health: HealthSection) -> pd.Series:
    """healthy at or above `healthy_from`, poor below `poor_below`, else concerning; `unknown`
    without a score."""
    import numpy as np
    import pandas as pd

    labels = np.select([scores >= health.healthy_from, scores < health.poor_below,
                        scores.notna()], ["healthy", "poor", "concerning"], "unknown")
    return pd.Series(labels, index=scores.index, dtype=object)


def _input(features: pd.DataFrame, factor: HealthFactor) -> pd.Series:
    import numpy as np
    import pandas as pd

    column = factor.input if not factor.input.startswith("trait:") else (
        "trait_" + factor.input.removeprefix("trait:"))
    if column not in features.columns:
        return pd.Series(np.nan, index=features.index)
    return pd.to_numeric(features[column], errors="coerce").astype(float)


def health_table(store: Store, settings: Any, as_of: dt.date) -> pd.DataFrame:
    """Every account's features and health as of `as_of` (point-in-time), one row each."""
    features = account_features(store, settings, as_of)
    scored = score_accounts(features, settings.health)
    return features.join(scored)


# --- parents, trend, history -----------------------------------------------------------------
def with_groups(table: pd.DataFrame, health: HealthSection) -> pd.DataFrame:
    """Adds `children` (the direct child account ids) and, for accounts with children,
    `group_score` / `group_grade`: the ARR-weighted mean score of the account and all its
    descendants that have a score (equal weights when none of them has ARR)."""
    import pandas as pd

    parents = table.set_index("account_id")["parent_account_id"].dropna()
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        if parent != child:
            children.setdefault(str(parent), []).append(str(child))
    score = table.set_index("account_id")["score"]
    arr = table.set_index("account_id")["arr"].fillna(0.0).clip(lower=0.0)
    group_scores: dict[str, float] = {}
    for parent in children:
        family = [a for a in _descendants(parent, children) if a in score.index]
        if parent in score.index:
            family.append(parent)
        scored = [a for a in family if pd.notna(score[a])]
        if not scored:
            continue
        weights = arr[scored]
        if weights.sum() <= 0:
            weights = weights * 0 + 1.0
        group_scores[parent] = float((score[scored] * weights).sum() / weights.sum())
    out = table.copy()
    out["children"] = [sorted(children.get(a, [])) for a in out["account_id"]]
    out["group_score"] = out["account_id"].map(group_scores).astype(float)
    out["group_grade"] = grade(out["group_score"], health).where(out["group_score"].notna())
    return out


def _descendants(parent: str, children: dict[str, list[str]]) -> list[str]:
    seen: list[str] = []
    stack = list(children.get(parent, []))
    while stack:  # a cycle in the CRM's hierarchy must not loop forever
        child = stack.pop()
        if child in seen or child == parent:
            continue
        seen.append(child)
        stack.extend(children.get(child, []))
    return seen


def _current(store: Store, settings: Any, as_of: dt.date) -> pd.DataFrame:
    health = settings.health
    now = with_groups(health_table(store, settings, as_of), health)
    before = health_table(store, settings, days_before(as_of, health.trend_days))
    previous = before.set_index("account_id")["score"]
    now["previous_score"] = now["account_id"].map(previous).astype(float)
    now["trend"] = now["score"] - now["previous_score"]
    return now


def _history(store: Store, settings: Any, as_of: dt.date, request: HealthRequest) -> pd.DataFrame:
    import pandas as pd

    health = settings.health
    frames = []
    for k in reversed(range(health.history_points)):
        day = days_before(as_of, k * health.history_step_days)
        frames.append(filtered(health_table(store, settings, day), request).assign(day=day))
    kept = [f for f in frames if len(f)] or frames[-1:]  # the columns, when no day has rows
    series = pd.concat(kept, ignore_index=True)
    series["trend"] = series.groupby("account_id")["score"].diff()
    return series


# --- the analysis ----------------------------------------------------------------------------
def _rows(table: pd.DataFrame, health: HealthSection, extra: tuple[str, ...]) -> pd.DataFrame:
    factor_columns = [f"{n}_{part}" for n in health.factors
                      for part in ("value", "score", "weight", "contribution")]
    head = [c for c in (*IDENTITY[:1], *extra, *IDENTITY[1:]) if c in table.columns]
    rest = [c for c in ("score", "grade", "previous_score", "trend", "lever", "lever_gain",
                        "missing", "group_score", "group_grade", "children") if c in table.columns]
    return table[[*head, *rest, *factor_columns]]


def _factor_rows(table: pd.DataFrame, health: HealthSection, extra: tuple[str, ...]) -> pd.DataFrame:
    """One row per account (and day) and factor."""
    import pandas as pd

    parts = []
    keys = ["account_id", *extra]
    for name, factor in health.factors.items():
        part = table[keys].copy()
        part["factor"] = name
        part["input"] = factor.input
        for column in ("value", "score", "weight", "contribution"):
            part[column] = table[f"{name}_{column}"].to_numpy()
        part["missing"] = part["score"].isna()
        part["score_total"] = table["score"].to_numpy()
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True)
    return rows.sort_values([*keys, "contribution"], ascending=[True] * len(keys) + [False],
                            na_position="last").reset_index(drop=True)


def run(store: Store, settings: Any, request: HealthRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    health = settings.health
    if request.history:
        table = _history(store, settings, as_of, request)
        extra: tuple[str, ...] = ("day",)
        table = table.sort_values(["account_id", "day"])
    else:
        table = filtered(_current(store, settings, as_of), request)
        extra = ()
        table = table.sort_values(["score", "account_id"], na_position="last")
    rows = (_factor_rows(table, health, extra) if request.view == "factors"
            else _rows(table, health, extra)).reset_index(drop=True)
    notes = []
    redistributed = table["missing"].map(len).gt(0).sum() if "missing" in table else 0
    if redistributed:
        notes.append(f"{redistributed} row(s) lack the input of some factor: its weight was "
                     "redistributed over the others (column missing)")
    unscored = int(table["score"].isna().sum()) if "score" in table else 0
    if unscored:
        notes.append(f"{unscored} row(s) have no input for any factor: no score (grade unknown)")
    rows.attrs["notes"] = notes
    rows.attrs["table_columns"] = [c for c in (
        "account_id", "day", "customer", "factor", "value", "score", "weight", "contribution", "grade",
        "trend", "lever", "lever_gain", "missing", "group_score") if c in rows.columns]
    return rows


register(Analysis(
    name="health",
    summary="Each account's health score (0–100) and grade from weighted factors, with every "
            "factor's value, score and contribution, the trend, the biggest lever and parent "
            "accounts aggregated from their children; --history for a series over time.",
    request=HealthRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
