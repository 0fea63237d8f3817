"""The tracking plan (docs/quality.md, "Tracking plan"): a JSON Schema per event name and for
identify / group traits, kept in the workspace by version with who changed it, and the check
of every load against the current version.

The load check is set-wise: ingest/plan_sql.py turns each schema into a DuckDB condition that
flags every event the schema may reject, in one pass over the batch; `jsonschema_rs` (Draft
2020-12) then validates the flagged events only and names each violation (rule, property).
Violations are recorded in `plan_violations`; with `ingest.plan_violations = "quarantine"`
(or `ingest.unplanned_events = "quarantine"`) the event goes to quarantine instead of the
events table, never dropped, and `accountlens quarantine replay` loads it once the plan or the
event is fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from accountlens.config import IngestSection
from accountlens.ingest import plan_sql, privacy
from accountlens.ingest.pipeline import STAGING
from accountlens.store.base import Store, WritableStore

# The plan file's sections and the `kind` each is stored as; the event type each kind checks.
SECTIONS = {"events": "event", "identify": "identify", "group": "group"}
KIND_TYPES = {"event": "track", "identify": "identify", "group": "group"}
UNPLANNED = "unplanned"  # the rule of a track event whose name the plan does not list
REASON = "tracking plan: "  # how quarantine reasons of the plan begin
_MESSAGE_CHARS = 300
FOUND_COLUMNS = {"message_id": "VARCHAR", "type": "VARCHAR", "event": "VARCHAR", "rule": "VARCHAR",
                 "property": "VARCHAR", "message": "VARCHAR", "library": "VARCHAR",
                 "library_version": "VARCHAR", "quarantined": "BOOLEAN"}


class PlanError(ValueError):
    """A plan file or plan that cannot be used; the message says where and what to do."""


@dataclass(frozen=True)
class TrackingPlan:
    """One version of the plan: a JSON Schema per event name, and for identify / group traits."""

    version: int
    events: dict[str, Any]
    identify: Any = None
    group: Any = None
    changed_by: str = ""
    changed_at: str = ""
    note: str | None = None

    def document(self) -> dict[str, Any]:
        """The plan as a plan file holds it (what `plan import` reads)."""
        doc: dict[str, Any] = {"events": self.events}
        doc.update({kind: schema for kind in ("identify", "group")
                    if (schema := getattr(self, kind)) is not None})
        return doc

    def schemas(self) -> list[tuple[str, str, Any]]:
        """(kind, name, schema): identify and group are named by their kind."""
        rows = [("event", name, schema) for name, schema in self.events.items()]
        rows += [(kind, kind, schema) for kind in ("identify", "group")
                 if (schema := getattr(self, kind)) is not None]
        return rows


@dataclass(frozen=True)
class Violation:
    """One broken rule of one event: the JSON Schema keyword (or `unplanned`), the property
    (a dotted path; None for the whole object) and the validator's message."""

    rule: str
    property: str | None
    message: str


# --- the plan file and the stored versions ------------------------------------------------------
def read_plan_file(path: Path) -> dict[str, Any]:
    """The plan document of a JSON (or, with PyYAML installed, YAML) file, checked."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the plan file ({exc.strerror})") from exc
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError as exc:
            raise PlanError(f"{path}: YAML plans need PyYAML; write the plan as JSON") from exc
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PlanError(f"{path}: not valid YAML: {exc}") from exc
    else:
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise PlanError(f"{path}: not valid JSON: {exc}") from exc
    return check_plan(doc, where=str(path))


def check_plan(doc: Any, where: str = "the plan") -> dict[str, Any]:
    """`doc` if it is a plan whose schemas are valid JSON Schemas (Draft 2020-12); otherwise a
    PlanError naming the event and the problem."""
    if not isinstance(doc, Mapping):
        raise PlanError(f"{where}: a plan is a JSON object with \"events\", \"identify\" and "
                        "\"group\"")
    unknown = [key for key in doc if key not in SECTIONS]
    if unknown:
        raise PlanError(f"{where}: unknown section(s) {unknown}; a plan has "
                        f"{', '.join(SECTIONS)}")
    events = doc.get("events", {})
    if not isinstance(events, Mapping):
        raise PlanError(f"{where}: \"events\" must map each event name to a JSON Schema of its "
                        "properties")
    named = [(f"event {name!r}", schema) for name, schema in events.items()]
    named += [(f"{kind} traits", doc[kind]) for kind in ("identify", "group") if doc.get(kind) is not None]
    for label, schema in named:
        if not isinstance(schema, dict | bool):
            raise PlanError(f"{where}: {label}: a schema must be a JSON object (or true/false)")
        try:
            jsonschema_rs.meta.validate(schema)
            jsonschema_rs.validator_for(schema)  # e.g. a pattern the validator cannot compile
        except (jsonschema_rs.ValidationError, ValueError) as exc:
            problem = str(exc).strip().splitlines()[0]
            raise PlanError(f"{where}: {label}: not a valid JSON Schema: {problem}") from exc
    if not named:
        raise PlanError(f"{where}: the plan holds no schema: list events (or identify / group "
                        "traits) to check")
    return {"events": dict(events), **{kind: doc[kind] for kind in ("identify", "group")
                                       if doc.get(kind) is not None}}


def load_plan(store: Store, version: int | None = None) -> TrackingPlan | None:
    """Version `version` of the plan (default the current one), or None if there is none."""
    if version is None:
        version = store.scalar("SELECT max(version) FROM tracking_plans")
        if version is None:
            return None
    rows = store.rows(
        """SELECT kind, name, CAST(schema AS VARCHAR) AS schema, changed_by,
                  strftime(changed_at, '%Y-%m-%dT%H:%M:%SZ') AS changed_at, note
           FROM tracking_plans WHERE version = ? ORDER BY kind, name""", [version])
    if not rows:
        return None
    parts: dict[str, Any] = {"events": {}}
    for row in rows:
        schema = orjson.loads(row["schema"])
        if row["kind"] == "event":
            parts["events"][row["name"]] = schema
        else:
            parts[row["kind"]] = schema
    return TrackingPlan(int(version), changed_by=rows[0]["changed_by"],
                        changed_at=rows[0]["changed_at"], note=rows[0]["note"], **parts)


def plan_versions(store: Store) -> list[dict[str, Any]]:
    """Every version: when, by whom, its note and how many event schemas it holds."""
    return store.rows(
        """SELECT version, any_value(changed_by) AS changed_by,
                  strftime(any_value(changed_at), '%Y-%m-%dT%H:%M:%SZ') AS changed_at,
                  any_value(note) AS note, count(*) FILTER (kind = 'event') AS events,
                  bool_or(kind = 'identify') AS identify, bool_or(kind = 'group') AS "group"
           FROM tracking_plans GROUP BY version ORDER BY version""")


def plan_changes(before: TrackingPlan | None, after: TrackingPlan) -> dict[str, list[str]]:
    """What a version changed against the one before: names added, removed and changed
    (identify and group by their kind)."""
    old = {(kind, name): schema for kind, name, schema in before.schemas()} if before else {}
    new = {(kind, name): schema for kind, name, schema in after.schemas()}
    return {"added": sorted(name for key, name in ((k, k[1]) for k in new) if key not in old),
            "removed": sorted(name for key, name in ((k, k[1]) for k in old) if key not in new),
            "changed": sorted(k[1] for k in new if k in old and old[k] != new[k])}


def store_plan(store: WritableStore, doc: Any, changed_by: str,
               note: str | None = None) -> tuple[TrackingPlan, dict[str, list[str]]]:
    """Check `doc` and store it as the next version; returns it and what it changed. (The
    caller records `plan.import` in the audit log: it knows the actor.)"""
    doc = check_plan(doc)
    with store.transaction():
        before = load_plan(store)
        version = (before.version if before else 0) + 1
        plan = TrackingPlan(version, doc["events"], doc.get("identify"), doc.get("group"))
        kinds, names, schemas = zip(*plan.schemas(), strict=True)
        store.execute(
            """INSERT INTO tracking_plans
               SELECT ?, kind, name, CAST(schema AS JSON), ?, now(), ?
               FROM (SELECT unnest(?) AS kind, unnest(?) AS name, unnest(?) AS schema)""",
            [version, changed_by, note, list(kinds), list(names),
             [orjson.dumps(s).decode() for s in schemas]])
    stored = load_plan(store, version)
    assert stored is not None
    return stored, plan_changes(before, stored)


# --- validation -----------------------------------------------------------------------------
def _violations(validator: Any, instance: Any) -> list[Violation]:
    found = []
    for error in validator.iter_errors(instance):
        keywords = [part for part in error.schema_path if isinstance(part, str)]
        rule = keywords[-1] if keywords else "schema"
        path = ".".join(str(part) for part in error.instance_path) or None
        message = str(error.message)[:_MESSAGE_CHARS]
        kind = error.kind
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
            found.append(Violation(rule, _join(path, str(kind.property)), message))
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            found += [Violation(rule, _join(path, str(name)), message) for name in kind.unexpected]
        else:
            found.append(Violation(rule, path, message))
    return found


def _join(path: str | None, name: str) -> str:
    return f"{path}.{name}" if path else name


class PlanChecker:
    """A plan made ready for checking: its validators and the SQL that flags suspects."""

    def __init__(self, plan: TrackingPlan):
        self.plan = plan
        self._validators = {(kind, name): jsonschema_rs.validator_for(schema)
                            for kind, name, schema in plan.schemas()}
        self._checks = plan_sql.PlanChecks()
        for kind, name, schema in plan.schemas():
            self._checks.add(kind, name, schema)

    def check(self, type_: str, name: str | None, obj: Any) -> list[Violation]:
        """The violations of one event (`obj`: its properties, or traits for identify/group;
        None counts as {}). Page, screen and alias calls are not planned."""
        kind = "event" if type_ == "track" else type_
        if kind not in KIND_TYPES:
            return []
        key = (kind, name if kind == "event" else kind)
        validator = self._validators.get(key)  # type: ignore[arg-type]
        if validator is None:
            if kind == "event":
                return [Violation(UNPLANNED, None, f"event {name!r} is not in the tracking plan")]
            return []
        return _violations(validator, {} if obj is None else obj)

    def flag(self, store: WritableStore, unplanned: bool) -> None:
        """Fill `_plan_flags(line_no, flag)` from the valid rows of `_checked`: 1 for an
        event that may break the plan, 2 for an unplanned track event (with `unplanned`);
        events that surely meet the plan are left out (ingest/plan_sql.py)."""
        targets = ["track", *(kind for kind in ("identify", "group") if getattr(self.plan, kind) is not None)]
        plan_sql.create_check_tables(store, self._checks)
        first, second = plan_sql.flag_queries(self._checks, targets, unplanned)
        store.execute(first, {"paths": self._checks.paths, "types": targets})
        store.execute(second)
        for table in ("_plan_objs", "_plan_checks", "_plan_names"):
            store.execute(f"DROP TABLE {table}")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def check_events(plan: TrackingPlan, events: Iterable[Any],
                 unplanned: bool = True) -> list[dict[str, Any]]:
    """Violations of Segment-format events (dicts) without loading them (`plan check`): one
    row per violation, with the event's position (`line`, from 1)."""
    checker, rows = PlanChecker(plan), []
    for line, event in enumerate(events, start=1):
        if not isinstance(event, Mapping):
            continue
        type_ = str(event.get("type") or "").lower()
        name = event.get("event") if type_ == "track" else None
        context = _mapping(event.get("context"))
        obj = event.get("properties") if type_ == "track" else (
            event.get("traits") or context.get("traits"))
        library = _mapping(context.get("library"))
        for violation in checker.check(type_, None if name is None else str(name), obj):
            if violation.rule == UNPLANNED and not unplanned:
                continue
            rows.append({"line": line, "message_id": event.get("messageId"), "type": type_,
                         "event": name, "rule": violation.rule, "property": violation.property,
                         "message": violation.message, "library": library.get("name"),
                         "library_version": library.get("version")})
    return rows


# --- the load step ----------------------------------------------------------------------------
_CHECKERS: dict[tuple[int, int], PlanChecker] = {}


def _checker(store: Store, version: int) -> PlanChecker:
    key = (store.instance, version)
    if key not in _CHECKERS:
        plan = load_plan(store, version)
        assert plan is not None
        if len(_CHECKERS) > 16:
            _CHECKERS.clear()
        _CHECKERS[key] = PlanChecker(plan)
    return _CHECKERS[key]


@dataclass
class PlanCheckResult:
    violations: int = 0  # violation rows recorded
    events: int = 0  # events with at least one
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


def check_load(store: WritableStore, pii: Mapping[str, str], settings: IngestSection,
               source_sql: str, source_params: list[Any]) -> PlanCheckResult:
    """Check the new events of a load (`_new`, parsed in `_checked`) against the current plan:
    record their violations, and move those to quarantine that the settings say so (removed
    from `_new`, so that they are not written). `source_sql` gives a `_checked c` row's source."""
    result = PlanCheckResult()
    version = store.scalar("SELECT max(version) FROM tracking_plans")
    if version is None:
        return result
    checker = _checker(store, int(version))
    if store.scalar("SELECT count(*) FROM plan_violations WHERE quarantined"):
        # events checked again (replayed from quarantine): their violations are found anew
        store.execute("""DELETE FROM plan_violations
                         WHERE quarantined AND message_id IN (SELECT message_id FROM _new)""")
    checker.flag(store, settings.unplanned_events != "allow")
    suspects = store.rows(
        """SELECT f.line_no, c.message_id, c.type, c.name,
                  CAST(CASE WHEN c.type = 'track' THEN c.properties ELSE c.traits END AS VARCHAR)
                      AS obj,
                  json_extract_string(c.context, '$.library.name') AS library,
                  json_extract_string(c.context, '$.library.version') AS library_version
           FROM _plan_flags f JOIN _checked c USING (line_no)
           WHERE f.line_no IN (SELECT line_no FROM _new)
           ORDER BY f.line_no""")
    store.execute("DROP TABLE _plan_flags")
    found: list[dict[str, Any]] = []
    to_quarantine: dict[int, str] = {}
    for row in suspects:
        obj = orjson.loads(row["obj"]) if row["obj"] is not None else None
        violations = checker.check(row["type"], row["name"], obj)
        if not violations:
            continue  # flagged by the conservative SQL, valid by the schema
        unplanned = violations[0].rule == UNPLANNED
        mode = settings.unplanned_events if unplanned else settings.plan_violations
        quarantined = mode == "quarantine"
        if quarantined:
            label = row["name"] if row["type"] == "track" else f"{row['type']} traits"
            first = violations[0]
            to_quarantine[row["line_no"]] = (
                f"{REASON}{first.message}" if unplanned
                else f"{REASON}{label}: {first.rule} {first.property or ''}: {first.message}"
                .replace(" :", ":"))
        result.events += 1
        for violation in violations:
            found.append({"message_id": row["message_id"], "type": row["type"],
                          "event": row["name"] if row["type"] == "track" else None,
                          "rule": violation.rule, "property": violation.property,
                          "message": violation.message, "library": row["library"],
                          "library_version": row["library_version"], "quarantined": quarantined})
    if found:
        plan_sql.create_table(store, "_plan_found", FOUND_COLUMNS, found)
        store.execute(
            """INSERT INTO plan_violations
               SELECT message_id, type, event, rule, property, message, library,
                      library_version, ?, quarantined, now() FROM _plan_found""", [version])
        store.execute("DROP TABLE _plan_found")
        result.violations = len(found)
    if to_quarantine:
        _quarantine(store, pii, to_quarantine, source_sql, source_params)
        for reason in to_quarantine.values():
            result.quarantine_reasons[reason] = result.quarantine_reasons.get(reason, 0) + 1
    return result


def _quarantine(store: WritableStore, pii: Mapping[str, str], reasons: dict[int, str],
                source_sql: str, source_params: list[Any]) -> None:
    """Keep the events of `reasons` (line → reason) in quarantine with their raw JSON (the
    staged line, with the `ingest.pii` actions applied as to any quarantined event), once per
    message id, and take them out of the load."""
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE _plan_quarantine AS
           SELECT s.line_no, s.raw, r.reason
           FROM (SELECT unnest(?) AS line_no, unnest(?) AS reason) r
           JOIN {STAGING} s USING (line_no)""",
        [list(reasons), list(reasons.values())])
    privacy.protect_quarantined(store, pii, "_plan_quarantine")
    store.execute(
        f"""INSERT INTO quarantine
            SELECT nextval('quarantine_seq'), c.message_id, q.reason, q.raw, c.received_at,
                   {source_sql}, now(), NULL
            FROM _plan_quarantine q JOIN _checked c USING (line_no)
            WHERE NOT EXISTS (SELECT 1 FROM quarantine x
                              WHERE x.message_id = c.message_id AND x.replayed_at IS NULL)""",
        source_params)
    store.execute("DELETE FROM _new WHERE line_no IN (SELECT line_no FROM _plan_quarantine)")
    store.execute("DROP TABLE _plan_quarantine")


# --- reading the violations -------------------------------------------------------------------
def violation_counts(store: Store, since: Any = None, event: str | None = None,
                     details: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
    """Recorded violations, counted by event, client library and version, rule and property
    (events: how many distinct events); with `details`, the rows themselves (newest first)."""
    where = "(? IS NULL OR recorded_at >= CAST(? AS TIMESTAMPTZ)) AND (? IS NULL OR coalesce(event, type) = ?)"
    params = [since, since, event, event]
    if details:
        return store.rows(
            f"""SELECT message_id, type, event, rule, property, message, library,
                       library_version, plan_version, quarantined,
                       strftime(recorded_at, '%Y-%m-%dT%H:%M:%SZ') AS recorded_at
                FROM plan_violations WHERE {where}
                ORDER BY recorded_at DESC, message_id, rule, property LIMIT ?""", [*params, limit])
    return store.rows(
        f"""SELECT coalesce(event, type) AS event, library, library_version, rule, property,
                   count(*) AS violations, count(DISTINCT message_id) AS events,
                   count(DISTINCT message_id) FILTER (quarantined) AS quarantined
            FROM plan_violations WHERE {where}
            GROUP BY ALL ORDER BY violations DESC, event, library, library_version, rule, property
            LIMIT ?""", [*params, limit])
