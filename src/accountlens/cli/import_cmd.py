"""`accountlens import events|accounts|units|...`: bulk imports, into the workspace's store or,
while `accountlens serve` holds it, through that server (cli/remote.py)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from accountlens.cli.common import CsvArgument, DirOption, FormatOption, fail, local_or_served
from accountlens.cli.formats import OutputFormat, emit
from accountlens.model.entities import ENTITIES

if TYPE_CHECKING:
    from accountlens.workspace import Workspace

import_app = typer.Typer(help="Bulk-import events and CRM/billing tables (while `accountlens "
                              "serve` runs too: the file is handed to the server).",
                         no_args_is_help=True)

Progress = Callable[[str, float], None]


class _Importer(Protocol):
    def events(self, path: Path, progress: Progress | None) -> dict[str, Any]: ...

    def entities(self, kind: str, path: Path) -> int: ...


class _Local:
    def __init__(self, ws: Workspace):
        self.ws = ws

    def events(self, path: Path, progress: Progress | None) -> dict[str, Any]:
        result = self.ws.import_events(path, progress=progress)
        return {"received": result.received, "inserted": result.inserted,
                "duplicates": result.duplicates, "quarantined": result.quarantined}

    def entities(self, kind: str, path: Path) -> int:
        return self.ws.import_entities(kind, path)


class _Remote:
    def __init__(self, url: str, directory: Path):
        from accountlens.config import CONFIG_FILE, load_config
        from accountlens.serve.discovery import local_admin_token

        config = load_config(directory / CONFIG_FILE)
        self.url, self.name = url, config.workspace.name
        # writes need an admin token, also on this machine: the server's own, from serve.json
        self.token = local_admin_token(directory)

    def events(self, path: Path, progress: Progress | None) -> dict[str, Any]:
        from accountlens.cli.remote import import_file

        result = import_file(self.url, "events", path, self.name, self.token, progress)
        return {k: result[k] for k in ("received", "inserted", "duplicates", "quarantined")}

    def entities(self, kind: str, path: Path) -> int:
        from accountlens.cli.remote import import_file

        return int(import_file(self.url, kind, path, self.name, self.token)["rows"])


@contextlib.contextmanager
def _importer(directory: Path) -> Iterator[_Importer]:
    """The workspace's store, or the server that holds it."""
    opened = local_or_served(directory, "importing")
    if isinstance(opened, str):
        yield _Remote(opened, directory)
        return
    with opened:
        yield _Local(opened)


def _refused() -> tuple[type[Exception], ...]:
    from accountlens.cli.remote import RemoteImportError
    from accountlens.ingest.importers import ImportError_

    return ImportError_, RemoteImportError


@import_app.command("events")
def import_events(
    files: Annotated[list[Path], typer.Argument(
        help="JSONL (Segment format), CSV or Parquet files (JSONL and CSV may be gzipped), or "
             "folders: every such file under them, in name order.")],
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Import event files; each file loads whole or not at all."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from accountlens.ingest.importers import ImportError_, event_files

    try:
        files = event_files(files)
    except ImportError_ as exc:
        fail(str(exc))
    refused = _refused()
    rows, failed = [], False
    with _importer(directory) as importer, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        transient=True, disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("importing events", total=len(files))
        for index, path in enumerate(files):
            def show(what: str, share: float, name: str = path.name, done: int = index) -> None:
                progress.update(task, description=f"{name}: {what}", completed=done + share)

            try:
                result = importer.events(path, show if progress.live.is_started else None)
            except refused as exc:
                typer.secho(str(exc), fg=typer.colors.RED, err=True)
                failed = True
            else:
                rows.append({"file": str(path), **result})
            progress.update(task, completed=index + 1)
    emit(rows, fmt, title="imported events")
    if failed:
        raise typer.Exit(1)


def _entity_command(kind: str) -> None:
    def command(file: CsvArgument, directory: DirOption = Path(".")) -> None:
        with _importer(directory) as importer:
            try:
                count = importer.entities(kind, file)
            except _refused() as exc:
                fail(str(exc))
        typer.echo(f"imported {count} {kind} from {file}")

    command.__doc__ = f"Import {kind} from a CSV (all-or-nothing; rows with the same key replace)."
    import_app.command(kind)(command)


for _kind in ENTITIES:  # one command per entity kind of the data model (model/entities.py)
    _entity_command(_kind)
