"""Versioned attribution rule sets (docs/attribution.md, "Rule sets"): create, edit and activate
versions of `AttributionRules` in the workspace, every change kept with who and when, and the
diff of the credit two versions give before one is activated.

A version is written once and may be edited until it is first activated; from then on it stays
as it fed the dashboards, and a change is a new version based on it. Which version is active
is not stored on the version but told by the history (`attribution_rule_changes`): the latest
`activate` — so which rules fed a dashboard on any day can be told afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from accountlens.analysis.attribution_rules import AttributionRules
from accountlens.analysis.registry import MAX_ROWS, AnalysisError, request_for, run_analysis
from accountlens.store.base import Store, WritableStore

if TYPE_CHECKING:
    import pandas as pd

ANALYSIS = "attribution"  # the analysis the rules feed (analysis/attribution.py)
ACTIONS = ("create", "edit", "activate")
FIELDS = tuple(AttributionRules.model_fields)
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class RulesError(AnalysisError):
    """A rule set or a change that cannot be used; the message names the field or the version
    and says what to do."""


class UnknownRuleVersion(RulesError, LookupError):
    """No such rule set version."""


@dataclass(frozen=True)
class RuleVersion:
    version: int
    name: str | None
    rules: AttributionRules
    based_on: int | None
    created_by: str
    created_at: dt.datetime
    note: str | None
    active: bool
    activated_at: dt.datetime | None  # when it last became the active version

    def summary(self) -> dict[str, Any]:
        """The version without its rules, as `list_versions` gives it."""
        return {"version": self.version, "name": self.name, "active": self.active,
                "created_by": self.created_by, "created_at": _text(self.created_at),
                "activated_at": _text(self.activated_at), "note": self.note,
                "based_on": self.based_on}

    def document(self) -> dict[str, Any]:
        """The summary with the rules (JSON-ready)."""
        return {**self.summary(), "rules": self.rules.model_dump(mode="json")}


# --- checking ---------------------------------------------------------------------------------
def check_rules(doc: Any) -> AttributionRules:
    """`doc` as a rule set, or a RulesError naming each field that is wrong and why."""
    if not isinstance(doc, Mapping):
        raise RulesError("a rule set is an object of fields (e.g. {\"half_life_days\": 14}); "
                         f"the fields are {', '.join(FIELDS)}")
    try:
        return AttributionRules.model_validate(dict(doc))
    except ValidationError as exc:
        raise RulesError("invalid attribution rules: " + "; ".join(
            _problem(error) for error in exc.errors())) from None


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        return f"{where}: not a rule set field (the fields: {', '.join(FIELDS)})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message  # a rule across fields names them itself


def changed_fields(before: AttributionRules, after: AttributionRules) -> dict[str, list[Any]]:
    """field → [value before, value after], of the fields that differ (JSON-ready)."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    return {name: [old[name], new[name]] for name in FIELDS if old[name] != new[name]}


def _changes(changes: Any) -> dict[str, Any]:
    if changes is None:
        return {}
    if not isinstance(changes, Mapping):
        raise RulesError("changes are an object of rule set fields, e.g. {\"half_life_days\": 14}")
    return dict(changes)


def _merged(base: AttributionRules, changes: Mapping[str, Any]) -> AttributionRules:
    """`base` with the fields of `changes` replaced (a top-level merge), checked."""
    return check_rules({**base.model_dump(mode="json"), **changes})


# --- reading ----------------------------------------------------------------------------------
def _text(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).strftime(_TIME)


def active_version(store: Store) -> int | None:
    """The version the latest activation made active, or None if none was ever activated."""
    version = store.scalar("""SELECT version FROM attribution_rule_changes WHERE action = 'activate'
                              ORDER BY changed_at DESC LIMIT 1""")
    return None if version is None else int(version)


def _versions(store: Store, version: int | None = None) -> list[RuleVersion]:
    active = active_version(store)
    rows = store.rows(
        """SELECT v.version, v.name, CAST(v.rules AS VARCHAR) AS rules, v.based_on, v.created_by,
                  v.created_at, v.note, a.activated_at
           FROM attribution_rule_versions v
           LEFT JOIN (SELECT version, max(changed_at) AS activated_at
                      FROM attribution_rule_changes WHERE action = 'activate'
                      GROUP BY version) a USING (version)
           WHERE ? IS NULL OR v.version = ?
           ORDER BY v.version""", [version, version])
    return [RuleVersion(
        version=int(row["version"]), name=row["name"],
        rules=AttributionRules.model_validate(orjson.loads(row["rules"])),
        based_on=None if row["based_on"] is None else int(row["based_on"]),
        created_by=row["created_by"], created_at=row["created_at"], note=row["note"],
        active=int(row["version"]) == active, activated_at=row["activated_at"]) for row in rows]


def list_versions(store: Store) -> list[dict[str, Any]]:
    """Every version, oldest first: version, name, active, created_by, created_at,
    activated_at, note, based_on."""
    return [version.summary() for version in _versions(store)]


def get_version(store: Store, version: int | None) -> RuleVersion | None:
    """Version `version` (None: the active one), or None if there is no such version."""
    if version is None:
        version = active_version(store)
        if version is None:
            return None
    found = _versions(store, version)
    return found[0] if found else None


def _require(store: Store, version: int) -> RuleVersion:
    found = get_version(store, version)
    if found is None:
        known = [str(v["version"]) for v in list_versions(store)]
        raise UnknownRuleVersion(
            f"no attribution rule version {version}; versions: {', '.join(known)}" if known else
            f"no attribution rule version {version}: the workspace has none yet; create one "
            "with `accountlens attribution rules create`")
    return found


def rules_for(store: Store, version: int | None) -> tuple[int | None, AttributionRules]:
    """(version, rules) an analysis uses: version `version`, or with None the active one —
    and when no version was ever activated, (None, the built-in defaults). An unknown version
    is an AnalysisError listing the versions there are."""
    if version is None:
        version = active_version(store)
        if version is None:
            return None, AttributionRules()
    return version, _require(store, version).rules


def history(store: Store, version: int | None = None) -> list[dict[str, Any]]:
    """Every change (of `version`, or of all), oldest first: version, action (create | edit |
    activate), actor, at (UTC), detail (what changed; for an activation, the version it
    replaced)."""
    rows = store.rows(
        """SELECT version, action, actor, changed_at, CAST(detail AS VARCHAR) AS detail
           FROM attribution_rule_changes WHERE ? IS NULL OR version = ?
           ORDER BY changed_at, version""", [version, version])
    return [{"version": int(row["version"]), "action": row["action"], "actor": row["actor"],
             "at": _text(row["changed_at"]),
             "detail": orjson.loads(row["detail"]) if row["detail"] else {}} for row in rows]


# --- writing ----------------------------------------------------------------------------------
def _record(store: WritableStore, version: int, action: str, actor: str,
            detail: dict[str, Any]) -> None:
    # strictly after the last change, so that the order of changes (and so which version is
    # active) never depends on two changes sharing a clock tick
    store.execute(
        """INSERT INTO attribution_rule_changes
           SELECT ?, ?, ?, greatest(now(), (SELECT max(changed_at) + INTERVAL 1 MICROSECOND
                                            FROM attribution_rule_changes)), CAST(? AS JSON)""",
        [version, action, actor, orjson.dumps(detail).decode()])


def create_version(store: WritableStore, rules: Mapping[str, Any] | None, actor: str,
                   name: str | None = None, note: str | None = None,
                   based_on: int | None = None) -> RuleVersion:
    """Store a new version: the built-in defaults (or version `based_on`'s rules) with the
    fields of `rules` replaced. A RulesError names each field that is wrong. It is not active
    until `activate`."""
    changes = _changes(rules)
    with store.transaction():
        base = AttributionRules() if based_on is None else _require(store, based_on).rules
        checked = _merged(base, changes)
        version = int(store.scalar("SELECT coalesce(max(version), 0) + 1 FROM attribution_rule_versions"))
        store.execute("INSERT INTO attribution_rule_versions VALUES (?, ?, CAST(? AS JSON), ?, ?, now(), ?)",
                      [version, name, checked.model_dump_json(), based_on, actor, note])
        _record(store, version, "create", actor, {
            "name": name, "note": note, "based_on": based_on,
            "changed": changed_fields(base, checked)})
    return _require(store, version)


def edit_version(store: WritableStore, version: int, changes: Mapping[str, Any] | None, actor: str,
                 note: str | None = None) -> RuleVersion:
    """Replace fields of a version that was never activated (an activated one stays as it fed
    the dashboards: create a new version based on it)."""
    fields = _changes(changes)
    with store.transaction():
        current = _require(store, version)
        if current.activated_at is not None:
            raise RulesError(
                f"attribution rule version {version} has been activated, so it stays as it was; "
                f"create a new version based on it (`accountlens attribution rules create "
                f"--based-on {version} --set FIELD=VALUE`) and activate that")
        checked = _merged(current.rules, fields)
        store.execute("UPDATE attribution_rule_versions SET rules = CAST(? AS JSON), "
                      "note = coalesce(?, note) WHERE version = ?",
                      [checked.model_dump_json(), note, version])
        _record(store, version, "edit", actor,
                {"note": note, "changed": changed_fields(current.rules, checked)})
    return _require(store, version)


def activate(store: WritableStore, version: int, actor: str) -> RuleVersion:
    """Make `version` the one active version (analyses without `rules_version` use it); the
    activation is kept in the history with the version it replaced."""
    with store.transaction():
        _require(store, version)
        _record(store, version, "activate", actor, {"previous": active_version(store)})
    return _require(store, version)


# --- the diff of two versions -----------------------------------------------------------------
def diff(store: Store, settings: Any, v1: int | None, v2: int | None,
         **request: Any) -> pd.DataFrame:
    """How credit moves from version `v1` to `v2` (None: the active version), the other
    parameters of the attribution analysis (`outcome`, `model`, `by`, `as_of`, `since`, ...)
    the same: one row per channel (named after `by`) with credit_v1, credit_v2, change,
    share_v1, share_v2, share_change, the largest |change| first. `attrs["notes"]` names the
    versions and the rule fields that differ."""
    import pandas as pd

    if "rules_version" in request:
        raise RulesError("a diff compares two versions: give them as v1 and v2, not rules_version")
    first, rules1 = rules_for(store, v1)
    second, rules2 = rules_for(store, v2)
    params = {k: v for k, v in request.items() if v is not None}
    params.setdefault("limit", MAX_ROWS)
    _, typed = request_for(ANALYSIS, {**params, "rules_version": first})
    by = str(typed.by)  # type: ignore[attr-defined]
    parts, notes = [], [f"v1 = {_label(store, first)}, v2 = {_label(store, second)}"]
    for suffix, version in (("v1", first), ("v2", second)):
        result = run_analysis(store, settings, ANALYSIS, **params, rules_version=version)
        frame = result.frame
        if by not in frame.columns and f"{by}_id" in frame.columns:  # by user: `user_id`
            by = f"{by}_id"
        parts.append(frame.groupby(by, dropna=False)[["credit", "share"]].sum()
                     .rename(columns={"credit": f"credit_{suffix}", "share": f"share_{suffix}"}))
        notes += [f"{suffix}: {note}" for note in result.notes if note not in notes]
    merged = parts[0].join(parts[1], how="outer").fillna(0.0).reset_index()
    merged["change"] = merged["credit_v2"] - merged["credit_v1"]
    merged["share_change"] = merged["share_v2"] - merged["share_v1"]
    merged = merged[[by, "credit_v1", "credit_v2", "change", "share_v1", "share_v2", "share_change"]]
    order = merged["change"].abs().sort_values(ascending=False, kind="stable").index
    merged = pd.DataFrame(merged.loc[order].reset_index(drop=True))
    changed = changed_fields(rules1, rules2)
    notes += [f"{name}: {_json(old)} → {_json(new)}" for name, (old, new) in changed.items()]
    if not changed:
        notes.append("the two versions' rules are the same")
    merged.attrs.update({"notes": notes, "v1": first, "v2": second, "by": by,
                         "changed_rules": changed})
    return merged


def _label(store: Store, version: int | None) -> str:
    if version is None:
        return "the built-in defaults (no version is active)"
    found = get_version(store, version)
    name = f" ({found.name})" if found is not None and found.name else ""
    return f"version {version}{name}"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
