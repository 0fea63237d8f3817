"""`accountlens lake enable|disable|status|publish`: the events as a lake of Parquet files
(docs/lake.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from accountlens.cli.common import DirOption, FormatOption, fail
from accountlens.cli.formats import OutputFormat, emit

lake_app = typer.Typer(help="Keep the events as date-partitioned Parquet that DuckDB and Spark "
                            "read directly (docs/lake.md).", no_args_is_help=True)


def _open(directory: Path) -> Any:
    """The workspace, also when its events are not stored as its setting says (a move that
    a crash interrupted: enable or disable finishes it)."""
    from accountlens.config import ConfigError
    from accountlens.store.base import StoreError
    from accountlens.workspace import Workspace, WorkspaceError

    try:
        return Workspace.open(directory, check_storage=False)
    except (WorkspaceError, StoreError, ConfigError) as exc:
        fail(str(exc))


def _run(directory: Path, action: str, fmt: OutputFormat, title: str) -> None:
    from accountlens.config import ConfigError
    from accountlens.store.base import StoreError

    with _open(directory) as ws:
        try:
            outcome = getattr(ws, action)()
        except (StoreError, ConfigError, OSError) as exc:
            fail(str(exc))
    emit([outcome], fmt, title=title)


@lake_app.command("enable")
def enable(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """Move the events table into the lake (WORKSPACE/lake/events/event_date=…/) and set
    `[workspace] events_storage = "lake"`; safe to run again after a crash."""
    _run(directory, "enable_lake", fmt, "events moved into the lake")


@lake_app.command("disable")
def disable(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """Move the lake's events back into the DuckDB table, remove the lake's files and set
    `events_storage = "table"`; safe to run again after a crash."""
    _run(directory, "disable_lake", fmt, "events moved back into the DuckDB table")


@lake_app.command("status")
def status(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """How the events are stored: mode, and for a lake its files, bytes and days."""
    _run(directory, "lake_status", fmt, "events storage")


@lake_app.command("publish")
def publish(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """Write the tables besides the events (accounts, memberships, the daily rollup, …) into
    the lake for Spark now (`--engine spark` does it by itself when the data changed)."""
    from accountlens.config import ConfigError
    from accountlens.store.base import StoreError

    with _open(directory) as ws:
        try:
            manifest = ws.publish_lake()
        except (StoreError, ConfigError, OSError) as exc:
            fail(str(exc))
    if manifest is None:
        fail("the events of this workspace are not a lake: `accountlens lake enable` first")
    emit([{"table": name, "path": entry["path"], "rows": entry["rows"]}
          for name, entry in manifest["tables"].items()], fmt, title="published to the lake")


def register(app: typer.Typer) -> None:
    app.add_typer(lake_app, name="lake")
