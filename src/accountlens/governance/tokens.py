"""API tokens with roles (docs/governance.md, "Tokens and roles").

A token is `al_<id>_<secret>`: the id names it in lists and in the audit log, the secret is
shown once and kept only as an HMAC-SHA256 under the workspace's server secret (`secret.key`,
mode 0600), compared in constant time. The tokens live in `tokens.json` (mode 0600) beside
`accountlens.toml`, not in the DuckDB file, so `accountlens tokens …` works while `serve` holds
the store; the server rereads the file when it changes. Plain `workspace.api_tokens` of older
workspaces still work, as analyst tokens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import orjson

TOKENS_FILE = "tokens.json"
SECRET_FILE = "secret.key"
Role = Literal["admin", "analyst", "viewer", "csm"]
ROLES: tuple[str, ...] = get_args(Role)

# What each role may do. `read`: metrics, analyses, accounts, users, reports, the dashboard;
# `raw`: raw events (quarantine); `export`: bulk exports; `write`: imports, flush, replay;
# `admin`: tokens, audit, retention, deletion.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "raw", "export", "write", "admin"}),
    "analyst": frozenset({"read", "raw", "export"}),
    "viewer": frozenset({"read"}),
    "csm": frozenset({"read"}),
}
Permission = Literal["read", "raw", "export", "write", "admin"]

_TOKEN = re.compile(r"al_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})")


class TokenError(ValueError):
    """A token request is invalid (unknown role, a csm without a book, an unknown id…)."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a token's id, role and (for `csm`) book of accounts."""

    name: str  # token:ID, legacy:HASH, local-admin, anonymous
    role: str
    owner: str | None = None  # csm: accounts whose `owner` trait is this (case-insensitive)
    accounts: tuple[str, ...] = ()  # csm: these accounts too

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]

    @property
    def restricted(self) -> bool:
        """Whether the principal sees a book of accounts only."""
        return self.role == "csm"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role})"


ANONYMOUS = Principal("anonymous", "analyst")  # a workspace without tokens, reads only
LOCAL_ADMIN = Principal("local-admin", "admin")


@dataclass
class TokenRecord:
    id: str
    role: str
    hash: str
    created_at: str
    name: str = ""
    owner: str | None = None
    accounts: list[str] = field(default_factory=list)
    expires_at: str | None = None
    revoked_at: str | None = None
    created_by: str = ""
    rotated_at: str | None = None

    def principal(self) -> Principal:
        return Principal(f"token:{self.id}", self.role, self.owner, tuple(self.accounts))

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and dt.datetime.fromisoformat(self.expires_at) <= now:
            return "expired"
        return "active"

    def public(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """The record without its hash, with its state (what `tokens list` shows)."""
        row = {k: v for k, v in vars(self).items() if k != "hash"}
        row["state"] = self.state(now or _now())
        return row


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def workspace_secret(root: Path) -> bytes:
    """The workspace's server secret (made on first use, mode 0600)."""
    path = Path(root) / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    value = secrets.token_bytes(32)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value.hex() + "\n")
        return value
    return bytes.fromhex(path.read_text().strip())  # another process made it first


class TokenStore:
    """The tokens of the workspace folder `root`, and the legacy plain `api_tokens`."""

    def __init__(self, root: Path, legacy: Iterable[str] = ()):
        self.root = Path(root)
        self.path = self.root / TOKENS_FILE
        self.legacy = tuple(legacy)
        self._cache: tuple[tuple[int, int, int], dict[str, TokenRecord]] | None = None
        self._key: bytes | None = None

    # --- reading ------------------------------------------------------------------------------
    def _hash(self, secret: str) -> str:
        if self._key is None:
            self._key = workspace_secret(self.root)
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()

    def records(self) -> dict[str, TokenRecord]:
        """The stored tokens by id (reread when the file changed)."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if self._cache is None or self._cache[0] != stamp:
            try:
                raw = orjson.loads(self.path.read_bytes())
                records = {row["id"]: TokenRecord(**row) for row in raw.get("tokens", [])}
            except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
                raise TokenError(f"{self.path} is damaged ({exc}); restore it from a backup "
                                 "or remove it and create tokens again") from exc
            self._cache = (stamp, records)
        return self._cache[1]

    def has_tokens(self) -> bool:
        """Whether any token (active or not) or legacy token exists: then reads need one."""
        return bool(self.legacy) or bool(self.records())

    def resolve(self, token: str, now: dt.datetime | None = None) -> Principal | None:
        """The principal of a presented token; None for an unknown, expired or revoked one.
        Compared in constant time (every legacy token is compared)."""
        match = _TOKEN.fullmatch(token)
        if match is not None:
            record = self.records().get(match.group(1))
            expected = record.hash if record else "0" * 64
            equal = hmac.compare_digest(expected, self._hash(match.group(2)))
            if record is not None and equal and record.state(now or _now()) == "active":
                return record.principal()
            return None
        given = token.encode()
        hits = [hmac.compare_digest(given, t.encode()) for t in self.legacy]
        if any(hits):
            digest = hashlib.sha256(given).hexdigest()[:8]
            return Principal(f"legacy:{digest}", "analyst")
        return None

    def credential(self, token: str) -> str | None:
        """What a browser session keeps instead of the token (api/session.py): the token's id
        and stored hash, or a hash of a legacy token. Rotating or revoking the token ends it."""
        principal = self.resolve(token)
        if principal is None:
            return None
        if principal.name.startswith("token:"):
            record = self.records()[principal.name.removeprefix("token:")]
            return f"{record.id}:{record.hash}"
        return "legacy:" + hashlib.sha256(token.encode()).hexdigest()

    def resolve_credential(self, credential: str, now: dt.datetime | None = None) -> Principal | None:
        """The principal of a session's credential, if its token still holds."""
        kind, _, digest = credential.partition(":")
        if kind == "legacy":
            hits = [hmac.compare_digest(digest, hashlib.sha256(t.encode()).hexdigest())
                    for t in self.legacy]
            return Principal(f"legacy:{digest[:8]}", "analyst") if any(hits) else None
        record = self.records().get(kind)
        if record is None or not hmac.compare_digest(record.hash, digest):
            return None
        return record.principal() if record.state(now or _now()) == "active" else None

    # --- changing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, TokenRecord]]:
        lock_path = self.root / (TOKENS_FILE + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cache = None
            records = dict(self.records())
            yield records
            body = orjson.dumps({"tokens": [vars(r) for r in records.values()]},
                                option=orjson.OPT_INDENT_2)
            temporary = self.path.with_suffix(".json.tmp")
            fd2 = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd2, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            self._cache = None

    def create(self, role: str, owner: str | None = None, accounts: Iterable[str] = (),
               expires: dt.datetime | None = None, name: str = "",
               created_by: str = "") -> tuple[str, TokenRecord]:
        """A new token (the secret text, shown once) and its record."""
        accounts = [a for a in (a.strip() for a in accounts) if a]
        owner = owner.strip().lower() if owner and owner.strip() else None
        if role not in ROLES:
            raise TokenError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if role == "csm" and not owner and not accounts:
            raise TokenError("a csm token needs a book: --owner EMAIL (accounts whose owner "
                             "trait is that) and/or --accounts ID,ID")
        if role != "csm" and (owner or accounts):
            raise TokenError("--owner and --accounts set a csm token's book; other roles see "
                             "every account")
        if expires is not None and expires <= _now():
            raise TokenError(f"the expiry {_iso(expires)} is not in the future")
        secret = secrets.token_urlsafe(32)
        with self._editing() as records:
            token_id = secrets.token_hex(6)
            while token_id in records:
                token_id = secrets.token_hex(6)
            record = TokenRecord(id=token_id, role=role, hash=self._hash(secret),
                                 created_at=_iso(_now()), name=name, owner=owner,
                                 accounts=accounts, created_by=created_by,
                                 expires_at=_iso(expires) if expires else None)
            records[token_id] = record
        return f"al_{token_id}_{secret}", record

    def _existing(self, records: dict[str, TokenRecord], token_id: str) -> TokenRecord:
        record = records.get(token_id.removeprefix("token:"))
        if record is None:
            raise TokenError(f"no token with id {token_id!r} (see `accountlens tokens list`)")
        return record

    def rotate(self, token_id: str) -> tuple[str, TokenRecord]:
        """A new secret for the token (same id, role and book); the old secret stops working."""
        secret = secrets.token_urlsafe(32)
        with self._editing() as records:
            record = self._existing(records, token_id)
            if record.revoked_at:
                raise TokenError(f"token {record.id} is revoked; create a new one")
            record.hash, record.rotated_at = self._hash(secret), _iso(_now())
        return f"al_{record.id}_{secret}", record

    def revoke(self, token_id: str) -> TokenRecord:
        with self._editing() as records:
            record = self._existing(records, token_id)
            if not record.revoked_at:
                record.revoked_at = _iso(_now())
        return record

    def listing(self) -> list[dict[str, Any]]:
        now = _now()
        return [r.public(now) for r in sorted(self.records().values(), key=lambda r: r.created_at)]
