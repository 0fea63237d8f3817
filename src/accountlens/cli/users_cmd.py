"""`accountlens users delete USER_ID|--email EMAIL`: delete a person on request (docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from accountlens.cli.common import DirOption, FormatOption, fail, local_or_served
from accountlens.cli.formats import OutputFormat, emit

users_app = typer.Typer(help="People in the workspace: delete one on request (GDPR).",
                        no_args_is_help=True)


@users_app.command("delete")
def delete(
    user_id: Annotated[str | None, typer.Argument(help="The user id to delete.")] = None,
    email: Annotated[str | None, typer.Option(
        "--email", help="Delete every user with this e-mail address (case-insensitive).")] = None,
    directory: DirOption = Path("."),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Delete a person: their events, identities, memberships, profile and quarantined events;
    the daily rollup corrected; their ids hashed into the suppression list so their events are
    refused if they arrive again; Parquet exports flagged; the counts in the audit log."""
    if (user_id is None) == (email is None):
        fail("give a user id or --email EMAIL (one of them)")
    who = f"the user {user_id!r}" if email is None else f"every user with the e-mail {email!r}"
    if not yes and not typer.confirm(f"Delete {who} and all their data? This cannot be undone"):
        fail("nothing was deleted", code=1)
    result = _delete(directory, user_id, email)
    if fmt is not OutputFormat.table:  # one row, nested counts (json; csv shows them as JSON)
        emit([result], fmt)
        return
    removed, corrected = result["removed"], result["corrected"]
    rows = [{"table": table, "rows removed": removed.get(table, 0),
             "rows recomputed": corrected.get(table, 0)} for table in {**removed, **corrected}]
    emit(rows, OutputFormat.table, title=f"deleted {result['users']} user(s)")
    typer.echo(f"{result['suppressed']} suppression-list entries (their events are refused from "
               f"now on); audit subject {result['subject'][:16]}…"
               + ("; the Parquet export was flagged: run `accountlens export parquet DIR "
                  "--overwrite`" if result["parquet_flagged"] else ""))


def _delete(directory: Path, user_id: str | None, email: str | None) -> dict[str, Any]:
    """Delete in the workspace's store, or through the server that holds it (which loads what
    it acknowledged first)."""
    from accountlens.analysis.account_detail import EntityNotFound

    ws = local_or_served(directory, "deleting")
    if isinstance(ws, str):
        return _delete_remote(ws, directory, user_id, email)
    with ws:
        try:
            return ws.delete_user(user_id=user_id, email=email)
        except EntityNotFound as exc:
            fail(str(exc.args[0]) if exc.args else str(exc))


def _delete_remote(url: str, directory: Path, user_id: str | None,
                   email: str | None) -> dict[str, Any]:
    """`POST /api/v1/admin/users/delete` with the server's own admin token (serve.json)."""
    from accountlens.cli.remote import RemoteImportError, call

    try:
        return dict(call(url, directory, "POST", "/api/v1/admin/users/delete",
                         body={"user_id": user_id} if email is None else {"email": email}))
    except RemoteImportError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
