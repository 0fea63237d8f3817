"""CORS on the collector endpoints: which web origins may send events with which write key.

A preflight carries no write key, so it is answered for an origin that any served write key
allows; the request itself is then checked against its own key's origins. A request from a
browser on a refused origin gets 403 and no allow header, even the "simple" ones (text/plain
bodies, sendBeacon) that browsers send without a preflight. Requests without an Origin header
(server-side SDKs) and same-origin pages are not affected. Credentials are never allowed:
write keys travel in the body or the Authorization header, never in cookies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import orjson

from accountlens.ingest.normalize import RequestError

ANY_ORIGIN = "*"
ALLOW_METHODS = b"POST, OPTIONS"
# What analytics.js (Authorization: Basic, X-Retry-Count on retries) and posthog-js send, and
# Content-Encoding for clients that compress.
ALLOW_HEADERS = b"Content-Type, Authorization, Content-Encoding, X-Retry-Count"
EXPOSE_HEADERS = b"Retry-After"  # not CORS-safelisted; SDKs read it to back off
MAX_AGE = b"7200"  # Chromium caps a cached preflight at 2 hours; longer is ignored there


class OriginRefused(RequestError):
    """A browser request from an origin its write key does not allow."""

    def __init__(self, origin: str):
        super().__init__(f"origin {origin} may not send with this write key: add it to the "
                         "key's list in [workspace.origins] of accountlens.toml", 403)


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def is_preflight(scope: MutableMapping[str, Any]) -> bool:
    return scope["type"] == "http" and scope["method"] == "OPTIONS"


class OriginPolicy:
    """The origins each write key allows (normalized as config.normalize_origin does)."""

    def __init__(self, by_key: Mapping[str, Iterable[str]]):
        self.by_key = {key: frozenset(origins) for key, origins in by_key.items()}
        self.any_key = frozenset().union(*self.by_key.values())

    @staticmethod
    def _cross_origin(headers: Mapping[str, str]) -> str | None:
        """The request's Origin when it is another origin than the collector's own."""
        origin = headers.get("origin")
        if origin is None:
            return None
        host = headers.get("host", "").lower()
        if host and origin.lower().partition("://")[2] == host:
            return None
        return origin

    def admit(self, key: str | None, headers: Mapping[str, str]) -> None:
        """Refuse a cross-origin request whose origin `key` does not allow."""
        origin = self._cross_origin(headers)
        if origin is None:
            return
        allowed = self.by_key.get(key or "", frozenset())
        if ANY_ORIGIN not in allowed and origin not in allowed:
            raise OriginRefused(origin)

    def _allowed_somewhere(self, origin: str) -> bool:
        return ANY_ORIGIN in self.any_key or origin in self.any_key

    def response_headers(self, scope: MutableMapping[str, Any],
                         refused: bool = False) -> list[tuple[bytes, bytes]]:
        """CORS headers of an ingestion response (`refused`: its origin was refused)."""
        origin = _header(scope, b"origin")
        if origin is None:
            return []
        vary = [(b"vary", b"Origin")]
        if refused or not self._allowed_somewhere(origin):
            return vary
        return [*vary, (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", EXPOSE_HEADERS)]

    def preflight(self, scope: MutableMapping[str, Any]) -> tuple[int, list[tuple[bytes, bytes]],
                                                                 bytes]:
        """(status, headers, body) of an OPTIONS request to an ingestion endpoint."""
        origin = _header(scope, b"origin")
        allow = [(b"allow", ALLOW_METHODS)]
        if origin is None:  # not a CORS preflight
            return 204, allow, b""
        if not self._allowed_somewhere(origin):
            body = orjson.dumps({"success": False, "error": f"origin {origin} may not send "
                                 "events here: list it in [workspace.origins] of accountlens.toml"})
            return 403, [(b"vary", b"Origin"), (b"content-type", b"application/json")], body
        return 204, [*allow, (b"vary", b"Origin"),
                     (b"access-control-allow-origin", origin.encode("latin-1")),
                     (b"access-control-allow-methods", ALLOW_METHODS),
                     (b"access-control-allow-headers", ALLOW_HEADERS),
                     (b"access-control-max-age", MAX_AGE)], b""
