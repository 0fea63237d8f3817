"""The catalog (store/catalog.py) is the one declaration of the tables: the migrations create
exactly its tables and columns, with its types."""

from __future__ import annotations

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
