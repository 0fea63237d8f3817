"""`/api/v1/experiments...`: account-level experiments (docs/experiments.md) — the REST
equivalents of `accountlens experiments list|assign|power`. Reading needs "read", assigning
"admin"; the analysis itself is the generated `/api/v1/analyses/experiments`.

No `from __future__ import annotations` here: FastAPI must see the real types."""

import datetime as dt
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from accountlens.analysis.experiments import MIN_ALPHA, STRATA
from accountlens.analysis.registry import AnalysisError


class ExperimentVariant(BaseModel):
    experiment: str
    variant: str
    assigned_accounts: int = Field(description="accounts `assign` gave this variant")
    exposed_accounts: int = Field(description="accounts exposed to it up to as_of")
    first_exposure: str | None
    last_exposure: str | None
    sources: str = Field(description="where it is known from: assign, events, import")


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variants: list[str] = Field(min_length=2, max_length=26, description="e.g. [\"control\", \"treatment\"]")
    weights: list[float] | None = Field(default=None, max_length=26,
                                        description="one per variant (default: equal)")
    stratify: Literal[STRATA] | None = Field(  # type: ignore[valid-type]
        default=None, description="balance within strata of this account attribute")
    accounts: Literal["all", "customers"] = Field(default="all", description=(
        "all accounts, or customers (a subscription in force)"))
    description: str | None = Field(default=None, max_length=2000)


class StratumCount(BaseModel):
    stratum: str
    variant: str
    accounts: int
    new: int = Field(description="assigned by this request")


class AssignResult(BaseModel):
    experiment: str
    variants: list[str]
    weights: list[float]
    stratify_by: str | None
    assigned: int = Field(description="accounts assigned by this request")
    kept: int = Field(description="accounts assigned earlier (never moved)")
    strata: list[StratumCount]


class PowerResult(BaseModel):
    metric: str | None
    unit: str
    accounts_per_arm: float
    users_per_account: float
    icc: float
    sd: float
    baseline_mean: float | None
    alpha: float
    power: float
    design_effect: float
    effective_n_per_arm: float
    mde: float = Field(description="the minimum detectable effect, in the metric's units")
    relative_mde: float | None = Field(description="mde ÷ the baseline mean")
    effect: float | None
    accounts_needed: float | None = Field(description="with effect: accounts per arm (fractional)")


def experiment_router(reads: Callable, admin: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])

    @router.get("", response_model=list[ExperimentVariant], responses=errors)
    def experiments(as_of: dt.date | None = Query(default=None, description="exposures up to this day"),
                    live=Depends(reads)) -> list[dict]:
        """Every experiment known, one row per variant: accounts assigned and exposed, first
        and last exposure."""
        return live.workspace.experiments(as_of)

    @router.get("/power", response_model=PowerResult, responses=errors)
    def power(accounts_per_arm: int | None = Query(default=None, ge=2, le=10_000_000),
              effect: float | None = Query(default=None, ge=-1e12, le=1e12,
                                           description="gives the accounts needed"),
              users_per_account: float | None = Query(default=None, ge=1, le=1e6),
              icc: float | None = Query(default=None, ge=0, le=1),
              sd: float | None = Query(default=None, gt=0, le=1e12),
              metric: str | None = Query(default=None, description="estimate sd (ICC) from its data"),
              unit: Literal["account", "user"] = Query(default="account"),
              alpha: float = Query(default=0.05, ge=MIN_ALPHA, lt=0.5),
              power: float = Query(default=0.8, gt=0, lt=1),
              as_of: dt.date | None = Query(default=None),
              live=Depends(reads)) -> dict:
        """The minimum detectable effect with accounts_per_arm, or the accounts per arm needed
        to detect effect (give one)."""
        try:
            return live.workspace.experiment_power(accounts_per_arm, effect, users_per_account,
                                                   icc, sd, metric, unit, alpha, power, as_of)
        except AnalysisError as exc:
            raise HTTPException(400, str(exc)) from exc

    @router.post("/{name}/assign", response_model=AssignResult, responses=errors)
    def assign(name: str, body: AssignRequest, live=Depends(admin)) -> dict:
        """Assign accounts to the variants of experiment `name` (deterministic, stratified with
        `stratify`, persisted; a rerun assigns only new accounts). Audited as
        `experiment.assign`."""
        try:
            return live.workspace.assign_experiment(name, body.variants, body.weights,
                                                    body.stratify, body.accounts, body.description)
        except AnalysisError as exc:
            raise HTTPException(400, str(exc)) from exc

    return router
