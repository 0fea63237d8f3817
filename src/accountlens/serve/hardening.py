"""Hardening of `accountlens serve` (docs/security.md), as ASGI middleware: the trusted-hosts
check, rate limits, the REST API's request-size limit, security headers and the access log.

No framework imports: the collector processes use the trusted-hosts check and the rate
limiter too, and they stay light.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import ipaddress
import logging
import logging.handlers
import math
import os
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import orjson

# ASGI's types, as starlette.types declares them (not imported: collector processes stay light)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/"
IMPORTS_PREFIX = "/api/v1/imports/"  # files stream to disk: no size limit
ACCESS_LOG = "access.log"
ACCESS_LOG_BYTES = 10 * 1024 * 1024  # then rotated: access.log.1 … access.log.5
ACCESS_LOG_BACKUPS = 5


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def send_error(send: Send, status: int, message: str,
                     headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """The REST API's error shape (api/app.py's handlers answer the same)."""
    body = orjson.dumps({"success": False, "error": message, "problems": []})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


# --- trusted hosts ---------------------------------------------------------------------------
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
_HOST_CACHE = 256  # Host header values remembered with their answer (clients send a few)


def host_name(value: str) -> str:
    """The name of a Host header value: lower-case, without port, brackets or a trailing dot;
    an IP address in its compressed form."""
    value = value.strip().lower()
    if value.startswith("["):
        name = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        name = value.partition(":")[0]
    else:
        name = value  # a name without port, or a bare IPv6 address
    name = name.rstrip(".")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPolicy:
    """Which Host header names the server answers (picklable: collector processes get it).

    DNS rebinding is the attack: a page on a name the attacker controls, pointed at this
    machine's address, would otherwise read the API with the visitor's network position. An IP
    address in the Host header cannot be such a name, so a server on a wildcard address
    (`0.0.0.0`, `::`) answers any address (its own, or the one a NAT or container port maps to)
    and, of names, the machine's own and `serve.allowed_hosts`."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()  # from "*.example.com": ".example.com"
    any_address: bool = False
    any_host: bool = False  # "*" in serve.allowed_hosts: no check

    @classmethod
    def serving(cls, host: str, allowed_hosts: Iterable[str] = ()) -> HostPolicy:
        """The policy of a server listening on `host` (`serve --host`)."""
        names = set(LOOPBACK_NAMES)
        suffixes, any_host = [], False
        bound = host_name(host)
        wildcard = bound in WILDCARD_ADDRESSES
        if wildcard:
            names |= _machine_names()
        else:
            names |= {bound, *_addresses(bound)}  # a host name: the addresses it is bound on too
        for entry in allowed_hosts:
            entry = entry.strip().lower()
            if entry == "*":
                any_host = True
            elif entry.startswith("*."):
                suffixes.append(entry[1:].rstrip("."))
            elif entry:
                names.add(host_name(entry))
        return cls(frozenset(names), tuple(suffixes), wildcard, any_host)

    def allows(self, header: str | None) -> bool:
        if self.any_host:
            return True
        if not header:
            return False
        name = host_name(header)
        if name in self.names or name.endswith(self.suffixes):
            return True
        return self.any_address and _is_ip(name)


def _addresses(name: str) -> set[str]:
    """The addresses `name` resolves to (none for an IP address, or when it does not)."""
    if _is_ip(name):
        return set()
    try:
        return {host_name(str(info[4][0])) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return set()


def _machine_names() -> set[str]:
    """This machine's host name, its fully qualified name, and what they resolve to."""
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    for name in list(names):
        names |= _addresses(name)
    return {name for name in names if name}


class TrustedHosts:
    """Refuse a request whose Host header names none of this server's names: HTTP 400 with a
    JSON error naming the Host and the setting to add it to."""

    def __init__(self, app: ASGIApp, policy: HostPolicy):
        self.app, self.policy = app, policy
        self._seen: dict[str | None, bool] = {}

    def _allows(self, header: str | None) -> bool:
        known = self._seen.get(header)
        if known is None:
            known = self.policy.allows(header)
            if len(self._seen) < _HOST_CACHE:  # a client sending ever new Hosts is not kept
                self._seen[header] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = _header(scope, b"host")
            if not self._allows(header):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                shown = "no Host header" if not header else f"the Host {header[:100]!r}"
                await send_error(send, 400, (
                    f"{shown} is not a name of this server: if clients reach it by that name (a "
                    "reverse proxy's public name, say), add it to `serve.allowed_hosts` in "
                    "accountlens.toml (docs/security.md)"))
                return
        await self.app(scope, receive, send)


# --- rate limits -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RateLimit:
    """`per_second` requests on average, `burst` at once; `per_second` 0: no limit."""

    per_second: float
    burst: int

    @property
    def active(self) -> bool:
        return self.per_second > 0


class RateLimiter:
    """Token buckets by key, in memory: each request takes a token; a bucket holds up to `burst`
    and refills at `per_second`. O(1) per request; the least recently seen key is forgotten
    beyond `max_keys` (it then starts full again)."""

    def __init__(self, limit: RateLimit, max_keys: int = 100_000):
        self.rate, self.burst, self.max_keys = limit.per_second, float(limit.burst), max_keys
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, time]
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> int:
        """0 when the request may pass, else the whole seconds until it may (≥ 1)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._buckets.popitem(last=False)
                bucket = self._buckets[key] = [self.burst, now]
            else:
                self._buckets.move_to_end(key)
                bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
                bucket[1] = now
            if bucket[0] >= 1:
                bucket[0] -= 1
                return 0
            return max(1, math.ceil((1 - bucket[0]) / self.rate))


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("latin-1"), digest_size=12).hexdigest()


def client_key(scope: Scope, cookie: str) -> str:
    """Whose request this is, for the API's rate limit: its Authorization header, else its
    session cookie (named `cookie`), else its address. Credentials are kept only as hashes."""
    authorization = _header(scope, b"authorization")
    if authorization:
        return "auth:" + _digest(authorization)
    cookies = _header(scope, b"cookie") or ""
    for part in cookies.split(";"):
        name, _, value = part.strip().partition("=")
        if name == cookie and value:
            return "session:" + _digest(value)
    client = scope.get("client")
    return "client:" + (client[0] if client else "-")


class ApiRateLimit:
    """`serve.token_rate_limit` on `/api/...`: over it, HTTP 429 with `Retry-After`.
    `cookie`: the name of the web app's session cookie."""

    def __init__(self, app: ASGIApp, limit: RateLimit, cookie: str):
        self.app, self.cookie = app, cookie
        self.limiter = RateLimiter(limit) if limit.active else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.limiter is not None and scope["type"] == "http"
                and scope["path"].startswith(API_PREFIX)):
            wait = self.limiter.take(client_key(scope, self.cookie))
            if wait:
                await send_error(send, 429, (
                    f"too many requests: retry in {wait} s (serve.token_rate_limit, "
                    "serve.token_rate_burst)"), [(b"retry-after", str(wait).encode())])
                return
        await self.app(scope, receive, send)


# --- request size ----------------------------------------------------------------------------
class BodyLimit:
    """Bodies over `max_bytes` get 413: by their Content-Length before any is read, and a
    chunked body as soon as its bytes pass the limit. Imports are not limited (they stream to
    disk); neither are the ingestion endpoints, which the collector answers before this."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = (IMPORTS_PREFIX,)):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    def _message(self) -> str:
        return (f"the request body is larger than {self.max_bytes} bytes "
                "(serve.max_request_bytes)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await send_error(send, 413, self._message(), [(b"connection", b"close")])
                return
            await self.app(scope, receive, send)  # the server holds the body to its length
            return
        if _header(scope, b"transfer-encoding") is None:  # no length, not chunked: no body
            await self.app(scope, receive, send)
            return
        received, answered, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # answered here; the app sees a client that went away, and its own
                    # response (to that) is dropped
                    if not started:
                        answered = True
                        await send_error(send, 413, self._message(), [(b"connection", b"close")])
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)


# --- security headers ------------------------------------------------------------------------
# The web app loads only its own scripts (/static, Plotly from /static/vendor); Plotly and
# Redoc set inline styles, Redoc runs its search in a blob: worker, Swagger UI shows data:
# images. /docs's one inline script is allowed by its hash (added per response).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)
HASHED_PAGES = frozenset({"/docs"})  # pages with inline scripts of their own (Swagger UI's setup)


def _policy(hashes: Iterable[str] = ()) -> bytes:
    extra = "".join(f" 'sha256-{h}'" for h in hashes)
    return CONTENT_SECURITY_POLICY.format(hashes=extra).encode()


_PLAIN_POLICY = _policy()


def _script_hashes(body: bytes, encoding: bytes | None) -> list[str]:
    if encoding == b"gzip":  # the app compresses large responses
        body = gzip.decompress(body)
    return [base64.b64encode(hashlib.sha256(script).digest()).decode()
            for script in _INLINE_SCRIPT.findall(body)]


class SecurityHeaders:
    """nosniff, no framing, no referrer and a Content-Security-Policy on every response;
    `Cache-Control: no-store` on the API's (unless a route says otherwise)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith(API_PREFIX)
        if scope["path"] in HASHED_PAGES:
            await self._hashed(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _secured(message.get("headers", []), _PLAIN_POLICY, api)
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _hashed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A small page whose inline scripts are allowed by their hashes: held until whole."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def holding(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = start.get("headers", [])
            encoding = next((v for k, v in headers if k.lower() == b"content-encoding"), None)
            start["headers"] = _secured(headers, _policy(_script_hashes(body, encoding)), False)
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, holding)


def _secured(headers: Iterable[tuple[bytes, bytes]], policy: bytes,
             api: bool) -> list[tuple[bytes, bytes]]:
    headers = list(headers)
    present = {name.lower() for name, _ in headers}
    headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
    if b"content-security-policy" not in present:
        headers.append((b"content-security-policy", policy))
    if api and b"cache-control" not in present:
        headers.append((b"cache-control", b"no-store"))
    return headers


# --- access log ------------------------------------------------------------------------------
class _PrivateFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file only its owner may read (mode 0600, also after each rotation)."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # a file left by an earlier version may be readable by others
        return os.fdopen(fd, "a", encoding="utf-8")


@dataclass(frozen=True)
class AccessLogTarget:
    """A served workspace, for the access log: its name, folder and `serve.access_log`."""

    name: str
    folder: Path
    enabled: bool


class AccessLog:
    """One line per request to the REST API and the pages in `access.log` of the workspace the
    request names (`?workspace=`; else the first served):

        2025-01-02T03:04:05.678Z 127.0.0.1 GET /api/v1/status?workspace=alpha 200 4.2ms 512 token:ab12cd34 (admin)

    time (UTC), client address, method, path (of the query only `workspace`, never a value
    that could hold a token), status, duration, response bytes, and the actor the API's
    authentication recorded (`request.state.actor`; `-` when none)."""

    def __init__(self, app: ASGIApp, targets: list[AccessLogTarget]):
        self.app = app
        self.handlers: dict[str, logging.Handler | None] = {}  # None: that workspace logs nothing
        self.default: str | None = targets[0].name if targets else None
        for target in targets:
            handler = None
            if target.enabled:
                handler = _PrivateFileHandler(target.folder / ACCESS_LOG, maxBytes=ACCESS_LOG_BYTES,
                                              backupCount=ACCESS_LOG_BACKUPS, encoding="utf-8")
                handler.setFormatter(logging.Formatter("%(message)s"))
            self.handlers[target.name] = handler

    def close(self) -> None:
        for handler in self.handlers.values():
            if handler is not None:
                handler.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(self.handlers.values()):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, size = 500, 0  # what the server answers when the app fails before a response
        state = scope.setdefault("state", {})  # shared with the app's `request.state`

        async def counting(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            self._write(scope, state, status, size, time.perf_counter() - started)

    def _write(self, scope: Scope, state: Any, status: int, size: int, seconds: float) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        workspace = (query.get("workspace") or [None])[0]
        # the workspace named, when it is served; else (none or an unknown name) the first
        handler = self.handlers.get(workspace if workspace in self.handlers else self.default or "")
        if handler is None:
            return
        path = quote(scope["path"], safe="/:@!$&'()*+,;=-._~")
        if workspace is not None:
            path += "?" + urlencode({"workspace": workspace})
        client = scope.get("client")
        actor = state.get("actor") if isinstance(state, dict) else None
        actor = re.sub(r"[\x00-\x1f\x7f]", "?", str(actor)) if actor else "-"
        when = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = (f"{when} {client[0] if client else '-'} {scope['method']} {path} {status} "
                f"{seconds * 1000:.1f}ms {size} {actor}")
        try:
            handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO,
                                                  "levelname": "INFO"}))
        except Exception:  # a full disk must not fail the request
            logging.getLogger("accountlens.server").exception("cannot write the access log")
