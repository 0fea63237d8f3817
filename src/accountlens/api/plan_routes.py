"""`/api/v1/plan...`: the tracking plan (docs/quality.md, "Tracking plan") — the REST
equivalents of `accountlens plan show|import|check|violations`. Reading needs "read",
changing the plan "admin".

No `from __future__ import annotations` here: FastAPI must see the real types."""

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from accountlens.api.models import ErrorResponse
from accountlens.ingest import tracking_plan


class PlanVersion(BaseModel):
    version: int
    changed_by: str
    changed_at: str
    note: str | None
    plan: dict[str, Any] = Field(description='{"events": {NAME: SCHEMA}, "identify": SCHEMA, '
                                             '"group": SCHEMA}')


class PlanVersionSummary(BaseModel):
    version: int
    changed_by: str
    changed_at: str
    note: str | None
    events: int
    identify: bool
    group: bool


class PlanImport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: dict[str, Any] = Field(description='{"events": {NAME: JSON Schema of its properties}, '
                                             '"identify": schema of traits, "group": schema of traits}')
    note: str | None = Field(default=None, max_length=2000, description="what changed and why")


class PlanImported(BaseModel):
    version: int
    added: list[str]
    removed: list[str]
    changed: list[str]


class PlanCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[dict[str, Any]] = Field(max_length=10_000, description="Segment-format events")


class CheckedViolation(BaseModel):
    line: int = Field(description="the event's position in the list, from 1")
    message_id: str | None
    type: str
    event: str | None
    rule: str
    property: str | None
    message: str
    library: str | None
    library_version: str | None


class ViolationCount(BaseModel):
    event: str
    library: str | None
    library_version: str | None
    rule: str
    property: str | None
    violations: int
    events: int
    quarantined: int


class RecordedViolation(BaseModel):
    message_id: str
    type: str
    event: str | None
    rule: str
    property: str | None
    message: str
    library: str | None
    library_version: str | None
    plan_version: int
    quarantined: bool
    recorded_at: str


def plan_router(reads: Callable, admin: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/api/v1/plan", tags=["quality"])
    missing = {**errors, 404: {"model": ErrorResponse, "description": "no such plan version"}}

    @router.get("", response_model=PlanVersion, responses=missing)
    def show(version: int | None = Query(default=None, ge=1, description="default: the current one"),
             live=Depends(reads)) -> dict:
        """A version of the tracking plan (default the current one), with who changed it."""
        plan = tracking_plan.load_plan(live.workspace.store, version)
        if plan is None:
            raise HTTPException(404, "no tracking plan" + (f" version {version}" if version else
                                                           "; import one (POST /api/v1/plan)"))
        return {"version": plan.version, "changed_by": plan.changed_by,
                "changed_at": plan.changed_at, "note": plan.note, "plan": plan.document()}

    @router.get("/versions", response_model=list[PlanVersionSummary], responses=errors)
    def versions(live=Depends(reads)) -> list[dict]:
        """Every version of the plan: when, by whom, and what it holds."""
        return tracking_plan.plan_versions(live.workspace.store)

    @router.post("", response_model=PlanImported, status_code=201, responses=errors)
    def import_plan(body: PlanImport, live=Depends(admin)) -> dict:
        """Store a new version of the plan (its schemas checked first; 400 names the event and
        the problem). Audited as `plan.import`."""
        ws = live.workspace
        try:
            plan, changes = tracking_plan.store_plan(ws.store, body.plan, ws.actor.name, body.note)
        except tracking_plan.PlanError as exc:
            raise HTTPException(400, str(exc)) from exc
        ws.audit.record(ws.actor, "plan.import", "api",
                        {"version": plan.version, "events": len(plan.events), **changes})
        return {"version": plan.version, **changes}

    @router.post("/check", response_model=list[CheckedViolation], responses=missing)
    def check(body: PlanCheck, live=Depends(reads)) -> list[dict]:
        """Validate events against the current plan without loading them."""
        plan = tracking_plan.load_plan(live.workspace.store)
        if plan is None:
            raise HTTPException(404, "no tracking plan; import one (POST /api/v1/plan)")
        return tracking_plan.check_events(plan, body.events)

    @router.get("/violations", response_model=list[ViolationCount] | list[RecordedViolation],
                responses=errors)
    def violations(since: dt.datetime | None = Query(default=None, description="recorded at or after"),
                   event: str | None = Query(default=None, description="this event (identify / group: the type)"),
                   details: bool = Query(default=False, description="the individual violations"),
                   limit: int = Query(default=1000, ge=1, le=100_000),
                   live=Depends(reads)) -> list[dict]:
        """Violations recorded at load, counted by event, library and version, rule and
        property; with `details`, each one, newest first."""
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        return tracking_plan.violation_counts(live.workspace.store, since, event, details, limit)

    return router
