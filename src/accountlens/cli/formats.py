"""Output formats of every query command (`--format table|json|csv`), one registry."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from accountlens.results import Result


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _table(rows: list[dict[str, Any]], title: str | None) -> str:
    console = Console(file=io.StringIO(), width=max(100, Console().width), record=True)
    table = Table(title=title, show_lines=False)
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_shown(row[c]) for c in columns))
    if not rows:
        return (title + ": " if title else "") + "no rows\n"
    console.print(table)
    return console.export_text()


def _shown(value: Any) -> str:
    """A cell as the table shows it: floats rounded to 4 decimals (for display only: JSON and
    CSV carry the value itself)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, float):
        text = f"{value:,.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


def _json(rows: list[dict[str, Any]], title: str | None) -> str:
    return orjson.dumps(rows, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode() + "\n"


def _csv(rows: list[dict[str, Any]], title: str | None) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


RENDERERS: dict[OutputFormat, Callable[[list[dict[str, Any]], str | None], str]] = {
    OutputFormat.table: _table,
    OutputFormat.json: _json,
    OutputFormat.csv: _csv,
}


def emit(rows: list[dict[str, Any]], fmt: OutputFormat, title: str | None = None) -> None:
    sys.stdout.write(RENDERERS[fmt](rows, title))


def emit_result(result: Result, fmt: OutputFormat) -> None:
    """A metric's or analysis's rows; the table's title names the level and the day (as-of)
    and its notes follow it. JSON and CSV stay the bare rows: that line and the notes go to
    stderr."""
    rows = result.records()
    if fmt is OutputFormat.table:
        shown = result.table_columns
        if shown:
            rows = [{c: row[c] for c in shown} for row in rows]
        sys.stdout.write(_table(rows, result.describe()))
        if shown and len(shown) < len(result.frame.columns):
            sys.stdout.write(f"note: {len(result.frame.columns) - len(shown)} more columns "
                             "with --format json or csv\n")
        for note in result.notes:
            sys.stdout.write(f"note: {note}\n")
        return
    if fmt is OutputFormat.csv and not rows:  # still the columns, so a reader knows them
        sys.stdout.write(",".join(c.name for c in result.columns) + "\n")
    else:
        sys.stdout.write(RENDERERS[fmt](rows, None))
    sys.stderr.write(result.describe() + "\n")
    for note in result.notes:
        sys.stderr.write(f"note: {note}\n")
