"""`accountlens tokens …` and `accountlens audit …` (docs/governance.md). Neither opens the
store: they work while `accountlens serve` holds the workspace."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from accountlens.cli.common import DirOption, FormatOption, fail
from accountlens.cli.formats import OutputFormat, emit

tokens_app = typer.Typer(help="API tokens with roles: create, list, rotate, revoke.",
                         no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail: list entries, verify the chain.",
                        invoke_without_command=True)


def _workspace_files(directory: Path):  # (TokenStore, AuditLog) of the folder
    from accountlens.config import CONFIG_FILE, ConfigError, load_config
    from accountlens.governance.audit import AuditLog
    from accountlens.governance.tokens import TokenStore

    try:
        config = load_config(directory / CONFIG_FILE)
    except ConfigError as exc:
        fail(str(exc))
    return TokenStore(directory, config.workspace.api_tokens), AuditLog(directory)


def _run(action, *args):  # a token change, or its refusal as a clear error
    from accountlens.governance.tokens import TokenError

    try:
        return action(*args)
    except TokenError as exc:
        fail(str(exc))


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="admin, analyst, viewer or csm.")],
    owner: Annotated[str | None, typer.Option(help="csm: the accounts whose owner trait is this e-mail.")] = None,
    accounts: Annotated[str | None, typer.Option(help="csm: these accounts too (ID,ID).")] = None,
    expires: Annotated[str | None, typer.Option(help="Last valid day (YYYY-MM-DD) or an ISO date-time.")] = None,
    name: Annotated[str, typer.Option(help="A label, e.g. who holds the token.")] = "",
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Create a token; it is shown once (stored hashed)."""
    from accountlens.governance.audit import Actor
    from accountlens.governance.token_admin import create_token

    tokens, audit = _workspace_files(directory)
    listed = [a for a in (accounts or "").split(",") if a.strip()]
    row = _run(create_token, tokens, audit, Actor.cli(), role, owner, listed, expires, name)
    emit([row], fmt, title="new token (shown once: keep it now)")


@tokens_app.command("list")
def tokens_list(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """The tokens with role, book, expiry and state (never their secrets)."""
    tokens, _ = _workspace_files(directory)
    rows = _run(tokens.listing)
    if fmt is OutputFormat.table:  # the columns that fit a terminal; json and csv have them all
        shown = ("id", "role", "name", "owner", "accounts", "expires_at", "state")
        rows = [{k: row[k] for k in shown} for row in rows]
    emit(rows, fmt, title="API tokens")


@tokens_app.command("rotate")
def tokens_rotate(token_id: Annotated[str, typer.Argument(help="The token's id.")],
                  directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """A new secret for the token (shown once); the old one stops working."""
    from accountlens.governance.audit import Actor
    from accountlens.governance.token_admin import rotate_token

    tokens, audit = _workspace_files(directory)
    emit([_run(rotate_token, tokens, audit, Actor.cli(), token_id)], fmt, title="rotated token")


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id.")],
                  directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """Revoke a token at once (sessions opened with it end too)."""
    from accountlens.governance.audit import Actor
    from accountlens.governance.token_admin import revoke_token

    tokens, audit = _workspace_files(directory)
    emit([_run(revoke_token, tokens, audit, Actor.cli(), token_id)], fmt, title="revoked token")


@audit_app.callback()
def audit_list(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="Entries at or after (YYYY-MM-DD or ISO date-time, UTC).")] = None,
    actor: Annotated[str | None, typer.Option(help="Entries by this actor (token:ID, cli:USER), or a prefix ending in ':'.")] = None,
    action: Annotated[str | None, typer.Option(help="Actions starting with this (token., import., access.denied…).")] = None,
    limit: Annotated[int, typer.Option(help="The last N matching entries.")] = 1000,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The audit trail, oldest first: who did what, when, from where."""
    if ctx.invoked_subcommand is not None:
        return
    from accountlens.governance.audit import AuditError

    _, audit = _workspace_files(directory)
    moment = None
    if since:
        try:
            moment = dt.datetime.fromisoformat(since)
        except ValueError:
            fail(f"--since {since!r} is not a date (YYYY-MM-DD) or an ISO date-time")
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    try:
        rows = audit.entries(moment, actor, action, limit)
    except AuditError as exc:
        fail(str(exc))
    if fmt is OutputFormat.table:
        rows = [{k: v for k, v in row.items() if k not in ("prev", "hash")} for row in rows]
    emit(rows, fmt, title="audit trail")


@audit_app.command("verify")
def audit_verify(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """Check the hash chain; exits 1 when an entry was edited, removed or reordered."""
    _, audit = _workspace_files(directory)
    result = audit.verify()
    emit([result], fmt, title="audit chain")
    if not result["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(audit_app, name="audit")
