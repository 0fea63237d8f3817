"""Retention policies (docs/retention.md): raw events, identify calls and quarantined events
older than `[retention]` allows are removed, in one transaction, with an audit entry.

The daily rollup and the tables kept with it stay: the rules that remove active events move
the retention horizon (model/retention_horizon.py), before which the rollup is frozen. Run by
`accountlens retention apply` and, on a schedule, by `serve` (serve/retention_schedule.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accountlens.config import Config, RetentionSection
from accountlens.governance.audit import Actor, AuditLog
from accountlens.model import rollup
from accountlens.model.entities import ACTIVE_EVENT_TYPES, EVENT_TYPES
from accountlens.model.retention_horizon import advance, horizon
from accountlens.store import lake
from accountlens.store.base import Store, WritableStore

IDENTITY_EVENT_TYPES = tuple(t for t in EVENT_TYPES if t not in ACTIVE_EVENT_TYPES)
# The tables rows are removed from, as the result counts them.
TABLES = ("events", "ingest_warnings", "quarantine")
NO_RULES = ("no retention rules are set ([retention] in accountlens.toml): raw data is kept "
            "for good, nothing was removed")


@dataclass(frozen=True)
class Rule:
    """One setting of `[retention]` as a condition on the rows it removes."""

    name: str  # events_days | event_days:NAME | identify_days | quarantine_days
    days: int
    table: str  # events | quarantine
    where: str  # SQL with `?` parameters: no setting's value is ever in the text
    params: tuple[Any, ...]
    cutoff: dt.datetime  # rows dated before it go
    active: bool  # it removes active events: it moves the retention horizon

    @property
    def sql_params(self) -> list[Any]:
        return [*self.params, self.cutoff]


def cutoff(now: dt.datetime, days: int) -> dt.datetime:
    """Keeping `days` days: whole UTC days go, those before the day `days` days before today."""
    return dt.datetime.combine(now.astimezone(dt.UTC).date() - dt.timedelta(days=days), dt.time(),
                               tzinfo=dt.UTC)


def rules(settings: RetentionSection, now: dt.datetime) -> list[Rule]:
    """The rules `settings` set, as of `now`: every event falls under one rule at most (a
    per-name rule takes its active events out of `events_days`)."""
    found = []
    named = sorted(settings.event_days)
    active = list(ACTIVE_EVENT_TYPES)
    if settings.events_days is not None:
        found.append(Rule("events_days", settings.events_days, "events",
                          "list_contains(?, type) AND (name IS NULL OR NOT list_contains(?, name)) "
                          "AND timestamp < ?", (active, named),
                          cutoff(now, settings.events_days), active=True))
    for name in named:
        days = settings.event_days[name]
        found.append(Rule(f"event_days:{name}", days, "events",
                          "list_contains(?, type) AND name = ? AND timestamp < ?", (active, name),
                          cutoff(now, days), active=True))
    if settings.identify_days is not None:
        found.append(Rule("identify_days", settings.identify_days, "events",
                          "list_contains(?, type) AND timestamp < ?", (list(IDENTITY_EVENT_TYPES),),
                          cutoff(now, settings.identify_days), active=False))
    if settings.quarantine_days is not None:
        found.append(Rule("quarantine_days", settings.quarantine_days, "quarantine",
                          "quarantined_at < ?", (), cutoff(now, settings.quarantine_days),
                          active=False))
    return found


def retention_plan(store: Store, config: Config, now: dt.datetime | None = None) -> dict[str, Any]:
    """What `apply_retention` would remove now (`accountlens retention show`): the same
    result as a dry run, without an audit entry."""
    return _run(store, config.retention, now or dt.datetime.now(dt.UTC), dry_run=True)


def apply_retention(store: WritableStore, config: Config, root: Path, actor: Actor,
                    dry_run: bool = False, now: dt.datetime | None = None) -> dict[str, Any]:
    """Remove the rows `[retention]` lets go (with `dry_run`, count them), in one transaction,
    and record the run in the audit log (`retention.apply` / `retention.dry_run`): the rules,
    their cut-offs and counts. The result: `dry_run`, `ran_at`, `rules` (rule, table, days,
    cutoff, rows), `removed` and `kept` (rows per table), `rollup_horizon` (the retention
    horizon after the run) and `note` (None unless there was nothing to do)."""
    now = now or dt.datetime.now(dt.UTC)
    audit = AuditLog(root)
    with store.write_lock:
        if dry_run:
            result = _run(store, config.retention, now, dry_run=True)
            _record(audit, actor, result)
            return result
        if any(rule.active for rule in rules(config.retention, now)):
            # the rollup must hold every active event before they go (stale after an import)
            rollup.ensure_fresh(store, settings=config.metrics)
        with store.transaction():
            result = _run(store, config.retention, now, dry_run=False)
            _record(audit, actor, result)  # before the commit: nothing goes unrecorded
    return result


def _run(store: Store, settings: RetentionSection, now: dt.datetime, dry_run: bool) -> dict[str, Any]:
    found = rules(settings, now)
    before = {name: int(store.scalar(f"SELECT count(*) FROM {name}")) for name in TABLES}
    removed = dict.fromkeys(TABLES, 0)
    event_rules = [r for r in found if r.table == "events"]
    if event_rules:  # the warnings of removed events go with them (counted before they go)
        removed["ingest_warnings"] = _rows(store, "ingest_warnings", _of_events(event_rules), dry_run)
    counted = []
    for rule in found:
        rows = _rows(store, rule.table, (rule.where, rule.sql_params), dry_run)
        removed[rule.table] += rows
        counted.append({"rule": rule.name, "table": rule.table, "days": rule.days,
                        "cutoff": _iso(rule.cutoff), "rows": rows})
    moved = [r.cutoff.date() for r, c in zip(found, counted) if r.active and c["rows"]]
    day = horizon(store)
    if moved and not dry_run:
        assert isinstance(store, WritableStore)
        day = advance(store, max(moved))
    elif moved:
        day = max(moved) if day is None else max(day, *moved)
    return {"dry_run": dry_run, "ran_at": _iso(now), "rules": counted, "removed": removed,
            "kept": {name: before[name] - removed[name] for name in TABLES},
            "rollup_horizon": day.isoformat() if day else None,
            "note": None if found else NO_RULES}


def _of_events(event_rules: list[Rule]) -> tuple[str, list[Any]]:
    """The warnings of the events any of `event_rules` removes."""
    where = " OR ".join(f"({rule.where})" for rule in event_rules)
    params = [p for rule in event_rules for p in rule.sql_params]
    return f"message_id IN (SELECT message_id FROM events WHERE {where})", params


def _rows(store: Store, table: str, condition: tuple[str, list[Any]], dry_run: bool) -> int:
    """How many rows of `table` match `condition`; unless `dry_run`, deleted."""
    where, params = condition
    if dry_run:
        return int(store.scalar(f"SELECT count(*) FROM {table} WHERE {where}", params))
    events_lake = lake.of(store)
    if table == "events" and events_lake is not None:  # days past the horizon: their files go
        assert isinstance(store, WritableStore)
        return events_lake.delete(store, where, params)
    return int(store.execute(f"DELETE FROM {table} WHERE {where}", params).fetchone()[0])


def _record(audit: AuditLog, actor: Actor, result: dict[str, Any]) -> None:
    """The audit entry of a run: rule names, cut-offs and counts (no row's content)."""
    action = "retention.dry_run" if result["dry_run"] else "retention.apply"
    audit.record(actor, action, target="", details={
        key: result[key] for key in ("rules", "removed", "rollup_horizon", "note")})


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
