"""The checks of what an imported CRM/billing row may not say, declared per kind in
model/entities.py: no key twice in a file, no negative counts or amounts, no interval ending
before it starts, no id naming a row that does not exist. Each finds its first offending row.

They run on the staged file once every cell has its type: `_rows` (the typed values under the
table's column names, with the file's `line`) and `_csv` (the cells as written, for messages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accountlens.model.entities import ENTITIES, EntitySpec
from accountlens.store.base import WritableStore


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


Reason = Callable[[dict[str, Any]], str]  # the message's reason, from the offending row


@dataclass(frozen=True)
class Check:
    """One rule on one column: `where` selects the offending rows of `_rows r JOIN _csv c`;
    `value` and `other` are what the message shows; `reason` words it from them."""

    column: str  # the CSV column the message names
    where: str
    value: str
    reason: Reason
    other: str = "NULL"
    warn: bool = False  # the rows are kept; the import warns


def _cell(spec: EntitySpec, name: str) -> tuple[str, str]:
    """The typed value (`r.…`) and the text as written (`c.…`) of CSV column `name`."""
    column = spec.column(name)
    assert column is not None, f"{spec.table}: a check names the unknown column {name!r}"
    return f"r.{_ident(column.column)}", f"trim(c.{_ident(name)})"


def _before(first: str) -> Reason:
    return lambda row: f"{row['value']} is before {first} {row['other']}"


def _names_nothing(noun: str, hint: str) -> Reason:
    return lambda row: f"{row['value']!r} names no {noun} ({hint})"


def _duplicate_keys(spec: EntitySpec, kind: str, present: list[str]) -> Iterator[Check]:
    typed = [_cell(spec, name)[0] for name in spec.key]
    # an optional key column absent from the file is empty on every row (as written: NULL)
    shown = "list_value(" + ", ".join(_cell(spec, name)[1] if name in present else "CAST(NULL AS VARCHAR)"
                                      for name in spec.key) + ")"
    first = f"min(r.line) OVER (PARTITION BY {', '.join(typed)})"
    yield Check(
        ", ".join(spec.key), f"r.line > {first}", shown, other=first,
        reason=lambda row: (f"{', '.join(repr(v) for v in row['value'])} appears again "
                            f"(first on line {row['other']}): one row per key in a file"),
    )


def _non_negative(spec: EntitySpec, kind: str, present: list[str]) -> Iterator[Check]:
    for name in spec.non_negative:
        if name in present:
            typed, text = _cell(spec, name)
            yield Check(name, f"{typed} < 0", text, reason=lambda row: f"{row['value']} is negative")


def _ordered(spec: EntitySpec, kind: str, present: list[str]) -> Iterator[Check]:
    for first, second in spec.ordered:
        if first in present and second in present:
            (start, start_text), (end, end_text) = _cell(spec, first), _cell(spec, second)
            yield Check(second, f"{end} < {start}", end_text, other=start_text,
                        reason=_before(first))


def _references(spec: EntitySpec, kind: str, present: list[str]) -> Iterator[Check]:
    declared = [(name, target, False) for name, target in spec.references.items()]
    declared += [(name, target, True) for name, target in spec.warn_references.items()]
    for name, target_kind, warn in declared:
        if name not in present:
            continue
        typed, text = _cell(spec, name)
        target = ENTITIES[target_kind]
        key = _cell(target, target.key[0])[0].removeprefix("r.")  # its table column
        known = [f"SELECT 1 FROM {target.table} t WHERE t.{key} = {typed}"]
        if target_kind == kind:  # a parent defined further down the same file will exist
            known.append(f"SELECT 1 FROM _rows s WHERE s.{key} = {typed}")
        noun = target_kind.removesuffix("s")
        hint = f"import {target_kind} first" if target_kind != kind else "not stored, nor in this file"
        yield Check(name, f"{typed} IS NOT NULL AND NOT EXISTS ({' UNION ALL '.join(known)})", text,
                    reason=_names_nothing(noun, hint), warn=warn)


# What every imported file is checked for, in this order (a kind declares what applies to it).
CHECKS: tuple[Callable[[EntitySpec, str, list[str]], Iterator[Check]], ...] = (
    _duplicate_keys, _non_negative, _ordered, _references,
)


def problems(store: WritableStore, kind: str, path: Path,
             present: list[str]) -> tuple[list[str], list[str]]:
    """`FILE:LINE column NAME: reason` for the first offending row of each check, with how many
    more rows it concerns, in line order: the problems that refuse the file, and the warnings."""
    spec = ENTITIES[kind]
    found: list[tuple[bool, int, str]] = []
    for make in CHECKS:
        for check in make(spec, kind, present):
            rows = store.rows(
                f"""SELECT line, value, other, count(*) OVER () AS bad FROM (
                        SELECT r.line, {check.value} AS value, {check.other} AS other,
                               {check.where} AS offends
                        FROM _rows r JOIN _csv c ON c.line = r.line)
                    WHERE offends ORDER BY line LIMIT 1""")
            if rows:
                row = rows[0]
                more = f" (and {row['bad'] - 1} more row(s))" if row["bad"] > 1 else ""
                found.append((check.warn, row["line"],
                              f"{path}:{row['line']} column {check.column}: {check.reason(row)}{more}"))
    found.sort()
    return [text for warn, _, text in found if not warn], [text for warn, _, text in found if warn]
