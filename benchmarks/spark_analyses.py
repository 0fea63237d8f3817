"""The metrics table and every analysis that runs on Spark, on Spark `local[2]` against DuckDB
on the same workspace (issue 22: "Spark local[2] vs DuckDB for the metrics table and each
analysis; slower on one machine: state by how much"), and Spark's time on one core against two
for the metrics table and two analyses."""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accountlens.analysis import accounts, features
from accountlens.analysis.registry import load_all
from accountlens.workspace import Workspace
from benchmarks.attribution import EXPERIMENT, _exposures
from benchmarks.measure import best_of, timed
from benchmarks.metrics import analysis_label, table_metrics
from benchmarks.registry import Context, Row, Skipped, benchmark
from benchmarks.workspace import bench_workspace

# The parameters each analysis is timed with (its defaults otherwise); the analyses are those
# whose engines include Spark (analysis/registry.py), so a newly ported one is timed too.
# One shuffle partition per core of local[2] rather than Spark's 200 (docs/spark.md, "Tuning"):
# measured at 200,000 events under load, the defaults made handoffs 81× and collaboration 259×
# DuckDB's time, nearly all of it scheduling 200 tiny tasks per stage.
# A 4 GB driver as in earlier sessions' figures; the metrics table ran out of Spark's execution
# memory at 1M events with it while it was one query of many joins (20,000 events with the
# default 1 GB). Since it runs one query per metric (SparkStore.table_in_parts) it also runs
# with the default 1 GB: 51 s at 1M events (load 10), 27 s at 10M (load 3; session 15).
SINGLE_MACHINE = {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false",
                  "spark.driver.memory": "4g"}
PARAMS: dict[str, dict] = {
    "sequences": {"outcome": "renewal"},
    "renewals": {"days": 365},
    # the exposures benchmarks/attribution.py imports: every account, two variants
    "experiments": {"experiment": EXPERIMENT, "metric": "depth"},
}
# Timed on Spark local[1] and local[2] (the same plans), besides the metrics table: a
# join-heavy analysis over the events and one over the rollup with pandas after it. Eight
# shuffle partitions, as in session 14's figures (chosen then because the metrics table, as one
# query, ran out of execution memory on local[1] with two; it no longer does).
CORE_ANALYSES = ("handoffs", "attribution")
CORES_PARTITIONS = "8"


def _fresh(ws: Workspace, name: str, params: dict, **engine: object) -> object:
    # the account features health, signals, value, … share are kept per store and day:
    # computed afresh here, as the metric rows are (best_of drops those). A run before
    # this existed timed them kept: health 0.18 s on Spark against 0.22 s on DuckDB.
    features._CACHE.clear()
    accounts._CACHE.clear()  # the accounts list keeps its table likewise
    return ws.analysis(name, cached=False, **params, **engine)


def _metrics_table(ws: Workspace, **engine: object) -> object:
    """Every metric that can be a column, one row per account (`accountlens metrics --wide`)."""
    return ws.metrics_table(table_metrics(ws.config.analysis.model), level="account", **engine)


def _timed_cases(ws: Workspace) -> dict[str, Callable[..., object]]:
    """Label -> a run of the metrics table or of each analysis that runs on Spark (engine
    keywords: DuckDB without them)."""
    cases: dict[str, Callable[..., object]] = {"metrics table": lambda **e: _metrics_table(ws, **e)}
    for name, analysis in load_all().items():
        if "spark" in analysis.engines:
            params = PARAMS.get(name, {})
            cases[analysis_label(name, params)] = lambda n=name, p=params, **e: _fresh(ws, n, p, **e)
    return cases


def _with_exposures(ws: Workspace, folder: Path) -> None:
    if not ws.store.scalar("SELECT count(*) FROM experiment_exposures WHERE experiment = ?",
                           [EXPERIMENT]):
        _exposures(ws, folder)


def _on_cores(path: Path, export: Path, cores: int, repeats: int) -> dict[str, float | str]:
    """Seconds of the metrics table and CORE_ANALYSES on a Spark session of `cores` cores
    (started for it, warm: each timed after a first run), or the error it ended with."""
    ws = Workspace.open(path)
    try:
        ws.config.spark.master = f"local[{cores}]"
        ws.config.spark.conf = {**ws.config.spark.conf, **SINGLE_MACHINE,
                                "spark.sql.shuffle.partitions": CORES_PARTITIONS}
        runs: dict[str, Any] = {"metrics table": lambda: _metrics_table(
            ws, engine="spark", parquet=export)}
        for name in CORE_ANALYSES:
            runs[name] = lambda n=name: _fresh(ws, n, PARAMS.get(n, {}), engine="spark",
                                               parquet=export)
        seconds: dict[str, float | str] = {}
        for label, run in runs.items():
            try:
                run()  # warm: the JVM's code, kept as-of days
                seconds[label] = best_of(run, repeats)[0]
            except Exception as exc:  # noqa: BLE001 - said in the row: the other figures still count
                # Spark's error class (e.g. [UNABLE_TO_ACQUIRE_MEMORY]), not Py4J's first line
                found = re.search(r"\[[A-Z_.]+\][^\n]*", str(exc))
                seconds[label] = (found.group(0) if found else str(exc).strip())[:200]
        return seconds
    finally:
        ws.close()  # stops the session it started: the next one may have other cores


@benchmark("spark_analyses", "Analyses on Spark local[2] vs DuckDB", order=65,
           requires=("workspace",))
def spark_analyses_benchmark(ctx: Context) -> list[Row]:
    """The workspace's Parquet export (events by month below 1M events, else by day, as
    docs/spark.md advises), then the metrics table (every metric that can be a column, by
    account) and each analysis that runs on Spark with its default view, on
    DuckDB and on Spark `local[2]` over the export (two shuffle partitions, one per core, else
    Spark's defaults; the tables not cached), both warm (after a first run in the process), best
    of two runs (one in quick mode). Each Spark row is a ratio to its DuckDB row: on one machine
    Spark is slower (a JVM, a query planner and a shuffle per query, made for data that does
    not fit one machine); the rows say by how much. Then the metrics table and two analyses on
    a Spark session of one core and one of two (eight shuffle partitions each: the same
    plans), each started for it. No target: the figures are for sizing (when a cluster pays off)."""
    if shutil.which("java") is None:
        raise Skipped("the Spark engine needs Java 17+ on PATH")
    path = bench_workspace(ctx).path
    ws = Workspace.open(path)
    export = ctx.scratch("spark-export")
    repeats = 1 if ctx.quick else 2
    try:
        _with_exposures(ws, ctx.scratch("spark-exposures"))
        partition = "month" if ctx.events < 1_000_000 else "day"
        seconds, _ = timed(lambda: ws.export_parquet(export, partition=partition, overwrite=True))
        rows = [Row("spark_analyses.export", f"export parquet (events by {partition})", seconds, "s")]
        ws.config.spark.conf = {**ws.config.spark.conf, **SINGLE_MACHINE}  # this run only
        started, _ = timed(lambda: ws.engine("spark", parquet=export))
        rows.append(Row("spark_analyses.session", "opening the Spark store (JVM start)", started, "s"))

        for label, run in _timed_cases(ws).items():
            key = "spark_analyses." + label.replace(" ", ".").replace("=", "_")
            run()  # warm: imports, the rollup, kept as-of days
            duck, _ = best_of(run, repeats)
            ctx.log(f"spark_analyses: {label} on DuckDB {duck:.2f}s (load {os.getloadavg()[0]:.1f})")
            on_spark_run = functools.partial(run, engine="spark", parquet=export)
            on_spark_run()  # warm the JVM's code
            on_spark, _ = best_of(on_spark_run, repeats)
            ctx.log(f"spark_analyses: {label} on Spark {on_spark:.2f}s (load {os.getloadavg()[0]:.1f})")
            rows.append(Row(f"{key}.duckdb", f"{label} on DuckDB", duck, "s"))
            rows.append(Row(f"{key}.spark", f"{label} on Spark local[2]", on_spark, "s",
                            baseline=f"{key}.duckdb",
                            note=f"{on_spark / duck:.1f}× DuckDB's time" if duck else ""))
    finally:
        ws.close()
    by_cores = {cores: _on_cores(path, export, cores, repeats) for cores in (1, 2)}
    for label, one in by_cores[1].items():
        key = "spark_analyses.cores." + label.replace(" ", "_")
        two = by_cores[2][label]
        ctx.log(f"spark_analyses: {label} on 1 core {one}, 2 cores {two}")
        both = isinstance(one, float) and isinstance(two, float)
        for cores, value in ((1, one), (2, two)):
            failed = isinstance(value, str)
            rows.append(Row(f"{key}.local{cores}", f"{label} on Spark local[{cores}]",
                            float("nan") if failed else value, "s",
                            baseline=f"{key}.local1" if cores == 2 and both else None,
                            note=f"failed: {value}" if failed else
                            f"{one / two:.2f}× faster on 2 cores" if cores == 2 and both else ""))
    rows.append(Row("spark_analyses.load", "load average (1 min) after the run",
                    os.getloadavg()[0], "", note=f"{os.cpu_count()} cores"))
    return rows
