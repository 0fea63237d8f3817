"""`accountlens` commands. Heavy modules are imported inside commands so `--help` stays instant."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from accountlens.cli import (
    alerts_cmd,
    analysis_cmd,
    attribution_cmd,
    entity_cmd,
    experiments_cmd,
    export_cmd,
    governance_cmd,
    import_cmd,
    lake_cmd,
    metrics_cmd,
    plan_cmd,
    retention_cmd,
    users_cmd,
)
from accountlens.cli.common import DirOption, FormatOption, fail, open_workspace
from accountlens.cli.formats import OutputFormat, emit
from accountlens.cli.report_cmd import report_app
from accountlens.model.entities import ATTRIBUTION_RULES

app = typer.Typer(
    name="accountlens",
    help="B2B product analytics where the account is a first-class unit next to the user.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
quarantine_app = typer.Typer(help="Inspect and replay events that failed validation.",
                             no_args_is_help=True)
app.add_typer(import_cmd.import_app, name="import")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(report_app, name="report")
app.add_typer(experiments_cmd.experiments_app, name="experiments")

@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")],
    name: Annotated[str | None, typer.Option(help="Workspace name (default: folder name).")] = None,
) -> None:
    """Create a workspace: a DuckDB file and a commented accountlens.toml."""
    from accountlens.workspace import Workspace, WorkspaceError

    try:
        ws = Workspace.init(directory, name)
    except WorkspaceError as exc:
        fail(str(exc))
    key = ws.config.workspace.write_keys[0]
    ws.close()
    typer.echo(f"Created workspace {directory} (write key {key}).")
    typer.echo(f"Next: accountlens serve --dir {directory}   or   accountlens import events FILE --dir {directory}")


@app.command()
def status(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """Counts of accounts, users, events, quarantined and unattributed events; last event time."""
    with open_workspace(directory) as ws:
        info = ws.status()
    warnings = info["ingest_warnings"]  # warning → client → events
    if fmt is OutputFormat.table:
        nested = ("attribution", "ingest_warnings")
        rows = [{"what": k, "value": v} for k, v in info.items() if k not in nested]
        rows += [{"what": f"attribution: {k}", "value": v} for k, v in info["attribution"].items()]
        rows += [{"what": f"ingest warning: {warning} ({client})", "value": n}
                 for warning, clients in warnings.items() for client, n in clients.items()]
        emit(rows, fmt, title=f"workspace {info['workspace']}")
    else:
        flat = {k: v for k, v in info.items() if k != "attribution"}
        for rule in ATTRIBUTION_RULES:
            flat[f"attributed_{rule}"] = info["attribution"].get(rule, 0)
        # one column whatever the data: the events stored with a warning (details: table format)
        flat["ingest_warnings"] = sum(n for clients in warnings.values() for n in clients.values())
        emit([flat], fmt)


@app.command()
def load(directory: DirOption = Path(".")) -> None:
    """Load acknowledged events left in the durable log (e.g. after a crash) without serving."""
    with open_workspace(directory) as ws:
        result = ws.load_log()
    typer.echo(f"loaded {result.inserted} events ({result.duplicates} duplicates, "
               f"{result.quarantined} quarantined)")


@app.command()
def serve(
    directory: Annotated[list[Path] | None, typer.Option("--dir", "-d", help="Workspace folder; repeat to serve several.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default from config).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from config).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    collectors: Annotated[int | None, typer.Option(min=0, max=64, help="Collector processes serving the ingestion endpoints on --collector-port too (default from config; 0: none).")] = None,
    collector_port: Annotated[int | None, typer.Option(help="Port of the collector processes (default from config).")] = None,
) -> None:
    """Run the collector (Segment, PostHog), the REST API and the dashboard."""
    from accountlens.config import ConfigError
    from accountlens.serve.server import Collectors
    from accountlens.serve.server import serve as run

    roots = directory or [Path(".")]
    first = open_workspace(roots[0])
    cfg = first.config.serve
    first.close()
    host, port = host or cfg.host, port if port is not None else cfg.port
    pool = Collectors(collectors if collectors is not None else cfg.collectors, host,
                      collector_port if collector_port is not None else cfg.collector_port,
                      cfg.collector_timeout_seconds)
    typer.echo(f"accountlens serving {', '.join(map(str, roots))} on http://{host}:{port}/", err=True)
    if pool.count:
        typer.echo(f"{pool.count} collector processes on http://{host}:{pool.port}/ "
                   "(ingestion endpoints only)", err=True)
    try:
        run(roots, host, port, log_level, pool)
    # the collector port is taken, two workspaces clash, the log's disk is full at start
    except (RuntimeError, ConfigError, OSError) as exc:
        fail(str(exc))


@app.command()
def demo(
    directory: DirOption = Path("demo-workspace"),
    accounts: Annotated[int, typer.Option(help="Number of customer accounts to simulate.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 7,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the dashboard afterwards.")] = True,
    port: Annotated[int | None, typer.Option(help="Port to serve on (default from config).")] = None,
) -> None:
    """Generate a realistic B2B demo workspace through the real ingestion path, then serve it."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from accountlens.demo.simulator import generate_demo

    if (directory / "accountlens.toml").exists():
        fail(f"{directory} already exists; remove it or pass another --dir")
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task("simulating", total=1.0)

        def report(stage: str, fraction: float) -> None:
            progress.update(task, description=stage, completed=fraction)

        counts = generate_demo(directory, accounts=accounts, seed=seed, progress=report)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if isinstance(v, int))
    typer.echo(f"demo workspace {directory}: {summary} ({time.perf_counter() - started:.1f} s)")
    with open_workspace(directory) as ws:
        info = ws.status()
        bottleneck = ws.analysis("handoffs", view="bottlenecks", limit=1)
        champions = ws.analysis("champions", limit=100)
    typer.echo(f"attribution: {info['attribution']}; quarantined: {info['quarantined']}")
    if not bottleneck.empty:
        top = bottleneck.iloc[0]
        typer.echo(f"slowest handoff: {top.from_actor} → {top.to_actor} "
                   f"(median {top.median_latency_hours} h, {top.latency_ratio}× typical)")
    if not champions.empty:
        typer.echo(f"accounts at high champion risk: {int((champions.risk == 'high').sum())}")
    if serve_after:
        serve(directory=[directory], host=None, port=port, log_level="warning")


@quarantine_app.command("list")
def quarantine_list(
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
    include_replayed: Annotated[bool, typer.Option(help="Also show events already replayed.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
) -> None:
    """Events that failed validation, with the reason and the raw event."""
    with open_workspace(directory) as ws:
        emit(ws.quarantine(include_replayed, limit), fmt, title="quarantined events")


@quarantine_app.command("replay")
def quarantine_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Quarantine ids; none replays all.")] = None,
    directory: DirOption = Path("."),
    patch: Annotated[str | None, typer.Option(help='JSON merge patch applied first, e.g. \'{"userId": "u1"}\'.')] = None,
) -> None:
    """Run quarantined events through validation again (after fixing them with --patch)."""
    import orjson

    try:
        patch_obj = orjson.loads(patch) if patch else None
    except orjson.JSONDecodeError as exc:
        fail(f"--patch is not valid JSON: {exc}")
    if patch_obj is not None and not isinstance(patch_obj, dict):
        fail("--patch must be a JSON object")
    from accountlens.workspace import WorkspaceError

    with open_workspace(directory) as ws:
        try:
            result = ws.replay_quarantine(ids or None, patch_obj)
        except WorkspaceError as exc:
            fail(str(exc))
    typer.echo(f"replayed {result.received}: {result.inserted} loaded, "
               f"{result.duplicates} duplicates, {result.quarantined} still invalid")


analysis_cmd.register(app)
entity_cmd.register(app)
metrics_cmd.register(app)
export_cmd.register(app)
governance_cmd.register(app)
retention_cmd.register(app)
lake_cmd.register(app)
users_cmd.register(app)
plan_cmd.register(app)
alerts_cmd.register(app)
attribution_cmd.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
