"""The audit trail: an append-only, hash-chained log of who changed, exported, deleted or was
refused what (docs/governance.md, "Audit trail").

`audit.jsonl` in the workspace folder, one JSON object per line. Each entry carries the hash of
the one before (`prev`) and its own (`hash`, SHA-256 over the entry without it), so editing,
removing or reordering an entry breaks the chain at that entry (`verify`). The CLI and the
server append to the same file, each holding an exclusive lock for the append.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64  # the `prev` of the first entry


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where: `token:ID` (its role), `local-admin` (the server's own token,
    for the CLI on the same machine), `cli:USER` (a command run on the workspace folder), or
    `anonymous` (no token, on a workspace without tokens)."""

    name: str
    role: str
    source: str

    @classmethod
    def cli(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(f"cli:{user}", "admin", f"local ({socket.gethostname()})")


class AuditError(RuntimeError):
    """The audit log cannot be read or written; the message says where."""


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[Any]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _last_line(handle: Any) -> bytes | None:
    handle.seek(0, os.SEEK_END)
    end = handle.tell()
    if end == 0:
        return None
    block, data = 4096, b""
    position = end
    while position > 0:
        step = min(block, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + data
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or position == 0:
            return lines[-1]
    return None


def _utc_text(moment: dt.datetime) -> str:
    """`moment` as the entries' `at` text, for comparing; a moment whose UTC time lies beyond
    year 1 or 9999 compares before or after every entry."""
    try:
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:
        return "" if moment.year < 5000 else "~"


class AuditLog:
    """The audit log of the workspace folder `root`."""

    def __init__(self, root: Path):
        self.path = Path(root) / AUDIT_FILE

    def record(self, actor: Actor, action: str, target: str = "",
               details: dict[str, Any] | None = None, outcome: str = "ok") -> dict[str, Any]:
        """Append one entry (under the file's lock) and return it. `details` must hold no
        personal data or secrets: counts, names of settings, ids of tokens."""
        with _locked(self.path) as handle:
            last = _last_line(handle)
            try:
                previous = orjson.loads(last) if last else None
            except orjson.JSONDecodeError as exc:
                raise AuditError(f"{self.path}: the last entry is not JSON ({exc}); "
                                 "run `accountlens audit verify`") from exc
            entry: dict[str, Any] = {
                "seq": (previous["seq"] + 1) if previous else 1,
                "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "actor": actor.name, "role": actor.role, "source": actor.source,
                "action": action, "target": target, "outcome": outcome,
                "details": details or {},
                "prev": previous["hash"] if previous else GENESIS,
            }
            entry["hash"] = entry_hash(entry)
            handle.seek(0, os.SEEK_END)
            handle.write(orjson.dumps(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return entry

    def entries(self, since: dt.datetime | None = None, actor: str | None = None,
                action: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries, oldest first: at or after `since`, by `actor` (exact, or a prefix ending in
        `:`), whose action starts with `action`; the last `limit` of them."""
        if not self.path.exists():
            return []
        since_text = _utc_text(since) if since else ""
        rows = []
        for number, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise AuditError(f"{self.path}:{number}: not JSON ({exc}); the log was edited: "
                                 "run `accountlens audit verify`") from exc
            if since_text and entry.get("at", "") < since_text:
                continue
            if actor and not (entry.get("actor") == actor
                              or (actor.endswith(":") and str(entry.get("actor")).startswith(actor))):
                continue
            if action and not str(entry.get("action", "")).startswith(action):
                continue
            rows.append(entry)
        return rows[-limit:] if limit else rows

    def verify(self) -> dict[str, Any]:
        """Check the chain: `ok`, the number of entries, the head hash (keep it elsewhere to
        detect a truncated tail), and the first broken entry with what is wrong."""
        result: dict[str, Any] = {"ok": True, "entries": 0, "head": GENESIS, "broken_at": None,
                                  "problem": None}
        if not self.path.exists():
            return result
        previous, expected_seq = GENESIS, 1
        for number, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            problem = None
            try:
                entry = orjson.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError:
                problem, entry = "not a JSON object", {}
            if problem is None and entry.get("prev") != previous:
                problem = "its prev is not the hash of the entry before (one was removed, " \
                          "reordered or edited)"
            elif problem is None and entry.get("hash") != entry_hash(entry):
                problem = "its content does not match its hash (it was edited)"
            elif problem is None and entry.get("seq") != expected_seq:
                problem = f"its seq is {entry.get('seq')}, expected {expected_seq}"
            if problem is not None:
                result.update(ok=False, broken_at=number, problem=f"line {number}: {problem}")
                return result
            previous, expected_seq = entry["hash"], expected_seq + 1
            result["entries"] += 1
            result["head"] = previous
        return result
