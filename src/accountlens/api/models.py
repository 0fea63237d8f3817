"""What every REST answer looks like: a Result (results.py) or an error, one shape each.

No `from __future__ import annotations` here: FastAPI must see the real models."""

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    location: str = Field(description="where: e.g. `query.level`")
    message: str


class ErrorResponse(BaseModel):
    success: bool = False
    error: str = Field(description="what is wrong, in the API's words")
    problems: list[Problem] = Field(default_factory=list,
                                    description="each invalid parameter (validation errors)")


class ResultColumn(BaseModel):
    name: str
    type: str = Field(description="string, integer, number, boolean, date, timestamp, list, object")


class ResultResponse(BaseModel):
    kind: str = Field(description="metric, metrics_table or analysis")
    name: str
    level: str | None = Field(description="the level the rows are at")
    as_of: dt.date = Field(description="the last day included (the default as-of when not asked)")
    engine: str = Field(description="the engine that computed it")
    columns: list[ResultColumn]
    rows: list[dict[str, Any]]
    total_rows: int | None = Field(description="rows there were before `limit` (null: all shown)")
    notes: list[str] = Field(description="e.g. that a limit was reached")


# Every query of a server that serves several workspaces names one (`live_workspace` in
# api/app.py reads it); the typed query models, which refuse unknown parameters, declare it.
WORKSPACE_FIELD: dict[str, Any] = {"workspace": (str | None, Field(
    default=None, description="workspace name; optional when the server serves one"))}


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in ((400, "bad request"), (401, "missing or invalid API token"),
                       (403, "the token's role may not do this"), (404, "unknown workspace"),
                       (413, "request body too large"), (422, "invalid parameters"),
                       (429, "too many requests: retry after Retry-After seconds"))
}
