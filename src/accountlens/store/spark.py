"""Apache Spark as a read-only analytics engine over a workspace's Parquet export (docs/spark.md).

Metrics run here as the same Ibis expressions as on DuckDB, compiled to Spark SQL. Ingestion
stays on DuckDB: this store refuses writes. pyspark is imported only when a store is opened.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accountlens.store import parquet
from accountlens.store.base import Params, Store, StoreError

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa
    from ibis.expr.schema import Schema
    from pyspark.sql import SparkSession

    from accountlens.store.spark_sql import Statement

DEFAULT_MASTER = "local[2]"
READ_ONLY = ("the Spark engine is read-only (it reads a Parquet export); ingestion and imports "
             "run on the workspace's DuckDB store — write there, then `accountlens export parquet` again")


class SparkStore(Store):
    """A Spark session with one temporary view per exported table, named as in the DuckDB schema.

    The events view has the partition column (`event_date` or `event_month`) besides the
    schema's columns; JSON columns are text.
    """

    engine_name = "spark"
    dialect = "pyspark"
    # A metrics table (metrics/table.py) runs one query per metric, then joins their per-entity
    # rows. As one query, Spark inlines every shared CTE: at 1M events the 17-column account
    # table planned 454 aggregates and 38 sort-merge joins, one task ran ~10 of them chained, each
    # sort and hash map holding a 64 MB page (4 GB driver), and it ran out of execution memory
    # (UNABLE_TO_ACQUIRE_MEMORY) on local[2] and local[1].
    table_in_parts = True

    def __init__(self, location: str | Path, session: SparkSession | None = None,
                 master: str = DEFAULT_MASTER, remote: str = "", conf: dict[str, str] | None = None,
                 scope: tuple[Sequence[str], Sequence[str]] | None = None):
        super().__init__()
        self.location = str(location)
        # a book (store/scoped.py): the ids of its accounts and users; every view binds their rows only
        self.scope = scope
        # Check a local folder before paying for a JVM start.
        manifest = None if parquet.is_uri(location) else parquet.read_manifest(Path(location))
        active = session or _active_session()  # one session per process: reuse it
        self._owns_session = active is None
        self.session = active or _session(master, remote, conf or {})
        if manifest is None:
            manifest = self._remote_manifest()
        self.manifest = manifest
        self._stamp = self._manifest_stamp()
        # (thread, temporary table name) -> (its view's name, the cached frame)
        self._temps: dict[tuple[int, str], tuple[str, Any]] = {}
        self._bind()

    # Temporary views are named like the tables, so two stores sharing a session (two exports)
    # take turns: the store that queries re-binds the names to its own files first.
    _bound: dict[int, int] = {}  # id(session) -> id(store) whose views are registered

    def _bind(self) -> None:
        for name, entry in self.manifest["tables"].items():
            path = f"{self.location.rstrip('/')}/{entry['path']}"
            reader = self.session.read
            if name == parquet.EVENTS:  # partition folders become the partition column
                reader = reader.option("basePath", path)
            frame = reader.parquet(path)
            if self.scope is not None:
                frame = self._scoped(name, frame)
            frame.createOrReplaceTempView(name)
        SparkStore._bound[id(self.session)] = id(self)

    def _scoped(self, name: str, frame: Any) -> Any:
        """`frame` (table `name`) with only the book's rows, as store/scoped.py's SCOPES say."""
        from pyspark.sql.functions import broadcast, lit

        from accountlens.store.scoped import table_scope

        assert self.scope is not None
        kind = table_scope(name, frame.columns)
        if kind == "all":
            return frame
        if kind == "none":
            return frame.where(lit(False))
        column = "account_id" if kind == "account" else "user_id"
        ids = self.scope[0] if kind == "account" else self.scope[1]
        keep = self.session.createDataFrame([(i,) for i in ids], f"{column} string")
        return frame.join(broadcast(keep), on=column, how="left_semi")

    def _remote_manifest(self) -> dict[str, Any]:
        uri = f"{self.location.rstrip('/')}/{parquet.MANIFEST}"
        try:
            row = self.session.read.text(uri, wholetext=True).first()
        except Exception as exc:
            raise StoreError(f"cannot read {uri}: is {self.location} an accountlens Parquet "
                             f"export? ({exc})") from exc
        if row is None:
            raise StoreError(f"{uri} is empty: is {self.location} an accountlens Parquet export?")
        return parquet.parse_manifest(row[0], uri)

    # --- the Store interface --------------------------------------------------------------------
    # SQL given to execute / arrow / df is the workspace's query dialect (DuckDB, with `$name`
    # and `?` parameters), as analyses write it; store/spark_sql.py translates it. A temporary
    # table is a cached temporary view, named per thread (threads share the session's views).
    def _statement(self, sql: str, params: Params) -> Statement:
        from accountlens.store.spark_sql import UnsupportedSQL, WriteSQL, translate

        try:
            return translate(sql, params, self._temp_names())
        except WriteSQL as exc:
            raise StoreError(f"{READ_ONLY} ({exc})") from exc
        except UnsupportedSQL as exc:
            raise StoreError(f"the Spark engine cannot run this query: {exc}") from exc

    def _temp_names(self) -> dict[str, str]:
        thread = threading.get_ident()
        return {name: view for (owner, name), (view, _) in self._temps.items() if owner == thread}

    def execute(self, sql: str, params: Params = None) -> Any:
        self._ensure_bound()
        statement = self._statement(sql, params)
        key = (threading.get_ident(), statement.name)
        if statement.kind == "drop":
            view, frame = self._temps.pop(key, ("", None))
            if frame is not None:
                frame.unpersist()
                self.session.catalog.dropTempView(view)
            return None
        frame = self.session.sql(statement.sql)
        if statement.kind == "temp":
            old = self._temps.pop(key, None)
            if old is not None:
                old[1].unpersist()
            view = f"{statement.name}__t{key[0]}"
            frame = frame.cache()  # read again by the statements that follow
            frame.createOrReplaceTempView(view)
            self._temps[key] = (view, frame)
        return frame

    def _ensure_bound(self) -> None:
        stamp = self._manifest_stamp()
        if stamp != self._stamp:  # written again (a lake's, after loads: docs/lake.md)
            self.manifest, self._stamp = parquet.read_manifest(Path(self.location)), stamp
            self._bind()  # Spark lists the files again: new days and rewritten files
            self.data_version += 1  # results cached before are stale
        elif SparkStore._bound.get(id(self.session)) != id(self):
            self._bind()

    @property
    def data_version(self) -> int:
        """Bumped when the export (a lake's events) changed since read: cached results of
        this store are then stale (analysis/registry.py)."""
        if getattr(self, "_stamp", None) is not None and self._manifest_stamp() != self._stamp:
            self._ensure_bound()
        return self._version

    @data_version.setter
    def data_version(self, value: int) -> None:
        self._version = value

    def _manifest_stamp(self) -> tuple[int, ...] | None:
        """When the local manifest, and a lake's events (store/lake.py), were last written
        (None for a URI: read once)."""
        if parquet.is_uri(self.location):
            return None
        folder = Path(self.location)
        return tuple(path.stat().st_mtime_ns if path.exists() else 0 for path in (
            folder / parquet.MANIFEST, folder / parquet.EVENTS / "_changed"))

    def arrow(self, sql: str, params: Params = None) -> pa.Table:
        self._ensure_bound()
        statement = self._statement(sql, params)
        if statement.kind != "query":
            raise StoreError(f"arrow() runs a query, not a {statement.kind} statement")
        return self.session.sql(statement.sql).toArrow()

    def run_compiled(self, sql: str, schema: Schema) -> pa.Table:
        """Run Spark SQL compiled from an Ibis expression (no translation: it is Spark's own)."""
        from ibis.formats.pyarrow import PyArrowData

        self._ensure_bound()
        return PyArrowData.convert_table(self.session.sql(sql).toArrow(), schema)

    def register(self, name: str, table: pa.Table) -> None:
        self.session.createDataFrame(table).createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self.session.catalog.dropTempView(name)

    def has_table(self, name: str) -> bool:
        self._ensure_bound()
        return bool(self.session.catalog.tableExists(name))

    def compile(self, expr: ir.Expr) -> str:
        compiler = _compiler()
        return compiler.to_sqlglot(expr.unbind()).sql(dialect=compiler.dialect, pretty=True)

    def close(self) -> None:
        """Stop the session if this store started it (a session it was given lives on)."""
        if SparkStore._bound.get(id(self.session)) == id(self):
            del SparkStore._bound[id(self.session)]
        if self._owns_session:
            self.session.stop()


def _pyspark_sql():
    try:
        import pyspark.sql
    except ImportError as exc:
        raise StoreError("the Spark engine needs pyspark: pip install 'accountlens[spark]' "
                         "(and Java 17 or newer)") from exc
    return pyspark.sql


def _active_session() -> SparkSession | None:
    return _pyspark_sql().SparkSession.getActiveSession()


def _session(master: str, remote: str, conf: dict[str, str]) -> SparkSession:
    SparkSession = _pyspark_sql().SparkSession
    # Python workers (pandas UDFs, if any) must run this interpreter, not the system's python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("accountlens")
    builder = builder.remote(remote) if remote else builder.master(master)
    settings = {
        "spark.sql.session.timeZone": "UTC",  # SPEC §5: days are UTC days
        "spark.ui.showConsoleProgress": "false",
        **conf,
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise StoreError(f"cannot start Spark ({remote or master}): {exc}; the Spark engine "
                         "needs Java 17 or newer on PATH (or JAVA_HOME)") from exc
    session.conf.set("spark.sql.session.timeZone", "UTC")  # also when the session pre-existed
    return session


@functools.cache
def _compiler():
    """Ibis's Spark SQL compiler, reading JSON text through Spark 4's VARIANT functions.

    Ibis's own Spark JSON unwrapping calls Python UDFs that fail on string values (Spark's
    get_json_object returns them unquoted); these native forms follow DuckDB's semantics: a
    value of the wrong JSON type is NULL.
    """
    import ibis
    import ibis.expr.operations as ops
    import sqlglot as sg
    import sqlglot.expressions as sge
    from ibis.backends.sql.compilers.base import NULL
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    unwraps = (ops.UnwrapJSONString, ops.UnwrapJSONInt64, ops.UnwrapJSONFloat64,
               ops.UnwrapJSONBoolean)
    integers = ("TINYINT", "SMALLINT", "INT", "BIGINT")

    class VariantJSONCompiler(PySparkCompiler):
        SIMPLE_OPS = {op: name for op, name in PySparkCompiler.SIMPLE_OPS.items()
                      if op not in unwraps}

        def _typed(self, arg, types: Sequence[str], target: str, decimals: bool = False):
            value = self.f.try_parse_json(arg)
            kind = self.f.schema_of_variant(value)
            test = kind.isin(*map(sge.convert, types))
            if decimals:
                test = test.or_(kind.like(sge.convert("DECIMAL%")))
            return self.if_(test, self.f.try_variant_get(value, "$", target), NULL)

        def visit_JSONGetItem(self, op, *, arg, index):
            path = self.f.format_string("$[%s]" if op.index.dtype.is_integer() else "$.%s", index)
            return self.f.to_json(self.f.try_variant_get(self.f.try_parse_json(arg), path))

        def visit_UnwrapJSONString(self, op, *, arg):
            return self._typed(arg, ("STRING",), "string")

        def visit_UnwrapJSONInt64(self, op, *, arg):
            return self._typed(arg, integers, "bigint")

        def visit_UnwrapJSONFloat64(self, op, *, arg):
            return self._typed(arg, (*integers, "FLOAT", "DOUBLE"), "double", decimals=True)

        def visit_UnwrapJSONBoolean(self, op, *, arg):
            return self._typed(arg, ("BOOLEAN",), "boolean")

        def visit_ToJSONArray(self, op, *, arg):
            value = self.f.try_parse_json(arg)
            item = sg.to_identifier("json_item")
            array = sge.Cast(this=value, to=sge.DataType.build("ARRAY<VARIANT>", dialect="spark"))
            items = self.f.transform(array,
                                     sge.Lambda(this=self.f.to_json(item), expressions=[item]))
            return self.if_(self.f.schema_of_variant(value).like(sge.convert("ARRAY%")), items, NULL)

    ibis.pyspark  # noqa: B018 - loading the backend defines ibis.options.pyspark, read by the compiler
    return VariantJSONCompiler()
