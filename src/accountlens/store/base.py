"""The store interface every engine implements: `Store` reads, `WritableStore` (DuckDB) also
writes; shared behaviour (queries from Ibis expressions, migrations, transactions) lives here."""

from __future__ import annotations

import abc
import contextlib
import importlib
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accountlens.store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:  # imported where used: `accountlens --help` and the ingestion path stay light
    import ibis.expr.types as ir
    import pandas as pd
    import pyarrow as pa
    from ibis.expr.schema import Schema

# Engines that read a Parquet export (docs/spark.md), imported only when asked for. DuckDB is
# the workspace's own store; adding an engine is adding its module and one line here.
PARQUET_ENGINES = {"spark": "accountlens.store.spark:SparkStore"}
ENGINES = ("duckdb", *PARQUET_ENGINES)

Params = Sequence[Any] | dict[str, Any] | None

_INSTANCES = itertools.count()


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says why and what to do."""


class StoreLocked(StoreError):
    """Another process holds the store (`holder`: its process id, when the engine says)."""

    def __init__(self, message: str, holder: int | None = None):
        super().__init__(message)
        self.holder = holder


class Store(abc.ABC):
    """A relational store holding one workspace's tables, for queries: metrics and analyses read
    it. Ingestion needs a `WritableStore`."""

    engine_name = "duckdb"  # as users name the engine (`--engine`)
    dialect = "duckdb"  # the Ibis / sqlglot dialect its SQL is written in
    # A metrics table (metrics/table.py) as one query per metric, their per-entity rows then
    # joined, instead of one query (an engine that inlines the shared parts: store/spark.py).
    table_in_parts = False

    def __init__(self) -> None:
        # Bumped by every committed write transaction (WritableStore): results cached under an
        # older version are stale (see analysis/registry.py). A read-only store keeps 0.
        self.data_version = 0
        self.instance = next(_INSTANCES)  # tells stores apart in caches (ids are reused)

    # --- what an engine implements -------------------------------------------------------------
    @abc.abstractmethod
    def execute(self, sql: str, params: Params = None) -> Any:
        """Run one statement (on a read-only store, a query)."""

    @abc.abstractmethod
    def arrow(self, sql: str, params: Params = None) -> pa.Table: ...

    @abc.abstractmethod
    def register(self, name: str, table: pa.Table) -> None: ...

    @abc.abstractmethod
    def unregister(self, name: str) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether a (non-temporary) table or view `name` exists."""

    @contextlib.contextmanager
    def progress_probe(self) -> Iterator[Callable[[], float]]:
        """For the block: a function another thread may call, how far (percent) the statement
        that the calling thread is running has come, or a negative number when the engine
        cannot tell."""
        yield lambda: -1.0

    # --- shared behaviour -----------------------------------------------------------------------
    def df(self, sql: str, params: Params = None) -> pd.DataFrame:
        return self.arrow(sql, params).to_pandas()

    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """The result as one dict per row (column name → Python value)."""
        return self.arrow(sql, params).to_pylist()

    def scalar(self, sql: str, params: Params = None) -> Any:
        rows = self.rows(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def compile(self, expr: ir.Expr) -> str:
        """The SQL this engine runs for an Ibis expression over unbound tables."""
        import ibis

        return str(ibis.to_sql(expr, dialect=self.dialect))

    def run_expr(self, expr: ir.Expr) -> pa.Table:
        """Run an Ibis expression (a metric, the rollup) on this engine.

        The result has the column types the expression declares, whichever engine ran it (one
        returns a decimal or a time zone where another does not).
        """
        table = expr.as_table()
        return self.run_compiled(self.compile(table), table.schema())

    def run_compiled(self, sql: str, schema: Schema) -> pa.Table:
        """Run SQL compiled from an expression; the result gets the expression's `schema`."""
        from ibis.formats.pyarrow import PyArrowData

        return PyArrowData.convert_table(self.arrow(sql), schema)

    @contextlib.contextmanager
    def registered(self, name: str, table: pa.Table) -> Iterator[str]:
        """Expose an Arrow table to SQL as `name` for the duration of the block."""
        self.register(name, table)
        try:
            yield name
        finally:
            self.unregister(name)

    def schema_version(self) -> int:
        exists = self.scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        )
        if not exists:
            return 0
        return int(self.scalar("SELECT max(version) FROM schema_version") or 0)


class WritableStore(Store):
    """A store ingestion writes to (the workspace's DuckDB): transactions, migrations, and the
    Parquet export that read-only engines query."""

    def __init__(self) -> None:
        super().__init__()
        # One writer at a time inside a process: the loader thread and import commands share it.
        self.write_lock = threading.RLock()
        self.options: dict[str, str] = {}  # settings made by `set_option`, kept by `reopen`

    def set_option(self, name: str, value: str) -> None:
        """Set one of the engine's settings (`name` is ours, never a user's), for good."""
        self.options[name] = value
        self.execute(f"SET {name} = ?", [value])

    @contextlib.contextmanager
    def setting(self, name: str, value: str) -> Iterator[None]:
        """Set one of the engine's settings (`name` is ours) for the block only, then back to
        what it was. The engine's settings are shared by every connection: hold `write_lock`
        so that two blocks do not overlap."""
        before = self.scalar("SELECT current_setting(?)::VARCHAR", [name])
        self.execute(f"SET {name} = ?", [value])
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # an engine given up is reopened with defaults
                self.execute(f"SET {name} = ?", [before])
            raise
        self.execute(f"SET {name} = ?", [before])

    @abc.abstractmethod
    def reopen(self) -> None:
        """Open the store again after the engine gave it up (DuckDB after a fatal error, such
        as a checkpoint it could not write on a full disk); committed data is kept, and so are
        the settings made by `set_option`."""

    @abc.abstractmethod
    def export_parquet(self, directory: Path, tables: Sequence[str], partition: str = "day",
                       overwrite: bool = False) -> dict[str, Any]:
        """Write `tables` as Parquet that the read-only engines read (layout: store/parquet.py);
        returns the manifest."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.write_lock:
            self.execute("BEGIN TRANSACTION")
            self._hooks: dict[str, list[Callable[[], None]]] | None = {
                "before_commit": [], "after_commit": [], "after_rollback": []}
            try:
                yield
                for hook in self._hooks["before_commit"]:
                    hook()
            except BaseException:
                hooks, self._hooks = self._hooks, None
                try:
                    self.execute("ROLLBACK")
                finally:
                    for hook in hooks["after_rollback"]:
                        hook()
                raise
            hooks, self._hooks = self._hooks, None
            self.execute("COMMIT")
            self.data_version += 1
            for hook in hooks["after_commit"]:
                hook()

    def on_transaction_end(self, before_commit: Callable[[], None] | None = None,
                           after_commit: Callable[[], None] | None = None,
                           after_rollback: Callable[[], None] | None = None) -> None:
        """Run these as the current `transaction()` ends: files written beside the database
        (store/lake.py) follow its commit or rollback. Outside a transaction: an error."""
        hooks = getattr(self, "_hooks", None)
        if hooks is None:
            raise StoreError("this write must run inside store.transaction()")
        for when, hook in (("before_commit", before_commit), ("after_commit", after_commit),
                           ("after_rollback", after_rollback)):
            if hook is not None:
                hooks[when].append(hook)

    def migrate(self) -> int:
        """Bring the schema to the current version; returns the number of steps applied."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"this workspace has schema version {current}, newer than this accountlens "
                f"understands ({SCHEMA_VERSION}); upgrade accountlens to open it"
            )
        with self.transaction():
            if current == 0:
                self.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER, description VARCHAR, applied_at TIMESTAMPTZ)"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                description, statements = MIGRATIONS[version - 1]
                for statement in statements:
                    self.execute(statement)
                self.execute(
                    "INSERT INTO schema_version VALUES (?, ?, now())", [version, description]
                )
        return SCHEMA_VERSION - current


def open_parquet_engine(engine: str, location: str | Path, **settings: Any) -> Store:
    """A read-only store of `engine` over the Parquet export at `location`."""
    if engine not in PARQUET_ENGINES:
        raise StoreError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)} "
                         "(duckdb reads the workspace itself, the others its Parquet export)")
    module, _, name = PARQUET_ENGINES[engine].partition(":")
    return getattr(importlib.import_module(module), name)(location, **settings)
