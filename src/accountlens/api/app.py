"""The FastAPI application: `/api/v1` (typed, OpenAPI-documented), the web app's pages and
sign-in (docs/web.md), and `/docs` and `/redoc` with their assets served locally (offline).

The collector (serve/collector.py) sits in front of it as a bare ASGI app (serve/server.py)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from accountlens.api.access import Access, client_address
from accountlens.api.dashboard import Dashboard, dashboard
from accountlens.api.models import ERRORS
from accountlens.api.session import COOKIE, Sessions
from accountlens.ingest.loader import BackgroundLoader
from accountlens.ingest.log import RETRY_AFTER_SECONDS
from accountlens.model.entities import ENTITY_TABLES
from accountlens.workspace import Workspace, WorkspaceError

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
# The web app's pages: each path is answered with the app (web/static/index.html), which
# draws the page the path names; anything else outside /api is a 404 page of the app.
PAGES = ("/", "/signin", "/accounts", "/accounts/{account_id:path}", "/users/{user_id:path}",
         "/analyses", "/analyses/{name}", "/quality", "/attribution", "/experiments")


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


class SignIn(BaseModel):
    token: str = Field(min_length=1, description="an API token of the workspace")
    workspace: str | None = Field(default=None, description="optional when one is served")


class WorkspaceAccess(BaseModel):
    name: str
    auth_required: bool = Field(description="the workspace has API tokens")
    signed_in: bool = Field(description="this browser's session (or bearer token) may read it")
    role: str | None = Field(default=None, description=(
        "the role it reads as (admin, analyst, viewer, csm), when signed in"))


class SessionState(BaseModel):
    workspaces: list[WorkspaceAccess]


class LoadResponse(BaseModel):
    received: int
    inserted: int
    duplicates: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    warnings: dict[str, int] = Field(
        default_factory=dict, description="inserted events stored with a warning, by warning")
    suppressed: int = Field(default=0, description="events of deleted people refused "
                            "(the suppression list, docs/privacy.md); stored nowhere")


def create_app(lives: list[LiveWorkspace], lifespan=None,
               local_admin_token: str | None = None) -> FastAPI:
    """The app over the served workspaces; `local_admin_token` is the server's own admin token
    (in serve.json, for the `accountlens` CLI on this machine)."""
    app = FastAPI(
        title="accountlens",
        version="0.1.0",
        description="B2B product analytics: REST API of accountlens (mirrors the CLI).",
        lifespan=lifespan,
        docs_url=None,  # served below with local assets
        redoc_url=None,
    )
    # Results are JSON of many rows: compressed they travel ~10x smaller to a remote browser.
    app.add_middleware(GZipMiddleware, minimum_size=4096, compresslevel=5)
    sessions = Sessions()
    access = Access(list(lives), sessions, local_admin_token)
    by_name = access.by_name
    served = access.served
    reads, raw_reads, writes = (access.requires("read"), access.requires("raw"),
                                access.requires("write"))

    def access_of(request: Request, live: LiveWorkspace) -> WorkspaceAccess:
        principal = access.principal(request, live)
        return WorkspaceAccess(name=live.workspace.config.workspace.name,
                               auth_required=live.workspace.tokens.has_tokens(),
                               signed_in=principal is not None,
                               role=principal.role if principal is not None else None)

    @app.get("/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/dashboard", response_model=Dashboard, tags=["web app"])
    def dashboard_panels() -> Dashboard:
        """What each page of the web app asks the API, by panel, and the choices its controls
        offer (the server keeps the `panels` computed)."""
        return dashboard()

    @app.get("/api/v1/session", response_model=SessionState, tags=["web app"])
    def session_state(request: Request) -> SessionState:
        """The served workspaces: which need a token, and which this browser may read."""
        return SessionState(workspaces=[access_of(request, live) for live in by_name.values()])

    @app.post("/api/v1/session", response_model=WorkspaceAccess, tags=["web app"],
              responses=ERRORS)
    def sign_in(body: SignIn, request: Request, response: Response) -> WorkspaceAccess:
        """Sign in to a workspace with one of its API tokens: sets an HttpOnly, SameSite=Strict
        session cookie (a random id; the token is kept nowhere in the browser). Signing in to
        another workspace adds it to the same session."""
        live = served(body.workspace)
        workspace = live.workspace
        name = workspace.config.workspace.name
        if not workspace.tokens.has_tokens():
            return WorkspaceAccess(name=name, auth_required=False, signed_in=True, role="analyst")
        credential = workspace.tokens.credential(body.token)
        principal = workspace.tokens.resolve_credential(credential) if credential else None
        if credential is None or principal is None:
            from accountlens.governance.audit import Actor

            workspace.audit.record(Actor("unauthenticated", "-", client_address(request)),
                                   "access.denied", "POST /api/v1/session",
                                   {"status": 401, "permission": "sign-in"}, outcome="denied")
            raise HTTPException(401, f"that token is not valid for workspace {name!r}")
        session_id = sessions.sign_in(request.cookies.get(COOKIE), name, credential)
        response.set_cookie(COOKIE, session_id, max_age=int(sessions.lifetime), path="/",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return WorkspaceAccess(name=name, auth_required=True, signed_in=True, role=principal.role)

    @app.delete("/api/v1/session", response_model=SessionState, tags=["web app"])
    def sign_out(request: Request, response: Response,
                 workspace: str | None = Query(default=None, description="the workspace to sign "
                                               "out of; all when not given")) -> SessionState:
        """Sign out of one workspace, or of all (the cookie is removed when none is left)."""
        if sessions.sign_out(request.cookies.get(COOKIE), workspace):
            response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return session_state(request)

    @app.get("/api/v1/workspaces", tags=["server"])
    def workspaces() -> list[str]:
        return list(by_name)

    @app.get("/api/v1/status", response_model=StatusResponse, tags=["workspace"], responses=ERRORS)
    def status(live: LiveWorkspace = Depends(reads)) -> dict:
        """Counts, the loader's last error, and whether a full disk holds ingestion up
        (`disk_full`, `ingest_paused_reason`)."""
        return live.status()

    @app.post("/api/v1/flush", response_model=LoadResponse, tags=["workspace"], responses=ERRORS)
    def flush(live: LiveWorkspace = Depends(writes)) -> dict:
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
        live: LiveWorkspace = Depends(raw_reads),
        include_replayed: bool = False,
        limit: int = Query(default=100, ge=1, le=10000),
    ) -> list[dict]:
        return live.workspace.quarantine(include_replayed=include_replayed, limit=limit)

    @app.post("/api/v1/quarantine/replay", response_model=LoadResponse, tags=["quarantine"], responses=ERRORS)
    def replay(request: ReplayRequest, live: LiveWorkspace = Depends(writes)) -> dict:
        try:
            return vars(live.workspace.replay_quarantine(request.ids, request.patch))
        except WorkspaceError as exc:
            raise HTTPException(400, str(exc)) from exc

    from accountlens.api.analysis_routes import analysis_router

    app.include_router(analysis_router(reads, ERRORS))

    from accountlens.api.metrics_routes import metrics_router

    app.include_router(metrics_router(reads, ERRORS))

    from accountlens.api.import_routes import import_router

    app.include_router(import_router(writes, ERRORS))

    from accountlens.api.entity_routes import entity_router

    app.include_router(entity_router(reads, ERRORS))

    from accountlens.api.admin_routes import admin_router

    app.include_router(admin_router(access.requires("admin"), ERRORS))

    from accountlens.api.plan_routes import plan_router

    app.include_router(plan_router(reads, access.requires("admin"), ERRORS))

    from accountlens.api.experiment_routes import experiment_router

    app.include_router(experiment_router(reads, access.requires("admin"), ERRORS))

    from accountlens.api.attribution_routes import attribution_router

    app.include_router(attribution_router(reads, access.requires("admin"), ERRORS))

    from accountlens.api.alert_routes import alert_router

    app.include_router(alert_router(reads, access.requires("admin"), ERRORS))

    from accountlens.api.lake_routes import lake_router

    app.include_router(lake_router(reads, ERRORS))

    from accountlens.api.report_routes import report_router

    app.include_router(report_router(reads, ERRORS))

    @app.exception_handler(StarletteHTTPException)  # FastAPI's, and the router's own 404/405
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and _wants_page(request):
            return FileResponse(STATIC / "index.html", status_code=404, headers=_NO_STORE)
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

    _offline_docs(app)
    if STATIC.exists():
        @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
        def plotly_js() -> FileResponse:
            # Served from the installed plotly package: no CDN, the web app works offline.
            import plotly

            return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                                media_type="application/javascript", headers=_KEEP_A_DAY)

        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        def page() -> FileResponse:
            return FileResponse(STATIC / "index.html", headers=_NO_STORE)

        for path in PAGES:
            app.add_api_route(path, page, methods=["GET"], include_in_schema=False)

    return app


# The app's HTML names its scripts by path: a new version must be fetched, not an old copy.
_NO_STORE = {"Cache-Control": "no-cache"}
# Plotly (4.6 MB) changes only with the installed package: a browser keeps it, and its compiled code.
_KEEP_A_DAY = {"Cache-Control": "public, max-age=86400"}


def _wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, not an asset)."""
    path = request.url.path
    return (request.method == "GET" and not path.startswith(("/api/", "/static/"))
            and "text/html" in request.headers.get("accept", ""))


def _offline_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` with their scripts and styles from the installed
    fastapi-offline package, not a CDN: they work without internet access."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    title = app.title

    @cache
    def redoc_script() -> bytes:
        # Redoc shows its maker's logo from their CDN: shown from here instead.
        return (assets / "redoc.standalone.js").read_bytes().replace(
            b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"/static/favicon.svg")

    @app.get("/static/docs/redoc.standalone.js", include_in_schema=False)
    def redoc_js() -> Response:
        return Response(redoc_script(), media_type="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})

    app.mount("/static/docs", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{title} – API", swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css", swagger_favicon_url="/static/docs/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json", title=f"{title} – API reference",
            redoc_js_url="/static/docs/redoc.standalone.js", redoc_favicon_url="/static/docs/favicon.png",
            with_google_fonts=False)
