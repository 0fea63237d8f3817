"""The FastAPI application: `/api/v1` (typed, OpenAPI-documented) and the dashboard.

The collector (serve/collector.py) sits in front of it as a bare ASGI app (serve/server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, create_model

from accountlens.api.dashboard import DASHBOARD, Dashboard
from accountlens.api.models import ERRORS
from accountlens.ingest.loader import BackgroundLoader
from accountlens.ingest.log import RETRY_AFTER_SECONDS
from accountlens.model.entities import ENTITY_TABLES
from accountlens.workspace import Workspace, WorkspaceError

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


class LiveWorkspace(Protocol):
    """What the API needs of a served workspace (`accountlens serve` passes serve/live.py's)."""

    @property
    def workspace(self) -> Workspace: ...

    @property
    def loader(self) -> BackgroundLoader: ...

    def status(self) -> dict[str, Any]: ...


# `Workspace.status()`: a count per imported entity's table (model/entities.py), then the events',
# then what `accountlens serve` adds (serve/live.py)
_STATUS_FIELDS: dict[str, Any] = {
    "workspace": (str, ...),
    **{table: (int, ...) for table in ENTITY_TABLES},
    "events": (int, ...),
    "automation_events": (int, ...),
    "unattributed": (int, ...),
    "quarantined": (int, ...),
    "last_event_at": (str | None, ...),
    "attribution": (dict[str, int], ...),
    "ingest_warnings": (dict[str, dict[str, int]], ...),
    "unloaded_log_bytes": (int, ...),
    "log_free_bytes": (int, ...),
    "store_free_bytes": (int, ...),
    "disk_full": (bool, ...),
    "ingest_paused_reason": (str | None, None),
    "loader_error": (str | None, None),
}
StatusResponse = create_model("StatusResponse", **_STATUS_FIELDS)


class QuarantinedEvent(BaseModel):
    quarantine_id: int
    message_id: str | None
    reason: str
    source: str | None
    quarantined_at: str
    replayed_at: str | None
    raw: str


class ReplayRequest(BaseModel):
    ids: list[int] | None = Field(default=None, description="quarantine ids; null replays all")
    patch: dict[str, Any] | None = Field(
        default=None, description="JSON merge patch applied to each event before replay"
    )


class LoadResponse(BaseModel):
    received: int
    inserted: int
    duplicates: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    warnings: dict[str, int] = Field(
        default_factory=dict, description="inserted events stored with a warning, by warning")


def create_app(lives: list[LiveWorkspace], lifespan=None) -> FastAPI:
    app = FastAPI(
        title="accountlens",
        version="0.1.0",
        description="B2B product analytics: REST API of accountlens (mirrors the CLI).",
        lifespan=lifespan,
    )
    by_name = {live.workspace.config.workspace.name: live for live in lives}

    def live_workspace(
        request: Request,
        workspace: str | None = Query(default=None, description="workspace name; optional when one"),
    ) -> LiveWorkspace:
        if workspace is None:
            if len(lives) != 1:
                raise HTTPException(400, "several workspaces are served; pass ?workspace=NAME")
            live = lives[0]
        elif workspace in by_name:
            live = by_name[workspace]
        else:
            raise HTTPException(404, f"no workspace named {workspace!r}")
        tokens = live.workspace.config.workspace.api_tokens
        if tokens:
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else None
            if token not in tokens:
                raise HTTPException(401, "a valid API token for this workspace is required")
        return live

    @app.get("/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/dashboard", response_model=Dashboard, tags=["dashboard"])
    def dashboard_panels() -> Dashboard:
        """The dashboard's analysis panels, in order: what each shows and how to ask for it."""
        return DASHBOARD

    @app.get("/api/v1/workspaces", tags=["server"])
    def workspaces() -> list[str]:
        return list(by_name)

    @app.get("/api/v1/status", response_model=StatusResponse, tags=["workspace"], responses=ERRORS)
    def status(live: LiveWorkspace = Depends(live_workspace)) -> dict:
        """Counts, the loader's last error, and whether a full disk holds ingestion up
        (`disk_full`, `ingest_paused_reason`)."""
        return live.status()

    @app.post("/api/v1/flush", response_model=LoadResponse, tags=["workspace"], responses=ERRORS)
    def flush(live: LiveWorkspace = Depends(live_workspace)) -> dict:
        """Load everything acknowledged so far into the store now (read-your-writes)."""
        try:
            return vars(live.loader.flush())
        except Exception as exc:  # logged by the loader; the events stay in the log
            if not live.loader.disk_full:
                raise
            raise HTTPException(503, f"the store cannot be written: {live.loader.last_error}; "
                                "the events stay in the log and are loaded when space returns",
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from exc

    @app.get("/api/v1/quarantine", response_model=list[QuarantinedEvent], tags=["quarantine"], responses=ERRORS)
    def quarantine(
        live: LiveWorkspace = Depends(live_workspace),
        include_replayed: bool = False,
        limit: int = Query(default=100, ge=1, le=10000),
    ) -> list[dict]:
        return live.workspace.quarantine(include_replayed=include_replayed, limit=limit)

    @app.post("/api/v1/quarantine/replay", response_model=LoadResponse, tags=["quarantine"], responses=ERRORS)
    def replay(request: ReplayRequest, live: LiveWorkspace = Depends(live_workspace)) -> dict:
        try:
            return vars(live.workspace.replay_quarantine(request.ids, request.patch))
        except WorkspaceError as exc:
            raise HTTPException(400, str(exc)) from exc

    from accountlens.api.analysis_routes import analysis_router

    app.include_router(analysis_router(live_workspace, ERRORS))

    from accountlens.api.metrics_routes import metrics_router

    app.include_router(metrics_router(live_workspace, ERRORS))

    from accountlens.api.import_routes import import_router

    app.include_router(import_router(live_workspace, ERRORS))

    from accountlens.api.entity_routes import entity_router

    app.include_router(entity_router(live_workspace, ERRORS))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"success": False, "error": exc.detail, "problems": []},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the same shape as every other error, in the API's words (parameters, not CLI flags)
        problems = [{"location": ".".join(str(p) for p in error["loc"]), "message": error["msg"]}
                    for error in exc.errors()]
        text = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
        return JSONResponse({"success": False, "error": f"invalid request: {text}",
                             "problems": problems}, status_code=422)

    if STATIC.exists():
        @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
        def plotly_js() -> FileResponse:
            # Served from the installed plotly package: no CDN, the dashboard works offline.
            import plotly

            return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                                media_type="application/javascript")

        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        def dashboard() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    return app
