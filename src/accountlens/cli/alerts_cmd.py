"""`accountlens alerts list|run|test|history` (docs/alerts.md). `run` and `history` go through
the server while `accountlens serve` holds the workspace; `list` and `test` read only the
configuration."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from accountlens.cli.common import DirOption, FormatOption, fail, local_or_served
from accountlens.cli.formats import OutputFormat, emit

alerts_app = typer.Typer(help="Alert rules and playbooks: list, run, test, history.",
                         no_args_is_help=True)


def _config(directory: Path):  # the workspace's Config
    from accountlens.config import CONFIG_FILE, ConfigError, load_config

    try:
        return load_config(directory / CONFIG_FILE)
    except ConfigError as exc:
        fail(str(exc))


@alerts_app.command("list")
def alerts_list(directory: DirOption = Path("."), fmt: FormatOption = OutputFormat.table) -> None:
    """The rules with their condition, period, webhooks and playbook (action, owner)."""
    from accountlens.governance.alerts import rule_listing

    emit(rule_listing(_config(directory)), fmt, title="alert rules")


@alerts_app.command("run")
def alerts_run(
    directory: DirOption = Path("."),
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Evaluate only: record and send nothing.")] = False,
    as_of: Annotated[str | None, typer.Option(help="Evaluate as of this day (YYYY-MM-DD).")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Evaluate the rules now, record the new alerts (one per rule, account and period) and
    deliver what is due."""
    day = _day(as_of)
    ws = local_or_served(directory, "running the alert rules")
    if isinstance(ws, str):
        params = {"dry_run": str(dry_run).lower(), **({"as_of": day.isoformat()} if day else {})}
        outcome = _remote(ws, directory, "POST", "/api/v1/alerts/run", params)
    else:
        from accountlens.governance.alerts import AlertError, run_alerts

        with ws:
            try:
                outcome = run_alerts(ws.store, ws.config, day, dry_run)
            except AlertError as exc:
                fail(str(exc))
    if fmt is not OutputFormat.table:
        emit(outcome["new"], fmt)
        out = sys.stderr
    else:
        shown = ("rule", "account_id", "account_name", "period", "severity", "title", "owner")
        emit([{k: a[k] for k in shown} for a in outcome["new"]], fmt,
             title=f"new alerts as of {outcome['as_of']}" + (" (dry run)" if dry_run else ""))
        out = sys.stdout
    d = outcome["deliveries"]
    out.write(f"{len(outcome['new'])} new, {outcome['already_recorded']} already recorded; "
              f"deliveries: {d['delivered']} delivered, {d['retrying']} to retry, "
              f"{d['failed']} failed\n")
    for note in outcome["notes"]:
        out.write(f"note: {note}\n")


@alerts_app.command("test")
def alerts_test(
    rule: Annotated[str, typer.Argument(help="The rule's name.")],
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Send a sample alert of RULE to its webhooks once (header X-Accountlens-Test: true);
    nothing is recorded. Exits 1 when a webhook did not answer 2xx."""
    from accountlens.governance.alerts import AlertError, rule_named, sample_alert
    from accountlens.governance.delivery import send_test

    config = _config(directory)
    try:
        found = rule_named(config, rule)
    except AlertError as exc:
        fail(str(exc))
    if not found.webhooks:
        fail(f"rule {rule} has no webhooks: add webhooks = [\"NAME\"] to it")
    results = send_test(config, sample_alert(found), found.webhooks)
    emit(results, fmt, title=f"test alert of rule {rule}")
    if not all(r["delivered"] for r in results):
        raise typer.Exit(1)


@alerts_app.command("history")
def alerts_history(
    directory: DirOption = Path("."),
    since: Annotated[str | None, typer.Option(help="Alerts created at or after (YYYY-MM-DD or ISO date-time, UTC).")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
    limit: Annotated[int, typer.Option(help="The last N alerts.")] = 1000,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Recorded alerts, newest first, with their delivery state per webhook."""
    moment = _moment(since)
    ws = local_or_served(directory, "reading the alert history")
    if isinstance(ws, str):
        params: dict[str, Any] = {"limit": limit}
        if moment is not None:
            params["since"] = moment.isoformat()
        if rule:
            params["rule"] = rule
        rows = _remote(ws, directory, "GET", "/api/v1/alerts", params)
    else:
        from accountlens.governance.alerts import history

        with ws:
            rows = history(ws.store, moment, rule, limit)
    if fmt is OutputFormat.table:
        rows = [{"created_at": r["created_at"], "rule": r["rule"], "account_id": r["account_id"],
                 "period": r["period"], "title": r["title"], "owner": r["owner"],
                 "state": r["state"],
                 "attempts": sum(d["attempts"] for d in r["deliveries"]),
                 "last_error": next((d["last_error"] for d in r["deliveries"]
                                     if d["last_error"] and d["state"] != "delivered"), None)}
                for r in rows]
    emit(rows, fmt, title="alert history")


def _day(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"--as-of {text!r} is not a date (YYYY-MM-DD)")


def _moment(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"--since {text!r} is not a date (YYYY-MM-DD) or an ISO date-time")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _remote(url: str, directory: Path, method: str, path: str, params: dict[str, Any]) -> Any:
    """The server's answer to `method path?params`, with its own admin token (serve.json)."""
    from accountlens.cli.remote import RemoteImportError, call

    try:
        return call(url, directory, method, path, params)
    except RemoteImportError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
