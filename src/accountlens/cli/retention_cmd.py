"""`accountlens retention apply|show`: the retention policies of `[retention]` (docs/retention.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from accountlens.cli.common import DirOption, FormatOption, open_workspace
from accountlens.cli.formats import OutputFormat, emit

retention_app = typer.Typer(help="Retention policies: remove raw data older than the retention "
                                 "settings allow (the daily rollups stay).", no_args_is_help=True)


@retention_app.command("apply")
def apply(
    directory: DirOption = Path("."),
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would be removed; remove nothing.")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Remove the raw events, identify calls and quarantined events older than the retention
    settings allow, in one transaction, recorded in the audit log; one row per rule."""
    with open_workspace(directory) as ws:
        outcome = ws.apply_retention(dry_run=dry_run)
    _emit(outcome, fmt, "retention (dry run: nothing removed)" if dry_run else "retention applied")


@retention_app.command("show")
def show(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """The rules in effect with their cut-offs, how many rows each would remove now, and the
    retention horizon (nothing is removed or recorded)."""
    from accountlens.governance.retention import retention_plan

    with open_workspace(directory, read_only=True) as ws:
        outcome = retention_plan(ws.store, ws.config)
    _emit(outcome, fmt, "retention rules (rows: what applying them now removes)")


def _emit(outcome: dict[str, Any], fmt: OutputFormat, title: str) -> None:
    """The rules as rows (JSON and CSV: the bare rows); the counts per table, the horizon and
    the note after them (JSON and CSV: on stderr)."""
    emit(outcome["rules"], fmt, title=title)
    tables = [{"table": name, "removed": n, "kept": outcome["kept"][name]}
              for name, n in outcome["removed"].items()]
    horizon, dry = outcome["rollup_horizon"], outcome["dry_run"]
    lines = [f"rollup horizon{' once applied' if dry else ''}: {horizon} (raw events before it "
             f"{'will have' if dry else 'have'} expired; the daily rollup keeps them)" if horizon
             else "rollup horizon: none (no raw events have expired)"]
    if outcome["note"]:
        lines.append(f"note: {outcome['note']}")
    if fmt is OutputFormat.table:
        emit(tables, fmt, title="rows per table")
        sys.stdout.write("".join(line + "\n" for line in lines))
        return
    sys.stderr.write("".join(f"{row['table']}: {'would remove' if dry else 'removed'} "
                             f"{row['removed']}, kept {row['kept']}\n" for row in tables))
    sys.stderr.write("".join(line + "\n" for line in lines))


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
