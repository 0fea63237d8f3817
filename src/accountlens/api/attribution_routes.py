"""`/api/v1/attribution/rules…`: versioned attribution rule sets (docs/attribution.md, "Rule
sets") — the REST equivalents of `accountlens attribution rules list|show|create|edit|activate|
diff`. Reading needs "read"; creating, editing and activating a version "admin" (audited as
`attribution.rules.create|edit|activate`).

No `from __future__ import annotations` here: FastAPI must see the real types."""

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accountlens.analysis.registry import AnalysisError
from accountlens.analysis.rule_versions import RulesError, RuleVersion, UnknownRuleVersion
from accountlens.api.models import ErrorResponse

_VERSION = "a version number, or `active`"


class RuleVersionSummary(BaseModel):
    version: int
    name: str | None
    active: bool
    created_by: str
    created_at: str = Field(description="UTC")
    activated_at: str | None = Field(description="when it last became the active version (UTC)")
    note: str | None
    based_on: int | None


class RuleVersionDetail(RuleVersionSummary):
    rules: dict[str, Any] = Field(description="every field of the rule set (docs/attribution.md)")


class ActiveRules(BaseModel):
    version: int | None = Field(description="the active version; null: none is active")
    rules: dict[str, Any] = Field(description="its rules, or the built-in defaults")
    detail: RuleVersionDetail | None


class RuleChange(BaseModel):
    version: int
    action: str = Field(description="create, edit or activate")
    actor: str
    at: str = Field(description="UTC")
    detail: dict[str, Any] = Field(description="create / edit: the fields changed ([before, "
                                               "after]); activate: the version it replaced")


class RulesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, Any] = Field(default_factory=dict, description="rule set fields to set; the "
                                  "others are the defaults' (or `based_on`'s)")
    based_on: int | None = Field(default=None, ge=1, description="start from this version's rules")
    name: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000, description="what changed and why")


class RulesEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, Any] = Field(min_length=1, description="rule set fields to replace")
    note: str | None = Field(default=None, max_length=2000)


class CreditChange(BaseModel):
    channel: str = Field(description="the channel's value (its column in the CLI is named after `by`)")
    credit_v1: float
    credit_v2: float
    change: float
    share_v1: float
    share_v2: float
    share_change: float


class RulesDiff(BaseModel):
    v1: int | None = Field(description="null: the built-in defaults (no version active)")
    v2: int | None
    by: str
    rows: list[CreditChange] = Field(description="the largest |change| first")
    changed_rules: dict[str, list[Any]] = Field(description="field → [v1's value, v2's value]")
    notes: list[str]


def _version(text: str) -> int | None:
    if text.strip().lower() == "active":
        return None
    try:
        number = int(text)
    except ValueError:
        raise HTTPException(400, f"{text!r} is not a version: give a version number or `active`") from None
    if number < 1:
        raise HTTPException(400, f"{text!r} is not a version: versions are numbered from 1")
    return number


def _detail(version: RuleVersion) -> dict[str, Any]:
    return version.document()


def _refused(exc: RulesError) -> HTTPException:
    return HTTPException(404 if isinstance(exc, UnknownRuleVersion) else 400, str(exc))


def attribution_router(reads: Callable, admin: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/api/v1/attribution/rules", tags=["attribution"])
    missing = {**errors, 404: {"model": ErrorResponse, "description": "no such rule set version"}}

    @router.get("", response_model=list[RuleVersionSummary], responses=errors)
    def versions(live=Depends(reads)) -> list[dict]:
        """Every rule set version: name, whether it is active, who made it and when."""
        return live.workspace.attribution_rule_versions()

    @router.get("/history", response_model=list[RuleChange], responses=errors)
    def history(version: int | None = Query(default=None, ge=1, description="only this version"),
                live=Depends(reads)) -> list[dict]:
        """Every change, oldest first: who created, edited or activated which version, when."""
        return live.workspace.attribution_rule_history(version)

    @router.get("/diff", response_model=RulesDiff, responses=missing)
    def diff(v1: str = Query(description=_VERSION), v2: str = Query(description=_VERSION),
             outcome: str | None = Query(default=None, description="renewal, expansion, contraction, churn, conversion"),
             model: str | None = Query(default=None, description="the credit model"),
             by: str | None = Query(default=None, description="the channel (role, unit, …)"),
             as_of: dt.date | None = Query(default=None), since: dt.date | None = Query(default=None),
             live=Depends(reads)) -> dict:
        """How credit moves between two versions, the other parameters the same; the largest
        change first, with the rule fields that differ."""
        request = {"outcome": outcome, "model": model, "by": by, "as_of": as_of, "since": since}
        try:
            frame = live.workspace.attribution_diff(_version(v1), _version(v2), **request)
        except RulesError as exc:
            raise _refused(exc) from exc
        except AnalysisError as exc:
            raise HTTPException(400, str(exc)) from exc
        except ValidationError as exc:
            raise HTTPException(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                               for e in exc.errors())) from exc
        by_column = frame.attrs["by"]
        rows = [{**row, "channel": str(row.pop(by_column))}
                for row in frame.to_dict(orient="records")]
        return {"v1": frame.attrs["v1"], "v2": frame.attrs["v2"], "by": by_column, "rows": rows,
                "changed_rules": frame.attrs["changed_rules"], "notes": frame.attrs["notes"]}

    @router.get("/{version}", response_model=ActiveRules, responses=missing)
    def show(version: str = Path(description=_VERSION), live=Depends(reads)) -> dict:
        """A version's rules (`active`: the active one; when none is active, version null and
        the built-in defaults)."""
        try:
            found = live.workspace.attribution_rules(_version(version))
        except RulesError as exc:
            raise _refused(exc) from exc
        if found is None:
            from accountlens.analysis.attribution_rules import AttributionRules

            return {"version": None, "rules": AttributionRules().model_dump(mode="json"), "detail": None}
        return {"version": found.version, "rules": found.rules.model_dump(mode="json"),
                "detail": _detail(found)}

    @router.post("", response_model=RuleVersionDetail, status_code=201, responses=missing)
    def create(body: RulesCreate, live=Depends(admin)) -> dict:
        """A new version (not active until activated); 400 names each field that is wrong.
        Audited as `attribution.rules.create`."""
        try:
            made = live.workspace.create_attribution_rules(body.rules, name=body.name,
                                                           note=body.note, based_on=body.based_on)
        except RulesError as exc:
            raise _refused(exc) from exc
        return _detail(made)

    @router.patch("/{version}", response_model=RuleVersionDetail, responses=missing)
    def edit(body: RulesEdit, version: int = Path(ge=1), live=Depends(admin)) -> dict:
        """Replace fields of a version never activated (400 for an activated one: create a new
        version based on it). Audited as `attribution.rules.edit`."""
        try:
            return _detail(live.workspace.edit_attribution_rules(version, body.rules, note=body.note))
        except RulesError as exc:
            raise _refused(exc) from exc

    @router.post("/{version}/activate", response_model=RuleVersionDetail, responses=missing)
    def activate(version: int = Path(ge=1), live=Depends(admin)) -> dict:
        """Make a version the active rule set (what dashboards use). Audited as
        `attribution.rules.activate`."""
        try:
            return _detail(live.workspace.activate_attribution_rules(version))
        except RulesError as exc:
            raise _refused(exc) from exc

    return router
