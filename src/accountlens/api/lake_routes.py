"""`GET /api/v1/lake`: how the events are stored (docs/lake.md), as `accountlens lake status`.

No `from __future__ import annotations` here: FastAPI must see the real types."""

from collections.abc import Callable

from fastapi import APIRouter, Depends
from pydantic import BaseModel


class LakeStatus(BaseModel):
    mode: str  # table | lake
    path: str | None
    files: int
    bytes: int
    days: int
    first_day: str | None
    last_day: str | None
    events: int
    pending_moves: int


def lake_router(reads: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["lake"])

    @router.get("/lake", response_model=LakeStatus, responses=errors)
    def lake_status(live=Depends(reads)) -> dict:
        """The events' storage: `table` (DuckDB) or `lake` (Parquet files), and for a lake its
        folder, files, bytes, days and file moves still owed."""
        return live.workspace.lake_status()

    return router
