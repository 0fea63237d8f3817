"""`accountlens attribution …`: account attribution of events (`events`, also the group's bare
form), outcome attribution (`outcomes`, the analysis) and its versioned rule sets (`rules …`,
docs/attribution.md, "Rule sets")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from accountlens.cli.common import DirOption, FormatOption, fail, open_workspace
from accountlens.cli.formats import OutputFormat, emit

if TYPE_CHECKING:
    from accountlens.analysis.rule_versions import RuleVersion
    from accountlens.workspace import Workspace

attribution_app = typer.Typer(
    help="Attribution: events per account-attribution rule (with no command, as `events`), "
         "outcome attribution, and its versioned rule sets.")
rules_app = typer.Typer(help="Versioned attribution rule sets: create, edit, activate, diff.",
                        no_args_is_help=True)
attribution_app.add_typer(rules_app, name="rules")

VersionArgument = Annotated[str, typer.Argument(help="A version number, or `active`.")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="FIELD=VALUE, repeatable; VALUE is read as JSON when it parses, else as text "
                  "(e.g. --set half_life_days=14 --set 'role_weights={\"procurement\": 3}').")]
FileOption = Annotated[Path | None, typer.Option(
    "--file", help="Rule set fields from a JSON or TOML file (--set values override them).")]
NoteOption = Annotated[str | None, typer.Option(help="What changed and why (kept with the version).")]


def _events(directory: Path, fmt: OutputFormat) -> None:
    from accountlens.model.attribution import unattributed_summary

    with open_workspace(directory) as ws:
        emit(unattributed_summary(ws.store), fmt, title="account attribution of events")


@attribution_app.callback(invoke_without_command=True)
def attribution(ctx: typer.Context, directory: DirOption = Path("."),
                fmt: FormatOption = OutputFormat.table) -> None:
    """Attribution. With no command: events per attribution rule (explicit, membership, domain,
    unattributed), SPEC §3.1 — as `accountlens attribution events`."""
    if ctx.invoked_subcommand is None:
        _events(directory, fmt)


@attribution_app.command("events")
def events(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """Events per attribution rule (explicit, membership, domain, unattributed), SPEC §3.1."""
    _events(directory, fmt)


# --- rule sets ----------------------------------------------------------------------------------
def _version(text: str | None) -> int | None:
    """A version argument: a number, or `active` (None)."""
    if text is None or text.strip().lower() == "active":
        return None
    try:
        number = int(text)
    except ValueError:
        fail(f"{text!r} is not a version: give a version number or `active`")
    if number < 1:
        fail(f"{text!r} is not a version: versions are numbered from 1")
    return number


def _read_file(path: Path) -> dict[str, Any]:
    import tomllib

    import orjson

    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})")
    try:
        doc = tomllib.loads(data.decode()) if path.suffix.lower() == ".toml" else orjson.loads(data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        fail(f"{path}: not valid TOML: {exc}")
    except orjson.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON: {exc}")
    if not isinstance(doc, dict):
        fail(f"{path}: a rule set file holds an object of fields, e.g. {{\"half_life_days\": 14}}")
    return doc


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set FIELD=VALUE` options as fields: VALUE read as JSON when it parses, else text."""
    import orjson

    fields: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set {item!r}: write FIELD=VALUE, e.g. --set half_life_days=14")
        try:
            fields[key.strip()] = orjson.loads(value)
        except orjson.JSONDecodeError:
            fields[key.strip()] = value
    return fields


def _fields(path: Path | None, sets: list[str] | None) -> dict[str, Any]:
    return {**(_read_file(path) if path is not None else {}), **parse_sets(sets)}


def _changing(directory: Path, change: Callable[[Workspace], RuleVersion]) -> RuleVersion:
    """Run `change(ws)` on the workspace opened for writing; a refused change fails clearly."""
    from accountlens.analysis.rule_versions import RulesError

    with open_workspace(directory) as ws:
        try:
            return change(ws)
        except RulesError as exc:
            fail(str(exc))


def _emit_version(version: RuleVersion, fmt: OutputFormat, title: str) -> None:
    emit([version.summary()], fmt, title=title)


def _cell(value: Any, fmt: OutputFormat) -> Any:
    import orjson

    return value if fmt is OutputFormat.json else orjson.dumps(value).decode()


@rules_app.command("list")
def rules_list(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """Every rule set version: name, whether it is active, who made it and when."""
    with open_workspace(directory, read_only=True) as ws:
        rows = ws.attribution_rule_versions()
    emit(rows, fmt, title="attribution rule versions")


@rules_app.command("show")
def rules_show(
    version: Annotated[str | None, typer.Argument(help="A version number (default: the active one).")] = None,
    history: Annotated[bool, typer.Option("--history", help="Every change (of VERSION, if given) "
                                          "instead: who created, edited or activated it, when.")] = False,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """A version's rules, one row per field with its default (default: the active version; the
    built-in defaults when none is active)."""
    from accountlens.analysis.attribution_rules import AttributionRules
    from accountlens.analysis.rule_versions import RulesError

    number = _version(version)
    with open_workspace(directory, read_only=True) as ws:
        if history:
            rows = [{**row, "detail": _cell(row["detail"], fmt)}
                    for row in ws.attribution_rule_history(number)]
            emit(rows, fmt, title="attribution rule changes")
            return
        try:
            shown = ws.attribution_rules(number)
        except RulesError as exc:
            fail(str(exc))
    rules = shown.rules if shown is not None else AttributionRules()
    defaults = AttributionRules().model_dump(mode="json")
    values = rules.model_dump(mode="json")
    title = ("no active version: the built-in defaults apply" if shown is None else
             f"attribution rules version {shown.version}" + (f" ({shown.name})" if shown.name else "")
             + (" · active" if shown.active else "") + f" · created by {shown.created_by}")
    emit([{"version": shown.version if shown else None, "field": name,
           "value": _cell(value, fmt), "default": _cell(defaults[name], fmt),
           "changed": value != defaults[name]} for name, value in values.items()], fmt, title=title)


@rules_app.command("create")
def rules_create(
    file: FileOption = None,
    sets: SetOption = None,
    based_on: Annotated[int | None, typer.Option("--based-on", min=1, help="Start from this "
                                                 "version's rules (default: the built-in defaults).")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the version.")] = None,
    note: NoteOption = None,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """A new rule set version (not active until `activate`); audited."""
    fields = _fields(file, sets)
    made = _changing(directory, lambda ws: ws.create_attribution_rules(
        fields, name=name, note=note, based_on=based_on))
    _emit_version(made, fmt, f"attribution rules version {made.version} created "
                             f"(activate it: accountlens attribution rules activate {made.version})")


@rules_app.command("edit")
def rules_edit(
    version: Annotated[int, typer.Argument(min=1, help="A version never activated.")],
    file: FileOption = None,
    sets: SetOption = None,
    note: NoteOption = None,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Change fields of a version that was never activated; audited."""
    fields = _fields(file, sets)
    if not fields:
        fail("nothing to change: give --set FIELD=VALUE or --file FILE")
    edited = _changing(directory, lambda ws: ws.edit_attribution_rules(version, fields, note=note))
    _emit_version(edited, fmt, f"attribution rules version {version} edited")


@rules_app.command("activate")
def rules_activate(
    version: Annotated[int, typer.Argument(min=1, help="The version to make active.")],
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Make a version the active rule set (what dashboards use); audited."""
    active = _changing(directory, lambda ws: ws.activate_attribution_rules(version))
    _emit_version(active, fmt, f"attribution rules version {version} is active")


@rules_app.command("diff")
def rules_diff(
    v1: VersionArgument,
    v2: VersionArgument,
    outcome: Annotated[str | None, typer.Option(help="renewal, expansion, contraction, churn or conversion.")] = None,
    model: Annotated[str | None, typer.Option(help="The credit model (e.g. linear, time_decay, markov).")] = None,
    by: Annotated[str | None, typer.Option(help="The channel (role, unit, team, department, business_unit, user, feature, stage).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Last day included (YYYY-MM-DD).")] = None,
    since: Annotated[str | None, typer.Option(help="Outcomes on or after this day (YYYY-MM-DD).")] = None,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """How credit moves between two versions (the same outcome, model and channel), the largest
    change first; the rule fields that differ are noted."""
    import sys

    from pydantic import ValidationError

    from accountlens.analysis.registry import AnalysisError

    first, second = _version(v1), _version(v2)
    request = {"outcome": outcome, "model": model, "by": by, "as_of": as_of, "since": since}
    with open_workspace(directory) as ws:
        try:
            frame = ws.attribution_diff(first, second, **request)
        except ValidationError as exc:
            fail("; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                           for e in exc.errors()))
        except AnalysisError as exc:
            fail(str(exc))
    rows = [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]
    notes = frame.attrs.get("notes", [])
    if fmt is OutputFormat.table:
        emit(rows, fmt, title=f"attribution credit: {v1} → {v2}")
        for note in notes:
            sys.stdout.write(f"note: {note}\n")
        return
    emit(rows, fmt)
    for note in notes:
        sys.stderr.write(f"note: {note}\n")


def _add_outcomes() -> None:
    """`attribution outcomes`: the attribution analysis's generated command, when it is there."""
    from accountlens.analysis.registry import AnalysisError
    from accountlens.cli.analysis_cmd import analysis_command

    try:
        command = analysis_command("attribution")
    except AnalysisError:  # an accountlens without the analysis: the rest of the group works
        return
    attribution_app.command("outcomes")(command)


def register(app: typer.Typer) -> None:
    _add_outcomes()
    app.add_typer(attribution_app, name="attribution")
