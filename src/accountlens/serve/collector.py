"""The HTTP collector: Segment HTTP API and PostHog capture endpoints (SPEC §4).

A request is acknowledged with 200 only after its events are fsync'd to the workspace's log;
everything after that (validation, dedup, attribution) happens in the background loader.

The collector is a bare ASGI application in front of the REST API: ingestion requests are
answered without the framework's routing, request objects and middleware, which cost about as
much CPU as the ingestion work itself; every other request is passed on to the API app.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from accountlens.ingest.normalize import (
    Limits,
    RequestError,
    decode_body,
    encode_events,
    posthog_events,
    segment_events,
)
from accountlens.model.entities import EVENT_TYPES

SEGMENT_PREFIX = "/v1/"
POSTHOG_PATHS = frozenset({"/batch/", "/batch", "/capture/", "/capture", "/e/", "/i/v0/e/"})
_JSON_HEADERS = [(b"content-type", b"application/json")]
_OK = orjson.dumps({"success": True})

# ASGI's types, as starlette.types declares them (not imported: collector processes stay light)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Appender(Protocol):
    def append(self, data: bytes) -> Future: ...


@dataclass(frozen=True)
class Sink:
    """A workspace as the collector sees it: its write keys and limits, and its log."""

    write_keys: tuple[str, ...]
    limits: Limits
    posthog_account_group_type: str
    log: Appender | None  # None only in a SinkSpec, before a collector process opens its log


@dataclass(frozen=True)
class Incoming:
    """What the collector needs of a request: its headers (lower-case names) and body."""

    headers: dict[str, str]
    body: bytes


class Collector:
    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks
        self.by_key = {key: sink for sink in sinks for key in sink.write_keys}
        self.max_body = max(sink.limits.max_batch_bytes for sink in sinks)

    def _workspace(self, key: str | None) -> Sink:
        if not key:
            raise RequestError("missing write key (HTTP Basic username or `writeKey`)", 401)
        live = self.by_key.get(key)
        if live is None:
            raise RequestError("unknown write key", 401)
        return live

    def _too_big(self) -> RequestError:
        return RequestError(f"batch exceeds {self.max_body} bytes; split it into smaller batches")

    async def read(self, scope: Scope, receive: Receive) -> Incoming:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise self._too_big()
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError("client disconnected before the body was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_big()
            chunks.append(chunk)
            more = message.get("more_body", False)
        return Incoming(headers, b"".join(chunks))

    @staticmethod
    def _basic_user(incoming: Incoming) -> str | None:
        header = incoming.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RequestError("malformed Basic authorization header", 401) from None
        return decoded.split(":", 1)[0]

    async def _commit(self, live: Sink, events: list[dict]) -> None:
        if live.log is None:  # a SinkSpec's: collector processes open their logs before serving
            raise RuntimeError("the collector's sink has no open log")
        data = encode_events(events, live.limits)
        await asyncio.wrap_future(live.log.append(data))

    async def segment(self, kind: str, incoming: Incoming) -> None:
        """`/v1/{kind}`: `batch` (or `import`) or one of the single-event endpoints."""
        path_type = None if kind in ("batch", "import") else kind
        if path_type is not None and path_type not in EVENT_TYPES:
            raise RequestError(f"unknown endpoint /v1/{kind}", 404)
        received_at = _now()
        key = self._basic_user(incoming)
        # Limits of the keyed workspace apply; the body key is only known after parsing.
        live = self.by_key.get(key) if key else None
        limits = live.limits if live else Limits(self.max_body, self.max_body)
        payload = decode_body(incoming.body, incoming.headers.get("content-encoding"), limits)
        if live is None:
            body_key = payload.get("writeKey") if isinstance(payload, dict) else None
            if body_key is not None and not isinstance(body_key, str):
                raise RequestError("`writeKey` must be a string", 401)
            live = self._workspace(key or body_key)
            if len(incoming.body) > live.limits.max_batch_bytes:
                raise RequestError(f"batch exceeds {live.limits.max_batch_bytes} bytes")
        await self._commit(live, segment_events(payload, path_type, received_at))

    async def posthog(self, incoming: Incoming) -> None:
        received_at = _now()
        payload = decode_body(incoming.body, incoming.headers.get("content-encoding"),
                              Limits(self.max_body, self.max_body))
        default_type = self.sinks[0].posthog_account_group_type
        api_key, events = posthog_events(payload, received_at, default_type)
        live = self._workspace(api_key)
        group_type = live.posthog_account_group_type
        if group_type != default_type:  # normalization does not mutate the payload
            _, events = posthog_events(payload, received_at, group_type)
        await self._commit(live, events)

    def handler(self, scope: Scope) -> Callable[[Incoming], Awaitable[None]] | None:
        """The ingestion handler for a request, or None when it is not an ingestion request."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path = scope["path"]
        if path.startswith(SEGMENT_PREFIX) and "/" not in path[len(SEGMENT_PREFIX):]:
            kind = path[len(SEGMENT_PREFIX):]
            return lambda incoming: self.segment(kind, incoming)
        if path in POSTHOG_PATHS:
            return self.posthog
        return None


class CollectorFront:
    """ASGI app: ingestion requests go to the collector, everything else to `app`."""

    def __init__(self, collector: Collector, app: Callable[[Scope, Receive, Send], Awaitable[None]]):
        self.collector = collector
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.collector.handler(scope)
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            await handler(await self.collector.read(scope, receive))
            status, body = 200, _OK
        except RequestError as exc:
            status, body = exc.status, orjson.dumps({"success": False, "error": str(exc)})
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
