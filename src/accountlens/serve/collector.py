"""The HTTP collector: Segment HTTP API and PostHog capture endpoints (SPEC §4).

A request is acknowledged with 200 only after its events are fsync'd to the workspace's log;
everything after that (validation, dedup, attribution) happens in the background loader. When
the log cannot be written (a full disk, EIO) the answer is 503 with `Retry-After`, and nothing
of the request is kept. A body that does not arrive within the body timeout gets 408.

The collector is a bare ASGI application in front of the REST API: ingestion requests are
answered without the framework's routing, request objects and middleware, which cost about as
much CPU as the ingestion work itself; every other request is passed on to the API app.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from accountlens.ingest.log import RETRY_AFTER_SECONDS
from accountlens.ingest.normalize import (
    Limits,
    RequestError,
    decode_body,
    encode_events,
    posthog_events,
    segment_events,
)
from accountlens.model.entities import EVENT_TYPES
from accountlens.serve.cors import OriginPolicy, OriginRefused, is_preflight
from accountlens.serve.hardening import RateLimit, RateLimiter

log = logging.getLogger("accountlens.collector")

SEGMENT_PREFIX = "/v1/"
# analytics.js posts to /v1/t, /v1/i, ... (one letter per type) and batches to /v1/b.
SEGMENT_SHORT_PATHS = {"t": "track", "p": "page", "s": "screen", "i": "identify", "g": "group",
                       "a": "alias", "b": "batch"}
POSTHOG_PATHS = frozenset({"/batch/", "/batch", "/capture/", "/capture", "/e/", "/i/v0/e/"})
_JSON_HEADERS = [(b"content-type", b"application/json")]
_OK = orjson.dumps({"success": True})
# uvicorn's timeouts, for the server and the collector processes: a keep-alive connection idle
# for this long is closed (SDKs that flush every few seconds keep theirs), and a stopping
# server waits this long for requests in flight before it closes their connections.
KEEP_ALIVE_SECONDS = 15
GRACEFUL_SHUTDOWN_SECONDS = 15

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
    origins: dict[str, tuple[str, ...]] = field(default_factory=dict)  # write key → web origins
    rate: RateLimit | None = None  # per write key (`serve.write_key_rate_limit`); None: no limit


class Unavailable(RequestError):
    """The events could not be made durable (the log cannot be written): 503, retry later."""

    def __init__(self, message: str):
        super().__init__(message, 503)
        self.retry_after = RETRY_AFTER_SECONDS


class RateLimited(RequestError):
    """A write key over its rate limit: 429, retry after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many requests with this write key: retry in {retry_after} s "
                         "(serve.write_key_rate_limit)", 429)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Incoming:
    """What the collector needs of a request: its headers (lower-case names) and body."""

    headers: dict[str, str]
    body: bytes


class Collector:
    def __init__(self, sinks: list[Sink], body_timeout: float):
        """`body_timeout`: seconds a request's body may take to arrive in full
        (`serve.body_read_timeout_seconds`)."""
        self.sinks = sinks
        self.body_timeout = body_timeout
        self.by_key = {key: sink for sink in sinks for key in sink.write_keys}
        self.max_body = max(sink.limits.max_batch_bytes for sink in sinks)
        self.origins = OriginPolicy({key: origins for sink in sinks
                                     for key, origins in sink.origins.items()})
        # one bucket per write key, in this process (each collector process has its own)
        self.limiters = {key: limiter for sink in sinks if sink.rate and sink.rate.active
                         for limiter in [RateLimiter(sink.rate)] for key in sink.write_keys}

    def _workspace(self, key: str | None) -> Sink:
        if not key:
            raise RequestError("missing write key (HTTP Basic username or `writeKey`)", 401)
        live = self.by_key.get(key)
        if live is None:
            raise RequestError("unknown write key", 401)
        return live

    def _throttle(self, key: str | None) -> None:
        """Refuse a request of a write key over its rate limit (known keys only)."""
        limiter = self.limiters.get(key) if key else None
        if limiter is not None and (wait := limiter.take(key or "")):
            raise RateLimited(wait)

    def _too_big(self) -> RequestError:
        return RequestError(f"batch exceeds {self.max_body} bytes; split it into smaller batches")

    async def read(self, scope: Scope, receive: Receive) -> Incoming:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise self._too_big()
        chunks, size, more = [], 0, True
        try:
            # the whole body, not each read: a client trickling a byte at a time is cut off too
            async with asyncio.timeout(self.body_timeout):
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
        except TimeoutError:
            raise RequestError(f"the request body did not arrive within {self.body_timeout:g} s "
                               "(serve.body_read_timeout_seconds)", 408) from None
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
        try:
            await asyncio.wrap_future(live.log.append(data))
        except OSError as exc:  # logged by the log, once per spell of failures
            what = ("the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                    else f"the event log cannot be written ({exc.strerror or exc})")
            raise Unavailable(f"{what}: nothing of this request was stored; retry in "
                              f"{RETRY_AFTER_SECONDS} s") from exc

    async def segment(self, kind: str, incoming: Incoming) -> None:
        """`/v1/{kind}`: `batch` (or `import`) or one of the single-event endpoints."""
        kind = SEGMENT_SHORT_PATHS.get(kind, kind)
        path_type = None if kind in ("batch", "import") else kind
        if path_type is not None and path_type not in EVENT_TYPES:
            raise RequestError(f"unknown endpoint /v1/{kind}", 404)
        received_at = _now()
        key = self._basic_user(incoming)
        # Limits of the keyed workspace apply; the body key is only known after parsing.
        live = self.by_key.get(key) if key else None
        if live is not None:  # refused before the body is parsed
            self._throttle(key)
        limits = live.limits if live else Limits(self.max_body, self.max_body)
        payload = decode_body(incoming.body, incoming.headers.get("content-encoding"), limits)
        if live is None:
            body_key = payload.get("writeKey") if isinstance(payload, dict) else None
            if body_key is not None and not isinstance(body_key, str):
                raise RequestError("`writeKey` must be a string", 401)
            key = key or body_key
            live = self._workspace(key)
            self._throttle(key)
            if len(incoming.body) > live.limits.max_batch_bytes:
                raise RequestError(f"batch exceeds {live.limits.max_batch_bytes} bytes")
        self.origins.admit(key, incoming.headers)
        await self._commit(live, segment_events(payload, path_type, received_at))

    async def posthog(self, incoming: Incoming) -> None:
        received_at = _now()
        encoding = incoming.headers.get("content-encoding")
        if encoding is None and incoming.body[:2] == b"\x1f\x8b":
            encoding = "gzip"  # posthog-js gzips without the header (`?compression=gzip-js`)
        payload = decode_body(incoming.body, encoding, Limits(self.max_body, self.max_body))
        default_type = self.sinks[0].posthog_account_group_type
        api_key, events = posthog_events(payload, received_at, default_type)
        live = self._workspace(api_key)
        self._throttle(api_key)
        self.origins.admit(api_key, incoming.headers)
        group_type = live.posthog_account_group_type
        if group_type != default_type:  # normalization does not mutate the payload
            _, events = posthog_events(payload, received_at, group_type)
        await self._commit(live, events)

    def handler(self, scope: Scope) -> Callable[[Incoming], Awaitable[None]] | None:
        """The ingestion handler for a request, or None when it is not an ingestion request."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        return self.route(scope["path"])

    def route(self, path: str) -> Callable[[Incoming], Awaitable[None]] | None:
        """The ingestion handler of `path`, or None when it is no ingestion endpoint."""
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
        if is_preflight(scope) and self.collector.route(scope["path"]) is not None:
            status, headers, body = self.collector.origins.preflight(scope)
            await send({"type": "http.response.start", "status": status,
                        "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        handler = self.collector.handler(scope)
        if handler is None:
            await self.app(scope, receive, send)
            return
        refused = False
        extra: list[tuple[bytes, bytes]] = []
        try:
            await handler(await self.collector.read(scope, receive))
            status, body = 200, _OK
        except RequestError as exc:
            status, body = exc.status, orjson.dumps({"success": False, "error": str(exc)})
            refused = isinstance(exc, OriginRefused)
            extra = _error_headers(exc)
        except Exception:  # a bug, never a plain-text 500: SDKs and people read the JSON
            log.exception("the collector failed on a request to %s", scope["path"])
            status, body = 500, orjson.dumps({"success": False, "error": "internal error"})
        cors = self.collector.origins.response_headers(scope, refused)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON_HEADERS, *cors, *extra,
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _error_headers(exc: RequestError) -> list[tuple[bytes, bytes]]:
    if isinstance(exc, Unavailable | RateLimited):
        return [(b"retry-after", str(exc.retry_after).encode())]
    if exc.status == 408:  # the rest of the body may still come: this connection is done
        return [(b"connection", b"close")]
    return []


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
