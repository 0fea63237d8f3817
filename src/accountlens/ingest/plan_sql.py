"""The tracking plan in SQL: JSON Schemas translated into rows of checks that one generic,
set-wise query applies to a load (docs/quality.md, "Tracking plan").

The query is a filter, never the verdict: it flags every event its schema may reject — exactly
for the keywords translated here, and every event of a schema with any other keyword — and
`jsonschema_rs` validates the flagged events only, naming each violation. So the set-wise pass
decides for the many valid events, and the validator sees the few flagged ones.

The plan becomes data, not SQL text: one row per (event, property) check, joined to the
events by name. (One CASE branch per event, 50 of them, cost DuckDB as much per branch as the
check over every row: 3 s per 50,000 events.) Each object is parsed once: every property a
schema names is extracted in one `json_extract` (a list of JSON fragments, NULL where absent),
and the checks read the fragments (the kind of a value from its first character).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

# Keywords that only annotate (the validator checks no `format` by default, as Draft 2020-12).
_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples", "default",
                "deprecated", "readOnly", "writeOnly", "format"}
_TOP_LEVEL = {"type", "required", "properties", "additionalProperties"} | _ANNOTATIONS
_PROPERTY = {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
             "exclusiveMaximum", "minLength", "maxLength", "pattern"} | _ANNOTATIONS
# JSON Schema type → the kinds (see `KIND`) of the values that surely have it: a number
# written with a fraction or exponent (1.0) may still be an integer; flagged, the validator
# decides.
_KINDS = {"string": "s", "integer": "i", "number": "id", "boolean": "b", "object": "o",
          "array": "a", "null": "z"}
# keyword → its column in the check rows
_LIMITS = {"minimum": "minimum", "exclusiveMinimum": "exclusive_minimum", "maximum": "maximum",
           "exclusiveMaximum": "exclusive_maximum"}
_LENGTHS = {"minLength": "min_length", "maxLength": "max_length"}

# The columns of the check rows and their DuckDB types.
CHECK_COLUMNS = {"target": "VARCHAR", "name": "VARCHAR", "slot": "BIGINT", "required": "BOOLEAN",
                 "kinds": "VARCHAR", "enum_values": "VARCHAR[]", "minimum": "DOUBLE",
                 "exclusive_minimum": "DOUBLE", "maximum": "DOUBLE", "exclusive_maximum": "DOUBLE",
                 "min_length": "BIGINT", "max_length": "BIGINT", "pattern": "VARCHAR"}
NAME_COLUMNS = {"target": "VARCHAR", "name": "VARCHAR", "opaque": "BOOLEAN", "closed": "VARCHAR[]"}


def json_path(prop: str) -> str:
    """The JSONPath of a top-level key, any name."""
    return '$."' + prop.replace("\\", "\\\\").replace('"', '\\"') + '"'


def re2_compatible(pattern: str) -> bool:
    """Whether DuckDB's regular expressions (RE2) read `pattern` as JSON Schema's (ECMA-262)
    would, as far as a quick look tells: no look-around or back-references."""
    return not any(token in pattern for token in ("(?=", "(?!", "(?<", "\\1", "\\2", "\\k<"))


@dataclass
class PlanChecks:
    """A plan as check rows. `target` is `event` (track properties), `identify` or `group`
    (traits); `slot` is the property's position (from 1) in `paths`, the JSON paths extracted
    from every object. `names` has one row per planned (target, name): `opaque` when its
    schema cannot be translated (every event of it is flagged), `closed` the properties
    allowed when it forbids others (additionalProperties: false)."""

    paths: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    names: list[dict[str, Any]] = field(default_factory=list)

    def add(self, target: str, name: str, schema: Any) -> None:
        rows = self._translate(target, name, schema)
        closed = None
        if rows is not None and isinstance(schema, Mapping) and schema.get("additionalProperties") is False:
            closed = [str(k) for k in schema.get("properties", {})]
        self.names.append({"target": target, "name": name, "opaque": rows is None, "closed": closed})
        self.checks += rows or []

    def _slot(self, prop: str) -> int:
        path = json_path(prop)
        if path not in self.paths:
            self.paths.append(path)
        return self.paths.index(path) + 1

    def _translate(self, target: str, name: str, schema: Any) -> list[dict[str, Any]] | None:
        if schema is True or schema == {}:
            return []
        if not isinstance(schema, Mapping) or set(schema) - _TOP_LEVEL:
            return None
        if schema.get("type", "object") != "object":
            return None
        required, properties = schema.get("required", []), schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if (not isinstance(required, list) or not isinstance(properties, Mapping)
                or extra not in (True, False, {})):
            return None
        rows: dict[str, dict[str, Any]] = {}
        for prop in required:
            rows[str(prop)] = {"required": True}
        for prop, sub in properties.items():
            check = _property(sub)
            if check is None:
                return None
            rows[str(prop)] = {**rows.get(str(prop), {}), **check}
        return [{"target": target, "name": name, "slot": self._slot(prop), "required": False,
                 **row} for prop, row in rows.items()]


def _property(schema: Any) -> dict[str, Any] | None:
    """The check row of one property's schema (None: it cannot be translated)."""
    if schema is True or schema == {}:
        return {}
    if not isinstance(schema, Mapping) or set(schema) - _PROPERTY:
        return None
    row: dict[str, Any] = {}
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if any(t not in _KINDS for t in types):
            return None
        row["kinds"] = "".join(sorted({k for t in types for k in _KINDS[t]}))
    if "enum" in schema or "const" in schema:
        values = schema["enum"] if "enum" in schema else [schema["const"]]
        if not isinstance(values, list) or ("enum" in schema and "const" in schema):
            return None
        # compared as JSON text: a value written otherwise (1.0 for 1) is flagged
        row["enum_values"] = [orjson.dumps(v).decode() for v in values]
    for keyword, column in _LIMITS.items():
        if keyword in schema:
            limit = schema[keyword]
            if not isinstance(limit, int | float) or isinstance(limit, bool):
                return None
            row[column] = float(limit)
    for keyword, column in _LENGTHS.items():
        if keyword in schema:
            row[column] = int(schema[keyword])
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str) or not re2_compatible(schema["pattern"]):
            return None
        row["pattern"] = schema["pattern"]
    return row


# SQL over `o` (target, name, vals: the fragments, keys) joined with the check row `k`:
# whether the value may break it. `v` is the fragment's text, `kind` its kind:
# s(tring), o(bject), a(rray), b(oolean), z (null), i(nteger), d (any other number).
KIND = ("CASE left(v, 1) WHEN '\"' THEN 's' WHEN '{' THEN 'o' WHEN '[' THEN 'a' "
        "WHEN 't' THEN 'b' WHEN 'f' THEN 'b' WHEN 'n' THEN 'z' "
        "ELSE CASE WHEN contains(v, '.') OR contains(v, 'e') OR contains(v, 'E') THEN 'd' "
        "ELSE 'i' END END")
# lengths count code points, as DuckDB's `length` does (`length_grapheme` counts clusters)
BROKEN = """
    CASE WHEN v IS NULL THEN k.required
         ELSE (k.kinds IS NOT NULL AND NOT contains(k.kinds, kind))
              OR (k.enum_values IS NOT NULL AND NOT list_contains(k.enum_values, v))
              OR num < k.minimum OR num <= k.exclusive_minimum OR num > k.maximum
              OR num >= k.exclusive_maximum
              OR length(text) < k.min_length OR length(text) > k.max_length
              OR NOT regexp_matches(text, k.pattern)
    END"""
# a number's value, a string's text: read only where a check needs them
VALUES = """CASE WHEN kind IN ('i', 'd') AND k.has_limits THEN TRY_CAST(v AS DOUBLE) END AS num,
            CASE WHEN kind = 's' AND k.has_text THEN json_extract_string(v, '$') END AS text"""

def flag_queries(checks: PlanChecks, targets: list[str], unplanned: bool) -> list[str]:
    """The statements that fill `_plan_flags(line_no, flag)` from the valid rows of
    `_checked` whose type is planned (`targets`: event, identify, group): flag 1 for an event
    that may break the plan, 2 for a track event the plan does not name (with `unplanned`).
    They read `_plan_checks` and `_plan_names` (the rows of `checks`) and the parameters
    `$paths` and `$types`."""
    closed = any(row["closed"] is not None for row in checks.names)
    obj = "CASE WHEN type = 'track' THEN properties ELSE traits END"
    keys = f"json_keys({obj})" if closed else "NULL::VARCHAR[]"
    return [
        f"""CREATE OR REPLACE TEMP TABLE _plan_objs AS
            SELECT line_no, CASE WHEN type = 'track' THEN 'event' ELSE type END AS target,
                   CASE WHEN type = 'track' THEN name ELSE type END AS name,
                   json_extract({obj}, $paths) AS vals, {keys} AS keys
            FROM _checked WHERE reason IS NULL AND list_contains($types, type)""",
        f"""CREATE OR REPLACE TEMP TABLE _plan_flags AS
            SELECT line_no, max(flag) AS flag FROM (
                SELECT o.line_no, CASE WHEN n.name IS NULL THEN 2 ELSE 1 END AS flag
                FROM _plan_objs o LEFT JOIN _plan_names n USING (target, name)
                WHERE (n.name IS NULL AND o.target = 'event' AND {str(unplanned).lower()})
                   OR n.opaque OR NOT list_has_all(n.closed, coalesce(o.keys, []))
                UNION ALL
                SELECT line_no, 1 AS flag
                FROM (SELECT *, {VALUES}
                      FROM (SELECT *, {KIND} AS kind
                            FROM (SELECT o.line_no, k.*, CAST(o.vals[k.slot] AS VARCHAR) AS v
                                  FROM _plan_objs o JOIN _plan_checks k USING (target, name))) k) k
                WHERE {BROKEN})
            GROUP BY line_no""",
    ]


def create_table(store: Any, table: str, columns: dict[str, str], rows: list[dict[str, Any]],
                 extra: str = "") -> None:
    """A temp table `table` of `rows` (values as parameters, one list per column)."""
    select = ", ".join(f"CAST(unnest(${name}) AS {kind}) AS {name}" for name, kind in columns.items())
    store.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *{extra} FROM (SELECT {select})",
                  {name: [row.get(name) for row in rows] for name in columns})


def create_check_tables(store: Any, checks: PlanChecks) -> None:
    """`_plan_checks` and `_plan_names`, the tables `flag_queries` reads."""
    create_table(store, "_plan_checks", CHECK_COLUMNS, checks.checks,
                 ", coalesce(minimum, exclusive_minimum, maximum, exclusive_maximum) IS NOT NULL "
                 "AS has_limits, coalesce(min_length, max_length) IS NOT NULL OR pattern IS NOT NULL "
                 "AS has_text")
    create_table(store, "_plan_names", NAME_COLUMNS, checks.names)
