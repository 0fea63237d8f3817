"""What every `accountlens` command shares: the workspace and format options, opening a
workspace, and failing with a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from accountlens.cli.formats import OutputFormat

if TYPE_CHECKING:
    from accountlens.workspace import Workspace

DirOption = Annotated[Path, typer.Option("--dir", "-d", help="Workspace folder.")]
CsvArgument = Annotated[Path, typer.Argument(help="CSV with the columns in docs/data-model.md.")]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def open_workspace(directory: Path, read_only: bool = False) -> Workspace:
    from accountlens.config import ConfigError
    from accountlens.store.base import StoreError
    from accountlens.workspace import Workspace, WorkspaceError

    try:
        return Workspace.open(directory, read_only=read_only)
    except (WorkspaceError, StoreError, ConfigError) as exc:
        fail(str(exc))


def local_or_served(directory: Path, doing: str) -> Workspace | str:
    """The workspace, opened; or, while `accountlens serve` holds it, the server's URL (said on
    stderr: "the workspace is served at URL: `doing` through the server")."""
    from accountlens.config import ConfigError
    from accountlens.serve.discovery import running_server
    from accountlens.store.base import StoreError, StoreLocked
    from accountlens.workspace import Workspace, WorkspaceError

    try:
        return Workspace.open(directory)
    except StoreLocked as exc:
        url = running_server(directory)
        if url is None:
            fail(str(exc))
        typer.echo(f"the workspace is served at {url}: {doing} through the server", err=True)
        return url
    except (WorkspaceError, StoreError, ConfigError) as exc:
        fail(str(exc))
