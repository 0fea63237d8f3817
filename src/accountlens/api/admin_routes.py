"""`/api/v1/admin/...`: tokens, the audit trail, retention and the deletion of a person — the
admin role's REST equivalents of `accountlens tokens|audit|retention|users` (docs/governance.md).

No `from __future__ import annotations` here: FastAPI must see the real types."""

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from accountlens.api.models import ErrorResponse
from accountlens.governance import token_admin
from accountlens.governance.tokens import TokenError


class TokenRequest(BaseModel):
    role: Literal["admin", "analyst", "viewer", "csm"]
    owner: str | None = Field(default=None, description=(
        "csm: the book is the accounts whose `owner` trait is this (e.g. the CSM's e-mail)"))
    accounts: list[str] = Field(default_factory=list, description="csm: these accounts too")
    expires: dt.date | dt.datetime | None = Field(default=None, description=(
        "a date (valid through that day, UTC) or a date-time; none: no expiry"))
    name: str = Field(default="", max_length=200, description="a label, e.g. who holds it")


class TokenInfo(BaseModel):
    id: str
    role: str
    name: str
    owner: str | None
    accounts: list[str]
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    rotated_at: str | None
    state: Literal["active", "expired", "revoked"]


class NewToken(TokenInfo):
    token: str = Field(description="the token: shown once, stored only hashed")


class AuditEntry(BaseModel):
    seq: int
    at: str
    actor: str
    role: str
    source: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]
    prev: str
    hash: str


class AuditVerification(BaseModel):
    ok: bool
    entries: int
    head: str = Field(description="the last entry's hash: keep it elsewhere to detect a cut tail")
    broken_at: int | None
    problem: str | None


class DeleteUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, description="the person's user id")


class DeleteUserByEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, description="every user with this e-mail (any case)")


def admin_router(admin: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
    responses = {**errors, 404: {"model": ErrorResponse, "description": "no such token or user"}}

    def refused(exc: Exception, status: int = 400) -> HTTPException:
        return HTTPException(status, str(exc))

    @router.get("/tokens", response_model=list[TokenInfo], responses=errors)
    def list_tokens(live=Depends(admin)) -> list[dict]:
        """The workspace's tokens (never their secrets), with their state."""
        return live.workspace.tokens.listing()

    @router.post("/tokens", response_model=NewToken, status_code=201, responses=errors)
    def create_token(body: TokenRequest, live=Depends(admin)) -> dict:
        """A new token; its secret is in this answer only."""
        ws = live.workspace
        try:
            return token_admin.create_token(ws.tokens, ws.audit, ws.actor, body.role, body.owner,
                                            body.accounts, body.expires, body.name)
        except TokenError as exc:
            raise refused(exc) from exc

    def changed(action: Callable, live: Any, token_id: str) -> dict:
        """A token change by the requester (404 for an unknown id, 400 for a refused one)."""
        ws = live.workspace
        try:
            return action(ws.tokens, ws.audit, ws.actor, token_id)
        except TokenError as exc:
            raise refused(exc, 404 if "no token" in str(exc) else 400) from exc

    @router.post("/tokens/{token_id}/rotate", response_model=NewToken, responses=responses)
    def rotate_token(token_id: str, live=Depends(admin)) -> dict:
        """A new secret for the token; the old one (and sessions opened with it) stop working."""
        return changed(token_admin.rotate_token, live, token_id)

    @router.delete("/tokens/{token_id}", response_model=TokenInfo, responses=responses)
    def revoke_token(token_id: str, live=Depends(admin)) -> dict:
        """Revoke the token at once (sessions opened with it end too)."""
        return changed(token_admin.revoke_token, live, token_id)

    @router.get("/audit", response_model=list[AuditEntry], responses=errors)
    def audit(since: dt.datetime | None = Query(default=None, description="entries at or after"),
              actor: str | None = Query(default=None, description=(
                  "entries by this actor (e.g. token:ID), or a prefix ending in ':' (token:)")),
              action: str | None = Query(default=None, description="actions starting with this"),
              limit: int = Query(default=1000, ge=1, le=100_000),
              live=Depends(admin)) -> list[dict]:
        """The audit trail, oldest first (the last `limit` entries that match)."""
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        return live.workspace.audit.entries(since, actor, action, limit)

    @router.get("/audit/verify", response_model=AuditVerification, responses=errors)
    def audit_verify(live=Depends(admin)) -> dict:
        """Check the hash chain: an edited, removed or reordered entry breaks it."""
        return live.workspace.audit.verify()

    @router.post("/retention/apply", responses=errors)
    def retention(dry_run: bool = Query(default=False, description="count only, remove nothing"),
                  live=Depends(admin)) -> dict:
        """Apply the `[retention]` policies now (docs/retention.md)."""
        live.loader.flush()
        return live.workspace.apply_retention(dry_run=dry_run)

    @router.post("/users/delete", responses=responses)
    def delete_user(body: DeleteUser | DeleteUserByEmail, live=Depends(admin)) -> dict:
        """Delete a person: their events, identities, memberships, profile and quarantined
        events, with corrected rollups, a suppression entry and a proof in the audit log
        (docs/privacy.md). Acknowledged events are loaded first."""
        live.loader.flush()
        try:
            return live.workspace.delete_user(user_id=getattr(body, "user_id", None),
                                              email=getattr(body, "email", None), load_log=False)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc

    return router
