"""`GET /reports/accounts/{account_id}`: the account review as one self-contained HTML page
(report/account_review.py), the web app's "Print review" — the same HTML as `accountlens report
account`.

No `from __future__ import annotations` here: FastAPI must see the real types."""

import datetime as dt
from collections.abc import Callable

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse

from accountlens.analysis.account_detail import EntityNotFound
from accountlens.api.models import ErrorResponse

AS_OF = Query(default=None, description=(
    "the day the review is as of (default: the latest active event day, never after today)"))


def report_router(live_workspace: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/reports", tags=["reports"])
    # Errors answer JSON although the page is HTML: said per code, or OpenAPI would list them
    # under the route's own media type.
    json_error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    responses = {**{code: {**spec, "content": json_error} for code, spec in errors.items()},
                 200: {"content": {"text/html": {}}, "description": "the review, one HTML page"},
                 404: {"model": ErrorResponse, "content": json_error, "description": (
                     "unknown workspace, or no such account as of that day")}}

    @router.get("/accounts/{account_id}", response_class=HTMLResponse, responses=responses)
    def account_review(account_id: str, as_of: dt.date | None = AS_OF,
                       live=Depends(live_workspace)) -> HTMLResponse:
        """The account review for a customer meeting: value realised, adoption by team and
        role, seats against the contract, health and its drivers, risks and next steps, with
        inline SVG charts; prints on A4 without scripts (docs/report.md)."""
        try:
            html = live.workspace.account_review(account_id, as_of=as_of)
        except EntityNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    return router
