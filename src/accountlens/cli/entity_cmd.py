"""`accountlens account ID` and `accountlens user ID`: one account or user as of a day, the same
object as `GET /api/v1/accounts/{id}` and `/api/v1/users/{id}` (docs/web-api.md)."""

from __future__ import annotations

import io
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from accountlens.cli.common import DirOption, fail, open_workspace

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

TABLE_ROWS = 25  # rows per section of the table format (JSON carries every row)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


class DetailFormat(StrEnum):
    table = "table"
    json = "json"


AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="The day it is as of, YYYY-MM-DD (default: the latest active event day).")]
DetailFormatOption = Annotated[DetailFormat, typer.Option("--format", "-f", help="Output format.")]


def register(app: typer.Typer) -> None:
    @app.command("account")
    def account(
        account_id: Annotated[str, typer.Argument(help="The account id.")],
        directory: DirOption = Path("."),
        as_of: AsOfOption = None,
        fmt: DetailFormatOption = DetailFormat.table,
    ) -> None:
        """One account as of a day: record, parent and children, org units, users, contract
        with entitlements, and timeline."""
        _show(directory, "account_detail", account_id, as_of, fmt, _account_sections)

    @app.command("user")
    def user(
        user_id: Annotated[str, typer.Argument(help="The user id.")],
        directory: DirOption = Path("."),
        as_of: AsOfOption = None,
        fmt: DetailFormatOption = DetailFormat.table,
    ) -> None:
        """One user as of a day: record, memberships, accounts, daily activity and top events."""
        _show(directory, "user_detail", user_id, as_of, fmt, _user_sections)


def _show(directory: Path, method: str, entity_id: str, as_of: str | None, fmt: DetailFormat,
          sections) -> None:
    import orjson

    from accountlens.analysis.account_detail import EntityNotFound

    with open_workspace(directory) as ws:
        try:
            detail = getattr(ws, method)(entity_id, as_of=as_of)
        except (EntityNotFound, ValueError) as exc:
            fail(str(exc.args[0]) if exc.args else str(exc))
    data = detail.model_dump(mode="json")
    if fmt is DetailFormat.json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.console import Console

    console = Console(file=io.StringIO(), width=max(100, Console().width), record=True)
    sections(console, detail, data)
    sys.stdout.write(console.export_text())


def _fields(console: Console, title: str, values: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in values.items():
        table.add_row(key, _shown(value))
    console.print(table)


def _rows(console: Console, title: str, rows: list[dict[str, Any]],
          columns: list[str] | None = None) -> None:
    from rich.table import Table

    if not rows:
        console.print(f"{title}: none")
        return
    columns = columns or list(rows[0])
    shown = rows[:TABLE_ROWS]
    more = f" (first {len(shown)} of {len(rows)}; all with --format json)" if len(rows) > len(shown) else ""
    table = Table(title=title + more, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in shown:
        table.add_row(*(_shown(row.get(c)) for c in columns))
    console.print(table)


def _shown(value: Any) -> str:
    """A value as the table shows it: timestamps to the minute (UTC), floats rounded."""
    if value is None:
        return ""
    if isinstance(value, str) and _TIMESTAMP.match(value):
        return value[:16].replace("T", " ")
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):
        return ", ".join(f"{k}={_shown(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    return str(value)


def _account_sections(console: Console, detail: BaseModel, data: dict[str, Any]) -> None:
    account = data["account"]
    _fields(console, f"account {account['account_id']} as of {data['as_of']}", {
        **{k: v for k, v in account.items() if k != "account_id"},
        "parent": data["parent"] and f"{data['parent']['account_id']} ({data['parent']['name']})"})
    _rows(console, "children", data["children"])
    contract = data["contract"]
    _fields(console, "contract", {k: v for k, v in contract.items()
                                  if k not in ("subscriptions", "entitlements")})
    _rows(console, "subscriptions in force", contract["subscriptions"])
    _rows(console, "entitlements", contract["entitlements"])
    _rows(console, "org units", data["units"])
    users = data["users"]
    title = f"users ({data['users_total']}{', list cut' if data['users_truncated'] else ''})"
    _rows(console, title, users, ["user_id", "name", "role", "unit_name", "member_since",
                                  "last_active_at", "events_30d", "current"])
    _rows(console, "timeline (newest first)", data["timeline"], ["at", "kind", "text"])


def _user_sections(console: Console, detail: BaseModel, data: dict[str, Any]) -> None:
    _fields(console, f"user {data['user']['user_id']} as of {data['as_of']}",
            {k: v for k, v in data["user"].items() if k != "user_id"})
    _rows(console, "memberships", data["memberships"])
    _rows(console, "accounts", data["accounts"])
    activity = data["activity"]
    active = [row for row in activity if row["events"]]
    console.print(f"activity: {sum(r['events'] for r in activity)} active events on "
                  f"{len(active)} of the last {len(activity)} days")
    _rows(console, "top events (90 days)", data["top_events"])
