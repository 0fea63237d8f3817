"""`/api/v1/accounts/{account_id}` and `/api/v1/users/{user_id}`: one account or user as of a
day, typed (analysis/account_detail.py, analysis/user_detail.py), for the web app's pages.

No `from __future__ import annotations` here: FastAPI must see the real models."""

import datetime as dt
from collections.abc import Callable

from fastapi import APIRouter, Depends, HTTPException, Query

from accountlens.analysis.account_detail import AccountDetail, EntityNotFound
from accountlens.analysis.user_detail import UserDetail
from accountlens.api.models import ErrorResponse

AS_OF = Query(default=None, description=(
    "the day the page is as of (default: the latest active event day, never after today)"))


def entity_router(live_workspace: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["accounts and users"])
    responses = {**errors, 404: {"model": ErrorResponse, "description": (
        "unknown workspace, or no such account / user as of that day")}}

    @router.get("/accounts/{account_id}", response_model=AccountDetail, responses=responses)
    def account(account_id: str, as_of: dt.date | None = AS_OF,
                live=Depends(live_workspace)) -> AccountDetail:
        """One account as of a day: its record, parent and children, org units, users, contract
        with entitlements, and timeline (docs/web-api.md)."""
        try:
            return live.workspace.account_detail(account_id, as_of=as_of)
        except EntityNotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @router.get("/users/{user_id}", response_model=UserDetail, responses=responses)
    def user(user_id: str, as_of: dt.date | None = AS_OF,
             live=Depends(live_workspace)) -> UserDetail:
        """One user as of a day: record, memberships, accounts, daily activity and top events
        (docs/web-api.md)."""
        try:
            return live.workspace.user_detail(user_id, as_of=as_of)
        except EntityNotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    return router
