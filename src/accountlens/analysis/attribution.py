"""Outcome attribution (docs/attribution.md): who and what earned a renewal, an expansion, a
churn. Each outcome's value (1, or its ARR change) is credited to the touches before it inside
its account (analysis/touches.py) by one of ten models (analysis/credit_models.py,
analysis/data_driven.py), under the active rule set or a version named (analysis/rule_versions.py),
and summed per role, unit, user, feature or journey stage, with bootstrap intervals over
accounts. Credit always sums to the outcomes' value."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from accountlens.analysis.credit_models import MODELS, NO_TOUCH, attribute
from accountlens.analysis.registry import (
    Analysis,
    AnalysisError,
    AnalysisRequest,
    days_before,
    register,
    resolve_as_of,
)
from accountlens.analysis.rule_versions import rules_for
from accountlens.analysis.touches import CHANNELS, NULL_KINDS, journeys
from accountlens.model.entities import OUTCOME_KINDS
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd


class AttributionRequest(AnalysisRequest):
    level: Literal["account"] = Field(default="account", description="outcomes are accounts' (only level)")
    outcome: Literal[OUTCOME_KINDS] = Field(  # type: ignore[valid-type]
        default="renewal", description="the outcome whose value is credited")
    model: Literal[MODELS] = Field(default="linear", description="the credit model")  # type: ignore[valid-type]
    by: Literal[CHANNELS] = Field(  # type: ignore[valid-type]
        default="role", description="sum credit per this (user: per user id)")
    value: Literal["count", "arr"] = Field(
        default="count", description="each outcome is worth 1 (count) or the size of its ARR change (arr)")
    since: dt.date | None = Field(default=None, description=(
        "outcomes after this day (default: 365 days before as_of)"))
    rules_version: int | None = Field(default=None, ge=1, description=(
        "the attribution rule set version (default: the active one)"))
    resamples: int = Field(default=200, ge=0, le=10_000, description=(
        "bootstrap resamples of accounts for the intervals (0: none)"))
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="interval confidence")
    seed: int = Field(default=0, ge=0, description="seed of the bootstrap and of sampled Shapley values")


def run(store: Store, settings, request: AttributionRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    since = request.since or days_before(as_of, 365)
    if since >= as_of:
        raise AnalysisError(f"since ({since}) must be before as_of ({as_of})")
    version, rules = rules_for(store, request.rules_version)
    data = journeys(store, settings, rules, request.outcome, request.by, as_of, since, request.value,
                    request.account)
    credit = attribute(data.touches, data.journeys, request.model, rules,
                       resamples=request.resamples, confidence=request.confidence, seed=request.seed)
    converted = int(data.journeys["converted"].sum())
    column = "user_id" if request.by == "user" else request.by
    frame = credit.frame.rename(columns={"channel": column})
    frame.insert(0, "model", request.model)
    if request.by == "user":  # the untouched outcomes' row has no user
        frame[column] = frame[column].where(frame[column] != NO_TOUCH, None)
    frame.attrs["notes"] = [
        f"{converted} {request.outcome} outcomes after {since} through {as_of}, worth "
        f"{credit.total:,.2f} ({'ARR change' if request.value == 'arr' else 'one each'}); "
        f"rules: {'version ' + str(version) if version else 'the built-in defaults'}",
        *data.notes, *credit.notes]
    if request.model == "markov":  # the only model that reads the journeys that went another way
        nulls = len(data.journeys) - converted
        frame.attrs["notes"].append(
            f"{nulls} null journeys ({_null_description(request.outcome)}) in the Markov chain")
    if not converted:
        frame.attrs["notes"].append(f"no {request.outcome} outcomes in the period: nothing to credit")
    return frame


def _null_description(outcome: str) -> str:
    if outcome == "conversion":
        return "accounts active in the period and not converted by the as-of"
    return " and ".join(f"{kind} outcomes" for kind in NULL_KINDS[outcome])


register(Analysis(
    name="attribution",
    summary="Credit for each renewal, expansion, contraction, churn or conversion, given to the "
            "touches before it in its account by role, unit, user, feature or stage, under one of "
            "ten models, with bootstrap intervals over accounts.",
    request=AttributionRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
    command="attribution outcomes",
))
