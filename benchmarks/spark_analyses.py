"""Every analysis that runs on Spark, on Spark `local[2]` against DuckDB on the same workspace
(issue 22: "Spark local[2] vs DuckDB for each analysis; slower on one machine: state by how much")."""

from __future__ import annotations

import shutil

from accountlens.analysis import accounts, features
from accountlens.analysis.registry import load_all
from accountlens.workspace import Workspace
from benchmarks.measure import best_of, timed
from benchmarks.metrics import analysis_label
from benchmarks.registry import Context, Row, Skipped, benchmark
from benchmarks.workspace import bench_workspace

# The parameters each analysis is timed with (its defaults otherwise); the analyses are those
# whose engines include Spark (analysis/registry.py), so a newly ported one is timed too.
# One shuffle partition per core of local[2] rather than Spark's 200 (docs/spark.md, "Tuning"):
# measured at 200,000 events under load, the defaults made handoffs 81× and collaboration 259×
# DuckDB's time, nearly all of it scheduling 200 tiny tasks per stage.
SINGLE_MACHINE = {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}
PARAMS: dict[str, dict] = {
    "sequences": {"outcome": "renewal"},
    "renewals": {"days": 365},
}


@benchmark("spark_analyses", "Analyses on Spark local[2] vs DuckDB", order=65,
           requires=("workspace",))
def spark_analyses_benchmark(ctx: Context) -> list[Row]:
    """The workspace's Parquet export (events by month below 1M events, else by day, as
    docs/spark.md advises), then each analysis that runs on Spark with its default view, on
    DuckDB and on Spark `local[2]` over the export (two shuffle partitions, one per core, else
    Spark's defaults; the tables not cached), both warm (after a first run in the process), best of two runs (one in quick mode).
    Each Spark row is a ratio to its DuckDB row: on one machine Spark is slower (a JVM, a query
    planner and a shuffle per query, made for data that does not fit one machine); the rows say
    by how much. No target: the figure is for sizing (when a cluster pays off)."""
    if shutil.which("java") is None:
        raise Skipped("the Spark engine needs Java 17+ on PATH")
    ws = Workspace.open(bench_workspace(ctx).path)
    try:
        export = ctx.scratch("spark-export")
        partition = "month" if ctx.events < 1_000_000 else "day"
        seconds, _ = timed(lambda: ws.export_parquet(export, partition=partition, overwrite=True))
        rows = [Row("spark_analyses.export", f"export parquet (events by {partition})", seconds, "s")]
        ws.config.spark.conf = {**ws.config.spark.conf, **SINGLE_MACHINE}  # this run only
        started, _ = timed(lambda: ws.engine("spark", parquet=export))
        rows.append(Row("spark_analyses.session", "opening the Spark store (JVM start)", started, "s"))
        repeats = 1 if ctx.quick else 2

        def fresh(name: str, params: dict, **engine: object) -> object:
            # the account features health, signals, value, … share are kept per store and day:
            # computed afresh here, as the metric rows are (best_of drops those). A run before
            # this existed timed them kept: health 0.18 s on Spark against 0.22 s on DuckDB.
            features._CACHE.clear()
            accounts._CACHE.clear()  # the accounts list keeps its table likewise
            return ws.analysis(name, cached=False, **params, **engine)

        for name, analysis in load_all().items():
            if "spark" not in analysis.engines:
                continue
            params = PARAMS.get(name, {})
            label = analysis_label(name, params)
            key = "spark_analyses." + label.replace(" ", ".").replace("=", "_")
            ws.analysis(name, **params)  # warm: imports, the rollup, kept as-of days
            duck, _ = best_of(lambda n=name, p=params: fresh(n, p), repeats)
            ctx.log(f"spark_analyses: {label} on DuckDB {duck:.2f}s")
            ws.analysis(name, engine="spark", parquet=export, **params)  # warm the JVM's code
            on_spark, _ = best_of(lambda n=name, p=params: fresh(
                n, p, engine="spark", parquet=export), repeats)
            ctx.log(f"spark_analyses: {label} on Spark {on_spark:.2f}s")
            rows.append(Row(f"{key}.duckdb", f"{label} on DuckDB", duck, "s"))
            rows.append(Row(f"{key}.spark", f"{label} on Spark local[2]", on_spark, "s",
                            baseline=f"{key}.duckdb",
                            note=f"{on_spark / duck:.1f}× DuckDB's time" if duck else ""))
        return rows
    finally:
        ws.close()
