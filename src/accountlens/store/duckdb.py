"""The embedded default engine: one DuckDB file per workspace."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from accountlens.store import parquet
from accountlens.store.base import Params, StoreError, StoreLocked, WritableStore
from accountlens.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:  # results come as Arrow only when asked for: `rows` needs no pyarrow
    import pyarrow as pa

    from accountlens.store.lake import Lake


class DuckDBStore(WritableStore):
    """The workspace's own store, the one ingestion writes to."""

    def __init__(self, path: Path, read_only: bool = False):
        super().__init__()
        self.path, self.read_only = path, read_only
        try:
            self._con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                pid = re.search(r"\(PID (\d+)\)", str(exc))
                holder = int(pid.group(1)) if pid else None
                raise StoreLocked(
                    f"{path} is in use by another process ({_process(holder)}): DuckDB allows "
                    "one writer. If it is `accountlens serve`, query it through its REST API "
                    "(`accountlens import` hands files to it by itself); else wait for it or "
                    "stop it", holder) from exc
            raise StoreError(f"cannot open {path}: {exc}") from exc
        self._local = threading.local()
        self.lake: Lake | None = None  # set on open when the events are a lake (store/lake.py)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # A DuckDB connection must not be shared across threads; each thread gets its own cursor.
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._con.cursor()
            cursor.execute("SET TimeZone = 'UTC'")  # SPEC §5: time is UTC, whatever the host's zone
            self._local.cursor = cursor
        return cursor

    def execute(self, sql: str, params: Params = None) -> Any:
        return self._cursor().execute(sql, params)

    def arrow(self, sql: str, params: Params = None) -> pa.Table:
        return self._cursor().sql(sql, params=params).to_arrow_table()

    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        relation = self._cursor().sql(sql, params=params)
        if relation is None:  # not a query
            return []
        if any("WITH TIME ZONE" in str(kind) for kind in relation.types):
            # DuckDB's Python values for time zones need pytz, which nothing else here needs
            return relation.to_arrow_table().to_pylist()
        return [dict(zip(relation.columns, row)) for row in relation.fetchall()]

    @contextlib.contextmanager
    def progress_probe(self) -> Iterator[Callable[[], float]]:
        cursor = self._cursor()
        # DuckDB estimates progress only with its progress bar on (nothing printed); the
        # thread's later statements go back to the defaults
        cursor.execute("SET enable_progress_bar = true")
        cursor.execute("SET enable_progress_bar_print = false")
        try:
            yield cursor.query_progress
        finally:
            cursor.execute("RESET enable_progress_bar")
            cursor.execute("RESET enable_progress_bar_print")

    def register(self, name: str, table: pa.Table) -> None:
        self._cursor().register(name, table)

    def unregister(self, name: str) -> None:
        self._cursor().unregister(name)

    def close(self) -> None:
        self._con.close()

    def reopen(self) -> None:
        with self.write_lock:
            self._con.close()  # and with it every thread's cursor
            self._local = threading.local()
            self._con = duckdb.connect(str(self.path), read_only=self.read_only)
            for name, value in self.options.items():
                self.execute(f"SET {name} = ?", [value])

    def has_table(self, name: str) -> bool:
        # a view too: the events of a lake workspace are one (store/lake.py)
        return bool(self.scalar(
            "SELECT (SELECT count(*) FROM duckdb_tables() WHERE table_name = $name AND NOT temporary)"
            " + (SELECT count(*) FROM duckdb_views() WHERE view_name = $name AND NOT temporary "
            "AND NOT internal)", {"name": name}))

    def export_parquet(self, directory: Path, tables: Sequence[str], partition: str = "day",
                       overwrite: bool = False) -> dict[str, Any]:
        """Write `tables` as Parquet that Spark and DuckDB read (layout: store/parquet.py).

        JSON columns become text (Spark has no JSON type; both engines parse it on read).
        Returns the manifest, which names each table's file and row count.
        """
        if partition not in parquet.PARTITIONS:
            raise StoreError(f"partition by {' or '.join(parquet.PARTITIONS)}, not {partition!r}")
        parquet.prepare(directory, overwrite)
        column, value = parquet.PARTITIONS[partition]
        rows: dict[str, int] = {}
        with self.transaction():  # one snapshot: counts and files agree while loads go on
            for name in tables:
                rows[name] = self._export_table(directory, name, column, value)
        return parquet.write_manifest(directory, rows, partition, SCHEMA_VERSION)

    def _export_table(self, directory: Path, name: str, column: str, value: str) -> int:
        relation = self._cursor().sql(f'SELECT {self._text_json_columns(name)} FROM "{name}"')
        target = str(directory / parquet.table_file(name))
        if name == parquet.EVENTS:
            # Sorted by time, so each partition's file holds its rows in order.
            relation = relation.select(f"*, {value} AS {column}").order("timestamp")
            relation.write_parquet(target, compression="zstd", partition_by=[column],
                                   overwrite=True, per_thread_output=False)
        else:
            relation.write_parquet(target, compression="zstd")
        return int(self.scalar(f'SELECT count(*) FROM "{name}"'))

    def _text_json_columns(self, table: str) -> str:
        columns = self.rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position", [table])
        if not columns:
            raise StoreError(f"no table {table!r} to export")
        return ", ".join(f'CAST("{c["column_name"]}" AS VARCHAR) AS "{c["column_name"]}"'
                         if c["data_type"] == "JSON" else f'"{c["column_name"]}"' for c in columns)


def _process(pid: int | None) -> str:
    """`PID 123: accountlens serve --dir ws`, as far as the system tells."""
    if pid is None:
        return "process id unknown"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return f"PID {pid}"
    return f"PID {pid}: {command}" if command else f"PID {pid}"
