"""`accountlens plan …`: the tracking plan (docs/quality.md, "Tracking plan") — import a new
version, show one, check events from a file without loading them, and list the violations
the loads recorded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from accountlens.cli.common import DirOption, FormatOption, fail, open_workspace
from accountlens.cli.formats import OutputFormat, emit

plan_app = typer.Typer(help="The tracking plan: JSON Schemas per event and for identify / group "
                            "traits, checked at every load.", no_args_is_help=True)

PlanFile = Annotated[Path, typer.Argument(help='Plan file: JSON (or YAML) {"events": {NAME: '
                                               'SCHEMA, ...}, "identify": SCHEMA, "group": SCHEMA}.')]


def _read_plan(path: Path) -> dict[str, Any]:
    from accountlens.ingest.tracking_plan import PlanError, read_plan_file

    try:
        return read_plan_file(path)
    except PlanError as exc:
        fail(str(exc))


@plan_app.command("import")
def plan_import(
    path: PlanFile,
    note: Annotated[str | None, typer.Option(help="What changed and why (kept with the version).")] = None,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Check a plan file's schemas and store it as the plan's next version (audited)."""
    from accountlens.ingest.tracking_plan import store_plan

    doc = _read_plan(path)
    with open_workspace(directory) as ws:
        plan, changes = store_plan(ws.store, doc, ws.actor.name, note)
        ws.audit.record(ws.actor, "plan.import", path.name,
                        {"version": plan.version, "events": len(plan.events), **changes})
    emit([{"version": plan.version, "events": len(plan.events),
           "identify": plan.identify is not None, "group": plan.group is not None,
           **{k: ", ".join(v) for k, v in changes.items()}}], fmt, title="tracking plan imported")


@plan_app.command("show")
def plan_show(
    version: Annotated[int | None, typer.Option(help="This version (default: the current one).")] = None,
    history: Annotated[bool, typer.Option("--history", help="List every version instead.")] = False,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The plan's schemas, one row per event (and identify / group), with who changed it."""
    import orjson

    from accountlens.ingest.tracking_plan import load_plan, plan_versions

    with open_workspace(directory, read_only=True) as ws:
        if history:
            emit(plan_versions(ws.store), fmt, title="tracking plan versions")
            return
        plan = load_plan(ws.store, version)
    if plan is None:
        fail(f"no tracking plan version {version}" if version is not None else
             "the workspace has no tracking plan; import one with `accountlens plan import FILE`")
    emit([{"version": plan.version, "kind": kind, "name": name,
           "schema": orjson.dumps(schema).decode() if fmt is not OutputFormat.json else schema,
           "changed_by": plan.changed_by, "changed_at": plan.changed_at, "note": plan.note}
          for kind, name, schema in plan.schemas()], fmt, title=f"tracking plan version {plan.version}")


@plan_app.command("check")
def plan_check(
    path: Annotated[Path, typer.Argument(help="Segment-format events, one JSON object a line.")],
    plan_file: Annotated[Path | None, typer.Option("--plan", help="Check against this plan file "
                                                   "instead of the workspace's plan.")] = None,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Validate events from a file without loading them; prints each violation (exit 1 if any)."""
    import orjson

    from accountlens.ingest.tracking_plan import TrackingPlan, check_events, load_plan

    if plan_file is not None:
        doc = _read_plan(plan_file)
        plan: TrackingPlan | None = TrackingPlan(0, doc["events"], doc.get("identify"), doc.get("group"))
    else:
        with open_workspace(directory, read_only=True) as ws:
            plan = load_plan(ws.store)
    if plan is None:
        fail("the workspace has no tracking plan; import one or give --plan FILE")
    events = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})")
    for number, line in enumerate(lines, start=1):
        try:
            events.append(orjson.loads(line) if line.strip() else None)
        except orjson.JSONDecodeError as exc:
            fail(f"{path}:{number}: invalid JSON ({exc})")
    rows = check_events(plan, events)
    emit(rows, fmt, title=f"{path.name}: {len(rows)} violation(s) of tracking plan version {plan.version}")
    if rows:
        raise typer.Exit(1)


@plan_app.command("violations")
def plan_violations(
    since: Annotated[dt.datetime | None, typer.Option(help="Recorded at or after (ISO date or date-time, UTC).")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event name (identify / group: the type).")] = None,
    details: Annotated[bool, typer.Option("--details", help="The individual violations, newest first.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 1000,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Violations recorded at load, counted by event, client library and version, rule and
    property (or each one with --details)."""
    from accountlens.ingest.tracking_plan import violation_counts

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    with open_workspace(directory, read_only=True) as ws:
        rows = violation_counts(ws.store, since, event, details, limit)
    emit(rows, fmt, title="tracking plan violations")


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="plan")
