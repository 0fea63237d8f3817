"""Every analysis that names Spark among its engines gives DuckDB's rows on Spark (local[2]) over
the Parquet export of the same generated workspace (STYLE 7); every other one is declared
pending with its reason (analysis/registry.py's SPARK_PENDING), and docs/spark.md says both."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import accountlens
from accountlens.analysis.registry import (
    SPARK_PENDING,
    AnalysisError,
    EngineUnavailable,
    NotFound,
    load_all,
    run_analysis,
)
from accountlens.cli.main import app
from accountlens.demo.simulator import generate_demo

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="the Spark engine needs Java 17+ on PATH (java not found)")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "spark.md"
EXPERIMENT = "guided-setup"  # the demo's experiment
# Each analysis on Spark with its main views and levels (the first case of each is its default).
# A small demo has few outcomes: `sequences` lists every pattern so that there are rows.
CASES: list[tuple[str, dict]] = [
    ("handoffs", {}),
    ("handoffs", {"view": "bottlenecks", "min_handoffs": 1}),
    ("handoffs", {"view": "stalls"}),
    ("handoffs", {"view": "chains"}),
    ("handoffs", {"level": "team"}),
    ("collaboration", {"level": "account"}),
    ("collaboration", {"level": "department"}),
    ("collaboration", {"level": "account", "view": "graph", "nodes": "role"}),
    ("sequences", {"outcome": "renewal", "all_patterns": True, "min_support": 1}),
    ("sequences", {"outcome": "renewal", "view": "unlocks"}),
    ("paths", {}),
    ("paths", {"view": "ttv", "level": "team"}),
    ("champions", {"level": "account"}),
    ("health", {"level": "account"}),
    ("health", {"level": "account", "view": "factors"}),
    ("signals", {"level": "account"}),
    ("renewals", {"level": "account", "days": 365}),
    ("value", {"level": "account"}),
    ("accounts", {"level": "account"}),
    ("activity", {"level": "account", "grain": "week"}),
    ("reconcile", {"level": "account"}),
    # the touches at the default grain (a rollup row) and a user's day (rule set version 1);
    # a bootstrap over accounts, a data-driven model, a unit kind, ARR values
    ("attribution", {}),
    ("attribution", {"model": "markov", "by": "feature", "outcome": "conversion"}),
    ("attribution", {"model": "u_shaped", "by": "team", "value": "arr", "rules_version": 1}),
    # per account with CUPED, per user (clusters: each user's account), on an outcome
    ("experiments", {"experiment": EXPERIMENT, "metric": "mau"}),
    ("experiments", {"experiment": EXPERIMENT, "metric": "depth", "unit": "user"}),
    ("experiments", {"experiment": EXPERIMENT, "outcome": "renewal", "method": "cr1"}),
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, spark_session):
    root = tmp_path_factory.mktemp("spark_analyses") / "demo"
    generate_demo(root, accounts=8, seed=3)
    ws = accountlens.open(root)
    # attribution's rule sets: a touch per user and day (1), per raw event (2: not on Spark)
    ws.create_attribution_rules({"touch": "user_day"}, name="daily")
    ws.create_attribution_rules({"touch": "event"}, name="every event")
    # the export where `[spark] parquet_dir` (default `parquet`) finds it; by month: a small
    # workspace in day folders is many tiny files, slow on Spark (docs/spark.md)
    ws.export_parquet(root / "parquet", partition="month")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def spark(demo):
    """The demo's export on the tests' one Spark session (tests/conftest.py)."""
    store = demo.engine("spark")
    store.session.sparkContext.setLogLevel("OFF")  # failures are asserted, not logged
    for name in store.manifest["tables"]:
        store.session.catalog.cacheTable(name)
    yield store


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order, times as naive UTC, lists as tuples, missing values as None."""
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if str(values.dtype).startswith("datetime64"):
            values = pd.to_datetime(values, utc=True).dt.tz_localize(None).astype("datetime64[us]")
        frame[column] = [tuple(v) if isinstance(v, list | tuple | np.ndarray) else v for v in values]
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.sort_values(list(frame.columns), key=lambda c: c.map(repr)).reset_index(drop=True)


def _same(duckdb: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert list(spark.columns) == list(duckdb.columns)
    assert len(spark) == len(duckdb)
    left, right = _normalised(duckdb), _normalised(spark)
    for column in left.columns:
        for a, b in zip(left[column], right[column], strict=True):
            if isinstance(a, float) and isinstance(b, float | int):
                assert b == pytest.approx(a, rel=1e-5, abs=1e-9), column
            else:
                assert a == b, (column, a, b)


@pytest.mark.parametrize(("name", "params"), CASES,
                         ids=[f"{n}-{'-'.join(map(str, p.values())) or 'default'}" for n, p in CASES])
def test_analysis_gives_duckdbs_rows_on_spark(demo, spark, name, params) -> None:
    on_duckdb = run_analysis(demo.store, demo.config, name, cached=False, **params)
    on_spark = run_analysis(spark, demo.config, name, cached=False, engine="spark", **params)
    assert on_spark.engine == "spark" and on_duckdb.engine == "duckdb"
    assert on_spark.as_of == on_duckdb.as_of
    assert on_spark.total_rows == on_duckdb.total_rows
    _same(on_duckdb.frame, on_spark.frame)
    assert on_spark.notes == on_duckdb.notes


@pytest.fixture(scope="module")
def planted(tmp_path_factory, spark_session):
    """tests/test_anomalies.py's world with a break, a quiet account, a spike and a stale
    source (the demo has no anomaly), exported, on the one Spark session."""
    from accountlens.store.spark import SparkStore
    from tests.small_workspace import build
    from tests.test_anomalies import ACCOUNTS, generate

    root = tmp_path_factory.mktemp("spark_anomalies")
    ws = build(root, "anomalies", {"accounts": ACCOUNTS},
               generate({"break", "quiet", "spike", "stale"}))
    ws.export_parquet(root / "parquet", partition="month")
    yield ws, SparkStore(root / "parquet", session=spark_session)
    ws.close()


def test_anomalies_finds_duckdbs_findings_on_spark(planted) -> None:
    from tests.test_anomalies import AS_OF

    ws, store = planted
    on_duckdb = run_analysis(ws.store, ws.config, "anomalies", cached=False, as_of=AS_OF)
    on_spark = run_analysis(store, ws.config, "anomalies", cached=False, engine="spark",
                            as_of=AS_OF)
    kinds = {"instrumentation_break", "account_quiet", "spike", "stale_source"}
    assert set(on_duckdb.frame["kind"]) == kinds  # one finding of each kind
    _same(on_duckdb.frame, on_spark.frame)
    assert on_spark.notes == on_duckdb.notes


def test_the_cases_have_rows(demo) -> None:
    """A parity of empty frames would prove nothing: the default case of each analysis has rows."""
    empty = [name for name, params in CASES
             if run_analysis(demo.store, demo.config, name, **params).frame.empty]
    assert empty == []


def test_every_analysis_is_on_spark_or_declared_pending() -> None:
    analyses = load_all()
    on_spark = {name for name, analysis in analyses.items() if "spark" in analysis.engines}
    assert on_spark.isdisjoint(SPARK_PENDING)
    assert on_spark | set(SPARK_PENDING) == set(analyses)
    # each one on Spark is compared above (anomalies on a world with anomalies)
    assert on_spark == {name for name, _ in CASES} | {"anomalies"}
    assert all(len(reason) > 40 for reason in SPARK_PENDING.values())


def test_docs_say_which_analyses_run_on_spark() -> None:
    text = DOCS.read_text()
    ported = re.search(r"## 3\. Run analyses on Spark\n(.*?)\n## ", text, re.S)
    pending = re.search(r"### Not yet on Spark\n(.*?)(\n## |\Z)", text, re.S)
    assert ported and pending, "docs/spark.md needs its analyses sections"
    for name, analysis in load_all().items():
        if "spark" in analysis.engines:
            assert f"`{name}`" in ported.group(1).split("### Not yet on Spark")[0], name
        else:
            assert f"`{name}`" in pending.group(1), name


def test_a_pending_analysis_asked_on_spark_says_why(demo) -> None:
    name = next(iter(SPARK_PENDING))
    with pytest.raises(AnalysisError, match="not yet"):
        demo.analysis(name, engine="spark")


def test_spark_refuses_what_would_collect_raw_events_and_names_the_unknown(demo, spark) -> None:
    """Attribution's `event` grain reads one row per raw event: on Spark it is refused (REST
    409); an unknown experiment is the same NotFound (404) on both engines."""
    from fastapi.testclient import TestClient

    from accountlens.api.app import create_app
    from accountlens.serve.live import LiveWorkspace

    assert len(run_analysis(demo.store, demo.config, "attribution", rules_version=2).frame)
    with pytest.raises(EngineUnavailable, match="raw event.*user_feature_day"):
        run_analysis(spark, demo.config, "attribution", engine="spark", rules_version=2)
    client = TestClient(create_app([LiveWorkspace(workspace=demo, log=None, loader=None)]))
    refused = client.get("/api/v1/analyses/attribution",
                         params={"engine": "spark", "rules_version": 2})
    assert refused.status_code == 409 and "driver" in refused.json()["error"]
    unknown = {}
    for store in (demo.store, spark):
        with pytest.raises(NotFound) as caught:
            run_analysis(store, demo.config, "experiments", engine=store.engine_name,
                         experiment="nope", metric="mau")
        unknown[store.engine_name] = str(caught.value)
    assert unknown["spark"] == unknown["duckdb"] and EXPERIMENT in unknown["duckdb"]


def test_python_cli_and_rest_run_an_analysis_on_spark(demo, spark) -> None:
    from fastapi.testclient import TestClient

    from accountlens.api.app import create_app
    from accountlens.serve.live import LiveWorkspace

    on_duckdb = demo.analysis("handoffs", cached=False)
    on_spark = demo.analysis("handoffs", engine="spark", cached=False)
    assert on_spark.attrs["engine"] == "spark"
    _same(on_duckdb, on_spark)

    runner = CliRunner()
    args = ["champions", "--dir", str(demo.root), "-f", "json"]
    cli_duckdb = runner.invoke(app, args)
    cli_spark = runner.invoke(app, [*args, "--engine", "spark"])
    assert cli_spark.exit_code == 0, cli_spark.output
    rows = [json.loads(out.output[:out.output.rindex("]") + 1]) for out in (cli_duckdb, cli_spark)]
    assert rows[1] == rows[0] != []
    assert cli_spark.output.rstrip().endswith("spark")  # the footer names the engine

    client = TestClient(create_app([LiveWorkspace(workspace=demo, log=None, loader=None)]))
    rest_spark = client.get("/api/v1/analyses/paths", params={"engine": "spark"})
    rest_duckdb = client.get("/api/v1/analyses/paths")
    assert rest_spark.status_code == 200, rest_spark.text
    assert rest_spark.json()["engine"] == "spark"
    assert rest_spark.json()["rows"] == rest_duckdb.json()["rows"] != []


# ---- the translation (store/spark_sql.py), without Spark ----------------------------------------
def test_parameters_become_typed_literals_never_text() -> None:
    import datetime as dt

    from accountlens.store.spark_sql import translate

    sql = translate(
        "SELECT * FROM events WHERE account_id = $account AND name = ? AND note = '?' "
        "AND timestamp >= $start AND day <= $day AND list_contains($finals, name) LIMIT ?",
        {"account": "a' OR '1'='1", "_p0": "x", "start": dt.datetime(2025, 1, 2, 3, tzinfo=dt.UTC),
         "day": dt.date(2025, 1, 2), "finals": [], "_p1": 5}).sql
    assert "'a\\' OR \\'1\\'=\\'1'" in sql  # one string literal, quotes escaped
    assert "CAST('2025-01-02 03:00:00' AS TIMESTAMP)" in sql and "CAST('2025-01-02' AS DATE)" in sql
    assert "ARRAY_CONTAINS(CAST(ARRAY() AS ARRAY<STRING>), name)" in sql
    assert sql.endswith("LIMIT 5") and "note = '?'" in sql
    positional = translate("SELECT ? AS a, '?' AS b, ? AS c", ["x", None]).sql
    assert positional == "SELECT 'x' AS a, '?' AS b, NULL AS c"


def test_statements_spark_cannot_run_are_refused() -> None:
    from accountlens.store.spark_sql import UnsupportedSQL, WriteSQL, translate

    for sql in ("INSERT INTO accounts VALUES ('x')", "CREATE TABLE t AS SELECT 1", "DELETE FROM users"):
        with pytest.raises(WriteSQL):
            translate(sql)
    with pytest.raises(UnsupportedSQL, match="positional"):
        translate("SELECT ? AS a", [])
    temp = translate("CREATE OR REPLACE TEMP TABLE _x AS SELECT 1 AS a")
    assert (temp.kind, temp.name, temp.sql) == ("temp", "_x", "SELECT 1 AS a")
    assert translate("DROP TABLE IF EXISTS _x").kind == "drop"


def test_duckdb_forms_spark_lacks_are_rewritten() -> None:
    from accountlens.store.spark_sql import translate

    sql = translate("SELECT arg_min(role, (timestamp, message_id)) AS r, epoch_us(ts) AS us, "
                    "strftime(ts, '%Y-%m-%dT%H:%M:%SZ') AS at, list(x ORDER BY k) AS xs, "
                    "string_agg(DISTINCT s, ', ' ORDER BY s) AS ss, 1 / 3.0 AS third FROM t").sql
    assert "MIN_BY(role, IF(NOT role IS NULL, STRUCT(timestamp, message_id), NULL))" in sql
    assert "UNIX_MICROS(ts)" in sql
    assert "DATE_FORMAT(ts, 'yyyy-MM-dd\\'T\\'HH:mm:ss\\'Z\\'')" in sql
    assert "TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(k AS k0, x AS v))), item -> item.v)" in sql
    assert "ARRAY_JOIN(ARRAY_SORT(COLLECT_SET(s)), ', ')" in sql
    assert "CAST(3.0 AS DOUBLE)" in sql
