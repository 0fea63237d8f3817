"""The Spark engine on real Spark in local[2] mode (STYLE 7): the Parquet export, and every
registered metric, at a level of each kind it supports, giving the same answer on DuckDB and on
Spark."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import subprocess
import sys
import time
import typing
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from accountlens.cli.main import app
from accountlens.metrics.registry import MetricRequest, available_levels, load_all, run
from accountlens.results import Result
from accountlens.store.base import StoreError, WritableStore
from tests.test_metrics_contract import AS_OF, generated  # noqa: F401 - the contract's workspace

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="the Spark engine needs Java 17+ on PATH (java not found)")

@pytest.fixture(scope="module")
def export(generated, tmp_path_factory):
    target = tmp_path_factory.mktemp("spark") / "parquet"
    return target, generated.export_parquet(target)


@pytest.fixture(scope="module")
def spark(export, spark_session):
    """A Spark store reading the export, on the tests' one Spark session (tests/conftest.py)."""
    from accountlens.store.spark import SparkStore

    store = SparkStore(export[0], session=spark_session)
    for name in store.manifest["tables"]:
        store.session.catalog.cacheTable(name)
    yield store
    store.close()


# ---- the export --------------------------------------------------------------------------------
def test_export_has_every_table_with_the_stores_row_counts(generated, export, spark) -> None:
    target, manifest = export
    assert set(manifest["tables"]) == {"accounts", "org_units", "users", "memberships",
                                       "subscriptions", "outcomes", "events", "daily_activity",
                                       "account_firsts", "account_user_firsts", "account_days",
                                       "referral_invites",
                                       "referral_invites_source", "account_traits_history",
                                       "subscription_sources", "attribution_rule_versions",
                                       "attribution_rule_changes", "experiments",
                                       "experiment_assignments", "experiment_exposures"}
    for name, entry in manifest["tables"].items():
        stored = generated.store.scalar(f"SELECT count(*) FROM {name}")
        read_back = duckdb.sql("SELECT count(*) FROM read_parquet(?, hive_partitioning = true)",
                               params=[str(target / entry["path"]) + ("/*/*.parquet" if name == "events" else "")]
                               ).fetchall()[0][0]
        assert entry["rows"] == stored == read_back == spark.scalar(f"SELECT count(*) FROM {name}")
        # (no trait changes, per-source subscriptions, rule sets or experiments were made here:
        # those may be empty)
        assert stored > 0 or name in ("account_traits_history", "subscription_sources") or (
            name.startswith(("attribution_rule_", "experiment")))


def test_events_are_partitioned_by_utc_day(generated, export) -> None:
    target, _ = export
    days = {r["d"].isoformat() for r in generated.store.arrow(
        "SELECT DISTINCT CAST(timestamp AS DATE) AS d FROM events").to_pylist()}
    folders = {p.name.removeprefix("event_date=") for p in (target / "events").iterdir()}
    assert folders == days
    one = next((target / "events").iterdir())
    rows = duckdb.sql("SELECT DISTINCT CAST(timestamp AS DATE)::VARCHAR FROM read_parquet(?)",
                      params=[str(one / "*.parquet")]).fetchall()
    assert rows == [(one.name.removeprefix("event_date="),)]


def test_export_by_month_and_refusals(generated, tmp_path) -> None:
    manifest = generated.export_parquet(tmp_path / "m", partition="month")
    assert manifest["events_partitioned_by"] == {"granularity": "month", "column": "event_month"}
    months = generated.store.arrow("SELECT DISTINCT strftime(timestamp, '%Y-%m') AS m FROM events")
    assert sorted(p.name for p in (tmp_path / "m" / "events").iterdir()) == sorted(
        f"event_month={m}" for m in months.column("m").to_pylist())
    with pytest.raises(StoreError, match="--overwrite"):
        generated.export_parquet(tmp_path / "m")
    assert generated.export_parquet(tmp_path / "m", overwrite=True)["tables"]["events"]["rows"] > 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        generated.export_parquet(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_spark_store_is_read_only_with_a_clear_error(spark, tmp_path) -> None:
    with pytest.raises(StoreError, match="read-only.*DuckDB"):
        spark.execute("INSERT INTO accounts (account_id) VALUES ('x')")
    assert not isinstance(spark, WritableStore)  # no transactions, migrations or exports
    with pytest.raises(StoreError, match="not an accountlens Parquet export"):
        type(spark)(tmp_path)


# ---- every metric on both engines --------------------------------------------------------------
def _param_variants(metric) -> list[dict]:
    """The default parameters, and each other value of every choice parameter."""
    variants = [{}]
    for name, field in metric.params.model_fields.items():
        if typing.get_origin(field.annotation) is typing.Literal:
            variants += [{name: v} for v in typing.get_args(field.annotation) if v != field.default]
    return variants


# Levels that go through different code: each entity mapping (user, account, role, unit, a unit
# kind, a stored and a computed account slice, the whole workspace). The other unit kinds and
# slices share these paths; the DuckDB contract test covers them. The funnel's plan takes Spark
# ~25 s to optimize whatever the data, so it runs at the account level only (the other metrics
# run each level's mapping on Spark).
LEVELS = ("user", "account", "role", "unit", "department", "industry", "deployment_scale", "all")
SLOW_PLANS = {"funnel": ("account",)}


def _cases(model: str) -> list[tuple[str, str, dict]]:
    """Every metric at the account level with each of its parameter variants, and at every
    other level it has for every other metric (alternating, so each level still runs about
    half the metrics; a metric without an account level runs at least at its first level):
    each metric's SQL and each level's mapping run on Spark at about half the cost of the full
    cross product (the DuckDB contract test runs that)."""
    cases = []
    for i, metric in enumerate(load_all().values()):
        levels = [lv for lv in available_levels(metric, model)
                  if lv in SLOW_PLANS.get(metric.name, LEVELS)]
        for j, level in enumerate(levels):
            if level == "account":
                cases += [(metric.name, level, params) for params in _param_variants(metric)]
            elif (i + j) % 2 == 0 or ("account" not in levels and j == 0):
                cases.append((metric.name, level, {}))
    return cases


def _value(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, float):
        return round(value, 9)
    return value


def _rows(frame: pd.DataFrame) -> list[tuple]:
    rows = [tuple(_value(v) for v in row) for row in frame.itertuples(index=False)]
    return sorted(rows, key=lambda r: [(v is None, str(v)) for v in r])


def _same(a, b) -> bool:
    """The same rows (DataFrames, or Results: as of the same day, at the same level)."""
    if isinstance(a, Result) or isinstance(b, Result):
        if (a.as_of, a.level) != (b.as_of, b.level) or {a.engine, b.engine} != {"duckdb", "spark"}:
            return False
        a, b = a.frame, b.frame
    if list(a.columns) != list(b.columns) or list(a.dtypes) != list(b.dtypes) or len(a) != len(b):
        return False
    for x, y in zip(_rows(a), _rows(b)):
        for u, v in zip(x, y):
            floats = isinstance(u, float) and isinstance(v, float)
            if not (math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9) if floats else u == v):
                return False
    return True


@pytest.mark.timeout(900)
def test_every_metric_at_every_level_agrees_on_duckdb_and_spark(generated, spark) -> None:
    cfg = generated.config
    cases = _cases(cfg.analysis.model)
    assert len(cases) > 60  # 24+ metrics × parameter variants, half of them × other levels
    assert {level for _, level, _ in cases} == set(LEVELS)
    assert {name for name, _, _ in cases} == set(load_all())  # every metric

    def both(case):
        name, level, params = case
        request = MetricRequest(name=name, level=level, as_of=AS_OF, params=params)
        return (run(generated.store, cfg.metrics, cfg.analysis, request),
                run(spark, cfg.metrics, cfg.analysis, request))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:  # Spark plans one query while running another
        results = list(pool.map(both, cases))
    differ = [case for case, (a, b) in zip(cases, results) if not _same(a, b)]
    assert not differ, f"{len(differ)} of {len(cases)} differ, e.g. {differ[:5]}"
    assert sum(len(a.frame) for a, _ in results) > 1000  # not agreeing on nothing
    print(f"{len(cases)} metric × level × parameter cases agree "
          f"({time.monotonic() - started:.0f} s)")


def test_default_as_of_and_explain_use_the_engine(generated, spark) -> None:
    cfg = generated.config
    request = MetricRequest(name="mau", level="account")
    assert _same(run(generated.store, cfg.metrics, cfg.analysis, request),
                 run(spark, cfg.metrics, cfg.analysis, request))
    from accountlens.metrics.registry import explain

    info = explain(spark, cfg.metrics, cfg.analysis, MetricRequest(name="referrals", level="account"))
    assert "`referral_invites`" in info["sql"] and "`account_firsts`" in info["sql"]
    # an export without stored invites reads the invitee e-mail from the JSON properties
    from accountlens.model import rollup

    inline = rollup.invites_expression(rollup.table("events"), "User Invited", "invitee_email")
    assert "try_variant_get" in spark.compile(inline).lower()


def test_a_metrics_table_on_spark_is_duckdbs_built_from_one_query_per_metric(generated, spark):
    """Spark runs each column's metric as its own query and joins their per-entity rows
    (`SparkStore.table_in_parts`; as one query, 1M events ran out of execution memory): the
    table is DuckDB's one-query table, and no part stays registered."""
    from accountlens.metrics.table import columnable, run_table

    cfg = generated.config
    names = [m.name for m in load_all().values()
             if columnable(m) and "account" in available_levels(m, cfg.analysis.model)]
    assert len(names) > 10
    # one level: each metric at every level is compared above, this is the table's assembly
    on_spark = run_table(spark, cfg.metrics, cfg.analysis, names, "account", AS_OF)
    on_duckdb = run_table(generated.store, cfg.metrics, cfg.analysis, names, "account", AS_OF)
    assert _same(on_spark, on_duckdb) and len(on_duckdb.frame) > 0
    assert on_spark.notes == on_duckdb.notes
    assert not [t.name for t in spark.session.catalog.listTables()
                if t.name.startswith("_metrics_table_part_")]


# ---- interfaces --------------------------------------------------------------------------------
def test_cli_export_then_metrics_on_spark(generated, spark, tmp_path) -> None:
    runner = CliRunner()
    root = str(generated.root)
    out = runner.invoke(app, ["export", "parquet", str(tmp_path / "p"), "--dir", root, "-f", "json"])
    assert out.exit_code == 0, out.output
    assert {r["table"] for r in json.loads(out.stdout)} >= {"events", "daily_activity"}
    args = ["metrics", "seat_utilization", "--level", "industry", "--as-of", str(AS_OF),
            "-f", "json", "--dir", root]
    on_duckdb = runner.invoke(app, args)
    assert on_duckdb.exit_code == 0, on_duckdb.output
    on_spark = runner.invoke(app, [*args, "--engine", "spark", "--parquet", str(tmp_path / "p")])
    assert on_spark.exit_code == 0, on_spark.output
    assert json.loads(on_spark.stdout) == json.loads(on_duckdb.stdout) != []
    assert on_spark.stderr.startswith(f"seat_utilization · level industry · as of {AS_OF} · spark")
    wrong = runner.invoke(app, [*args, "--engine", "presto"])
    assert wrong.exit_code == 1 and "unknown engine 'presto'" in wrong.output


def test_python_api_engine_argument(generated, spark, export) -> None:
    frame = generated.metric("dau", level="role", as_of=AS_OF, engine="spark", parquet=str(export[0]))
    assert _same(frame, generated.metric("dau", level="role", as_of=AS_OF))


def test_rest_engine_parameter(generated, spark, export) -> None:
    from fastapi.testclient import TestClient

    from accountlens.api.app import create_app
    from accountlens.serve.live import LiveWorkspace

    generated.config.spark.parquet_dir = str(export[0])
    client = TestClient(create_app([LiveWorkspace(workspace=generated, log=None, loader=None)]))
    query = {"level": "industry", "as_of": str(AS_OF)}
    on_spark = client.get("/api/v1/metrics/seat_utilization", params={**query, "engine": "spark"})
    on_duckdb = client.get("/api/v1/metrics/seat_utilization", params=query)
    assert on_spark.status_code == 200, on_spark.text
    assert on_spark.json()["engine"] == "spark" and on_duckdb.json()["engine"] == "duckdb"
    assert on_spark.json()["rows"] == on_duckdb.json()["rows"] != []


def test_cli_help_does_not_import_spark() -> None:
    code = "import sys, accountlens.cli.main; sys.exit('pyspark' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_as_of_before_any_data(generated, spark) -> None:
    cfg = generated.config
    request = MetricRequest(name="active_accounts", level="region", as_of=dt.date(2020, 1, 1))
    assert _same(run(generated.store, cfg.metrics, cfg.analysis, request),
                 run(spark, cfg.metrics, cfg.analysis, request))


def test_a_csm_book_on_spark_is_the_book_on_duckdb(generated, spark, export) -> None:
    """Row-level scope on Spark (docs/governance.md): the export's views bind the book's rows
    only, so every level's rows and aggregates equal the DuckDB book's, and the unscoped
    store, used again, sees everything."""
    from accountlens.governance.tokens import Principal

    accounts = sorted(r["account_id"] for r in generated.store.rows("SELECT account_id FROM accounts"))
    book = generated.acting_as(Principal("token:t", "csm", accounts=tuple(accounts[:2])), "test")
    for name, level in (("seat_utilization", "account"), ("mau", "industry"), ("dau", "role")):
        on_spark = book.metric(name, level=level, as_of=AS_OF, engine="spark", parquet=str(export[0]))
        on_duckdb = book.metric(name, level=level, as_of=AS_OF)
        assert _same(on_spark, on_duckdb), name
        everything = generated.metric(name, level=level, as_of=AS_OF)
        assert not _same(on_duckdb, everything), name  # the book is smaller than the workspace
    rows = book.metric("seat_utilization", level="account", as_of=AS_OF, engine="spark",
                       parquet=str(export[0]))
    assert set(rows.account_id) <= set(accounts[:2]) | {
        r["account_id"] for r in generated.store.rows(
            "SELECT account_id FROM accounts WHERE list_contains(?, parent_account_id)", [accounts[:2]])}
    unscoped = generated.metric("seat_utilization", level="account", as_of=AS_OF, engine="spark",
                                parquet=str(export[0]))
    assert _same(unscoped, generated.metric("seat_utilization", level="account", as_of=AS_OF))
