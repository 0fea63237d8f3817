"""`accountlens export parquet DIR`: the workspace's tables as Parquet for Spark (docs/spark.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from accountlens.cli.common import fail, open_workspace
from accountlens.cli.formats import OutputFormat, emit

export_app = typer.Typer(help="Export the workspace's tables for other engines.",
                         no_args_is_help=True)


class Granularity(StrEnum):
    day = "day"
    month = "month"


@export_app.command("parquet")
def parquet(
    target: Annotated[Path, typer.Argument(help="Folder to write (new, empty, or an old export).")],
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Workspace folder.")] = Path("."),
    partition: Annotated[Granularity, typer.Option(
        "--partition", help="Events partitioned by day (event_date=) or month (event_month=).")
    ] = Granularity.day,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier export in DIR.")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
) -> None:
    """Write accounts, org units, users, memberships, subscriptions, outcomes, the daily rollup
    (one Parquet file each) and the events (partitioned by date) to DIR."""
    from accountlens.store.base import StoreError

    with open_workspace(directory) as ws:
        try:
            manifest = ws.export_parquet(target, partition.value, overwrite)
        except StoreError as exc:
            fail(str(exc))
    emit([{"table": name, "rows": entry["rows"], "path": str(target / entry["path"])}
          for name, entry in manifest["tables"].items()], fmt, title=f"exported to {target}")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
