"""The HTTP collector: Segment HTTP API and PostHog capture endpoints (SPEC §4).

A request is acknowledged with 200 only after its events are fsync'd to the workspace's log;
everything after that (validation, dedup, attribution) happens in the background loader.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from accountlens.ingest.log import EventLog
from accountlens.ingest.loader import BackgroundLoader
from accountlens.ingest.normalize import (
    SEGMENT_TYPES,
    Limits,
    RequestError,
    decode_body,
    encode_events,
    posthog_events,
    segment_events,
)
from accountlens.workspace import Workspace


@dataclass
class LiveWorkspace:
    """A workspace opened by `accountlens serve`: its store, log and loader."""

    workspace: Workspace
    log: EventLog
    loader: BackgroundLoader

    @property
    def limits(self) -> Limits:
        cfg = self.workspace.config.ingest
        return Limits(cfg.max_event_bytes, cfg.max_batch_bytes)


class Collector:
    def __init__(self, workspaces: list[LiveWorkspace]):
        self.workspaces = workspaces
        self.by_key = {
            key: live for live in workspaces for key in live.workspace.config.workspace.write_keys
        }
        self.max_body = max(live.limits.max_batch_bytes for live in workspaces)

    def _workspace(self, key: str | None) -> LiveWorkspace:
        if not key:
            raise RequestError("missing write key (HTTP Basic username or `writeKey`)", 401)
        live = self.by_key.get(key)
        if live is None:
            raise RequestError("unknown write key", 401)
        return live

    async def _read(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise RequestError(f"batch exceeds {self.max_body} bytes; split it into smaller batches")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise RequestError(f"batch exceeds {self.max_body} bytes; split it into smaller batches")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _basic_user(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RequestError("malformed Basic authorization header", 401) from None
        return decoded.split(":", 1)[0]

    async def _commit(self, live: LiveWorkspace, events: list[dict]) -> Response:
        data = encode_events(events, live.limits)
        await asyncio.wrap_future(live.log.append(data))
        return JSONResponse({"success": True})

    async def segment(self, request: Request) -> Response:
        path_type = request.path_params.get("kind")
        if path_type == "batch" or path_type == "import":
            path_type = None
        elif path_type not in SEGMENT_TYPES:
            return _error(RequestError(f"unknown endpoint /v1/{path_type}", 404))
        try:
            body = await self._read(request)
            received_at = _now()
            key = self._basic_user(request)
            # Limits of the keyed workspace apply; the body key is only known after parsing.
            live = self.by_key.get(key) if key else None
            limits = live.limits if live else Limits(self.max_body, self.max_body)
            payload = decode_body(body, request.headers.get("content-encoding"), limits)
            if live is None:
                body_key = payload.get("writeKey") if isinstance(payload, dict) else None
                if body_key is not None and not isinstance(body_key, str):
                    raise RequestError("`writeKey` must be a string", 401)
                live = self._workspace(key or body_key)
                if len(body) > live.limits.max_batch_bytes:
                    raise RequestError(f"batch exceeds {live.limits.max_batch_bytes} bytes")
            events = segment_events(payload, path_type, received_at)
            return await self._commit(live, events)
        except RequestError as exc:
            return _error(exc)

    async def posthog(self, request: Request) -> Response:
        try:
            body = await self._read(request)
            received_at = _now()
            payload = decode_body(
                body, request.headers.get("content-encoding"), Limits(self.max_body, self.max_body)
            )
            default_type = self.workspaces[0].workspace.config.ingest.posthog_account_group_type
            api_key, events = posthog_events(payload, received_at, default_type)
            live = self._workspace(api_key)
            group_type = live.workspace.config.ingest.posthog_account_group_type
            if group_type != default_type:  # normalization does not mutate the payload
                _, events = posthog_events(payload, received_at, group_type)
            return await self._commit(live, events)
        except RequestError as exc:
            return _error(exc)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/{kind}", self.segment, methods=["POST"]),
            Route("/batch/", self.posthog, methods=["POST"]),
            Route("/batch", self.posthog, methods=["POST"]),
            Route("/capture/", self.posthog, methods=["POST"]),
            Route("/capture", self.posthog, methods=["POST"]),
            Route("/e/", self.posthog, methods=["POST"]),
            Route("/i/v0/e/", self.posthog, methods=["POST"]),
        ]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _error(exc: RequestError) -> JSONResponse:
    return JSONResponse({"success": False, "error": str(exc)}, status_code=exc.status)
