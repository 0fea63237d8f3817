"""Request-side steps of ingestion: decode a request body and turn it into Segment-shaped events.

These run in the collector before anything is acknowledged, so they only do what must be
answered synchronously (size limits, JSON validity, write key); semantic validation happens
in the loader, where invalid events go to quarantine instead of being refused. Values are
passed on as sent (an object where an id belongs is quarantined by the loader, not turned
into text here), and integers keep every digit.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import orjson


class RequestError(ValueError):
    """A request the collector refuses with HTTP 400 (or 401 for `status=401`)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int
    max_batch_bytes: int


def decode_body(body: bytes, content_encoding: str | None, limits: Limits) -> Any:
    """Decompress (gzip/deflate) and parse a JSON body, enforcing the batch size limit."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        try:
            # Bound the inflated size so a small bomb cannot exhaust memory.
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = inflater.decompress(body, limits.max_batch_bytes + 1)
        except (OSError, zlib.error, EOFError) as exc:
            raise RequestError(f"body is not valid gzip: {exc}") from exc
    elif encoding == "deflate":
        try:
            body = zlib.decompressobj().decompress(body, limits.max_batch_bytes + 1)
        except zlib.error as exc:
            raise RequestError(f"body is not valid deflate data: {exc}") from exc
    elif encoding not in ("", "identity"):
        raise RequestError(f"unsupported Content-Encoding {content_encoding!r}")
    if len(body) > limits.max_batch_bytes:
        raise RequestError(
            f"batch exceeds {limits.max_batch_bytes} bytes; split it into smaller batches"
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"invalid JSON: {exc}") from exc
    if _LONG_DIGITS.search(body) is None:
        return payload
    # orjson reads an integer beyond 64 bits as a float: a 30-digit id would lose its last
    # digits. Such (rare) bodies, already validated by orjson, are read again keeping them.
    try:
        return json.loads(body, parse_int=_exact_int)
    except RecursionError:
        raise RequestError("JSON nested too deeply") from None


# A run of 19 digits: the shortest integer that may lie outside orjson's 64-bit range.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1


class ExactInteger:
    """An integer outside 64 bits, kept as its digits (written back to JSON as they came)."""

    __slots__ = ("digits",)

    def __init__(self, digits: str):
        self.digits = digits


def _exact_int(digits: str) -> int | ExactInteger:
    value = int(digits)
    return value if _INT64_MIN <= value <= _UINT64_MAX else ExactInteger(digits)


def _as_json(value: Any) -> Any:
    """`orjson.dumps` default: integers beyond 64 bits as their digits."""
    if isinstance(value, ExactInteger):
        return orjson.Fragment(value.digits)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _id_text(value: Any) -> Any:
    """A PostHog id as text: a string as is, a number as its decimal text. Anything else
    (an object, a list, a boolean) is passed on unchanged, for the loader to quarantine."""
    if isinstance(value, ExactInteger):
        return value.digits
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _check_event_size(line: bytes, index: int, limits: Limits) -> None:
    if len(line) > limits.max_event_bytes:
        raise RequestError(
            f"event {index} is {len(line)} bytes, over the {limits.max_event_bytes}-byte limit"
        )


def segment_events(payload: Any, path_type: str | None, received_at: str) -> list[dict]:
    """Events of a Segment request: `/v1/batch` (path_type None) or a single-event endpoint."""
    if not isinstance(payload, dict):
        raise RequestError("body must be a JSON object")
    if path_type is None:
        batch = payload.get("batch")
        if not isinstance(batch, list):
            raise RequestError("`batch` must be a list of events")
        context = payload.get("context") if isinstance(payload.get("context"), dict) else None
        sent_at = payload.get("sentAt")
    else:
        batch, context, sent_at = [payload], None, None
    events = []
    for index, event in enumerate(batch):
        if not isinstance(event, dict):
            raise RequestError(f"event {index} is not a JSON object")
        if path_type is not None:
            event.setdefault("type", path_type)
        if sent_at is not None:
            event.setdefault("sentAt", sent_at)
        own = event.get("context")
        if context and (own is None or isinstance(own, dict)):
            # Batch-level context applies to every event unless the event overrides a key
            # (an event context that is not an object is kept, for the loader to quarantine).
            event["context"] = {**context, **(own or {})}
        event["receivedAt"] = received_at
        events.append(event)
    return events


def _posthog_event(item: dict, sent_at: Any, account_group_type: str) -> dict:
    """Map one PostHog capture event to the Segment shape."""
    sent_properties = item.get("properties")
    # not an object: nothing is read from it, and the loader quarantines the event
    properties = dict(sent_properties) if isinstance(sent_properties, dict) else {}
    name = item.get("event")
    distinct_id = _id_text(item.get("distinct_id", properties.get("distinct_id")))
    out: dict[str, Any] = {
        "messageId": item.get("uuid"),
        "timestamp": item.get("timestamp"),
        "sentAt": item.get("sent_at", sent_at),
        "context": {"library": {"name": "posthog"}},
    }
    groups = properties.pop("$groups", None) or {}
    if isinstance(groups, dict) and groups:
        out["context"]["groups"] = groups
        if account_group_type in groups:
            out["context"]["groupId"] = _id_text(groups[account_group_type])
        elif len(groups) == 1:
            out["context"]["groupId"] = _id_text(next(iter(groups.values())))
    if name in ("$identify", "$set"):
        traits = {}
        for source in (properties.get("$set"), item.get("$set")):
            if isinstance(source, dict):
                traits.update(source)
        out.update(type="identify", userId=distinct_id, traits=traits)
        anon = properties.get("$anon_distinct_id")
        if anon:
            out["anonymousId"] = _id_text(anon)
    elif name == "$groupidentify":
        out.update(
            type="group",
            groupId=_id_text(properties.get("$group_key")),
            traits=properties.get("$group_set") or {},
            anonymousId=distinct_id,
        )
        out["context"]["groupType"] = properties.get("$group_type")
        if properties.get("$group_type") not in (None, account_group_type):
            out["type"] = "track"
            out["event"] = "$groupidentify"
    elif name == "$create_alias":
        out.update(type="alias", userId=distinct_id, previousId=properties.get("alias"))
    elif name == "$pageview":
        out.update(type="page", userId=distinct_id, name=properties.get("$current_url"))
    elif name == "$screen":
        out.update(type="screen", userId=distinct_id, name=properties.get("$screen_name"))
    else:
        out.update(type="track", userId=distinct_id, event=name)
    out["properties"] = properties if isinstance(sent_properties, dict | None) else sent_properties
    return out


def posthog_events(
    payload: Any, received_at: str, account_group_type: str
) -> tuple[str | None, list[dict]]:
    """(api_key, events) of a PostHog `/batch/` or `/capture/` request."""
    if isinstance(payload, list):
        payload = {"batch": payload}
    if not isinstance(payload, dict):
        raise RequestError("body must be a JSON object or a list of events")
    api_key = payload.get("api_key") or payload.get("token")
    if "batch" in payload:
        items = payload["batch"]
        if not isinstance(items, list):
            raise RequestError("`batch` must be a list of events")
    else:
        items = [payload]
    sent_at = payload.get("sent_at")
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError(f"event {index} is not a JSON object")
        event = _posthog_event(item, sent_at, account_group_type)
        properties = item.get("properties")
        api_key = (api_key or item.get("api_key")
                   or (properties.get("token") if isinstance(properties, dict) else None))
        event["receivedAt"] = received_at
        events.append(event)
    if api_key is not None and not isinstance(api_key, str):
        raise RequestError("`api_key` must be a string")
    return api_key, events


def encode_events(events: list[dict], limits: Limits) -> bytes:
    """Serialize events to newline-delimited JSON for the durable log, enforcing the event limit.

    A missing messageId is filled in here so that the log (and any replay of it) is stable.
    """
    lines = []
    for index, event in enumerate(events):
        if not event.get("messageId"):
            event["messageId"] = str(uuid.uuid4())
        try:
            line = orjson.dumps(event, default=_as_json)
        except orjson.JSONEncodeError as exc:
            # orjson writes at most 254 levels of nesting (and reads 1024): a deeper event
            # would fail on every retry, so it is refused, not answered with a 5xx
            raise RequestError(f"event {index} cannot be stored as JSON ({exc}): nest objects "
                               "and arrays at most 254 levels deep") from None
        _check_event_size(line, index, limits)
        lines.append(line)
    return b"\n".join(lines) + b"\n" if lines else b""
