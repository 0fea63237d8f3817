"""The catalog (store/catalog.py) is the one declaration of the tables: the migrations create
exactly its tables and columns, with its types."""

from __future__ import annotations

import re

from accountlens.model import entities
from accountlens.store import catalog
from accountlens.workspace import Workspace

_TYPES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}


def test_the_migrations_create_the_catalog(tmp_path) -> None:
    with Workspace.init(tmp_path / "ws") as ws:
        rows = ws.store.arrow(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").to_pylist()
    stored: dict[str, dict[str, str]] = {}
    for row in rows:
        stored.setdefault(row["table_name"], {})[row["column_name"]] = _TYPES.get(
            row["data_type"], row["data_type"])
    assert stored == catalog.TABLES


def _check_lists(ws: Workspace) -> dict[tuple[str, str], list[str]]:
    """(table, column) → the values its `CHECK (column IN (...))` constraint allows."""
    checks = {}
    for row in ws.store.arrow("SELECT table_name, expression FROM duckdb_constraints() "
                              "WHERE constraint_type = 'CHECK'").to_pylist():
        match = re.fullmatch(r"\((\w+) IN \((.*)\)\)", row["expression"])
        assert match, f"a CHECK this test cannot read: {row['expression']}"
        checks[(row["table_name"], match[1])] = re.findall(r"'([^']*)'", match[2])
    return checks


def test_the_check_constraints_allow_the_model_kinds(tmp_path) -> None:
    """The migrations' CHECK lists are literal history; they must allow exactly the kinds of
    model/entities.py, and the import CSVs' choices are those kinds."""
    with Workspace.init(tmp_path / "ws") as ws:
        checks = _check_lists(ws)
    assert checks == {("org_units", "kind"): list(entities.UNIT_KINDS),
                      ("outcomes", "kind"): list(entities.OUTCOME_KINDS),
                      ("events", "actor_kind"): list(entities.ACTOR_KINDS),
                      ("suppressed_users", "kind"): list(entities.SUPPRESSION_KINDS)}
    choices = {(spec.table, column.column): list(column.choices)
               for spec in entities.ENTITIES.values() for column in spec.columns if column.choices}
    assert choices == {key: kinds for key, kinds in checks.items() if key[0] not in ("events", "suppressed_users")}


def test_the_import_columns_are_catalog_columns() -> None:
    for kind, spec in entities.ENTITIES.items():
        table = catalog.columns(spec.table)
        for column in spec.columns:
            assert column.type == table[column.column], (kind, column.name)
        assert all(spec.column(key) is not None for key in spec.key), kind
