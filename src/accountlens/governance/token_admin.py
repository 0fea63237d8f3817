"""Creating, rotating and revoking API tokens, each recorded in the audit log — what
`accountlens tokens …` and `/api/v1/admin/tokens` share. They need no store: tokens work
while `accountlens serve` holds the workspace."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from accountlens.governance.audit import Actor, AuditLog
from accountlens.governance.tokens import TokenError, TokenStore


def parse_expiry(text: str | dt.date | dt.datetime | None) -> dt.datetime | None:
    """An expiry given as a date (the token works through that day, UTC) or an ISO date-time."""
    if text is None or text == "":
        return None
    if isinstance(text, dt.datetime):
        return text if text.tzinfo else text.replace(tzinfo=dt.UTC)
    if isinstance(text, dt.date):
        return dt.datetime.combine(text + dt.timedelta(days=1), dt.time(), dt.UTC)
    try:
        if len(text) == 10:
            return parse_expiry(dt.date.fromisoformat(text))
        return parse_expiry(dt.datetime.fromisoformat(text))
    except ValueError as exc:
        raise TokenError(f"expiry {text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from exc


def create_token(tokens: TokenStore, audit: AuditLog, actor: Actor, role: str,
                 owner: str | None = None, accounts: Iterable[str] = (),
                 expires: str | dt.date | dt.datetime | None = None,
                 name: str = "") -> dict[str, Any]:
    """A new token: `{"token": SECRET, ...its record}` (the secret is shown this once)."""
    secret, record = tokens.create(role, owner, accounts, parse_expiry(expires), name,
                                   created_by=actor.name)
    audit.record(actor, "token.create", f"token:{record.id}",
                 {"role": record.role, "owner": record.owner, "accounts": len(record.accounts),
                  "expires_at": record.expires_at, "name": record.name})
    return {"token": secret, **record.public()}


def rotate_token(tokens: TokenStore, audit: AuditLog, actor: Actor, token_id: str) -> dict[str, Any]:
    secret, record = tokens.rotate(token_id)
    audit.record(actor, "token.rotate", f"token:{record.id}", {"role": record.role})
    return {"token": secret, **record.public()}


def revoke_token(tokens: TokenStore, audit: AuditLog, actor: Actor, token_id: str) -> dict[str, Any]:
    record = tokens.revoke(token_id)
    audit.record(actor, "token.revoke", f"token:{record.id}", {"role": record.role})
    return record.public()
