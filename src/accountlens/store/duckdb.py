"""The embedded default engine: one DuckDB file per workspace."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from accountlens.store.base import Store, StoreError


class DuckDBStore(Store):
    def __init__(self, path: Path, read_only: bool = False):
        super().__init__()
        self.path = path
        try:
            self._con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreError(
                    f"{path} is in use by another process (probably `accountlens serve`); "
                    "stop it, or query the running server through its REST API"
                ) from exc
            raise StoreError(f"cannot open {path}: {exc}") from exc
        self._local = threading.local()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # A DuckDB connection must not be shared across threads; each thread gets its own cursor.
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._con.cursor()
            self._local.cursor = cursor
        return cursor

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None) -> Any:
        return self._cursor().execute(sql, params)

    def arrow(self, sql: str, params: Sequence[Any] | dict | None = None) -> pa.Table:
        return self._cursor().sql(sql, params=params).to_arrow_table()

    def register(self, name: str, table: pa.Table) -> None:
        self._cursor().register(name, table)

    def unregister(self, name: str) -> None:
        self._cursor().unregister(name)

    def close(self) -> None:
        self._con.close()
