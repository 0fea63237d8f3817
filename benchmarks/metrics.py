"""Issue 3's speed benchmark: the account metrics table and the account-level AARRR funnel, against
one hand-written DuckDB SQL query and against pandas, with the numbers checked equal."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import pandas as pd

from accountlens.metrics.registry import available_levels, load_all
from accountlens.metrics.table import columnable
from accountlens.workspace import Workspace
from benchmarks import account_pandas, account_sql
from benchmarks.measure import best_of, in_child, timed
from benchmarks.registry import Context, Row, Target, benchmark
from benchmarks.workspace import bench_workspace


def table_metrics(model: str) -> list[str]:
    """Registered metrics offered at account level under `model` that can be table columns
    (one row per account, default params) — what `--wide` and the REST table accept."""
    return [metric.name for metric in load_all().values()
            if "account" in available_levels(metric, model) and columnable(metric)]


def by_account(frame: pd.DataFrame) -> pd.DataFrame:
    """An accountlens account-level frame indexed as the baselines are (`account`), without
    the names accountlens puts next to the ids."""
    return frame.drop(columns=["account_name"], errors="ignore").set_index("account_id") \
        .rename_axis("account")


def wide_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per account, one column per figure; a figure reported by several metrics
    (e.g. `mau`) must agree between them."""
    table: pd.DataFrame | None = None
    for name, frame in frames.items():
        frame = by_account(frame)
        if table is None:
            table = frame
            continue
        for column in frame.columns.intersection(table.columns):
            _assert_same(table[column], frame[column].reindex(table.index), f"{name}.{column}")
        table = table.join(frame[frame.columns.difference(table.columns)], how="left")
    return table.sort_index()


def account_table(ws: Workspace, metrics: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """The account metrics table of `metrics` as separate queries, one per metric, joined."""
    return wide_table({m: ws.metric(m, level="account") for m in metrics})


def analyses_against_table(ws: Workspace, analyses: dict[str, tuple[str, dict[str, Any]]],
                           repeats: int, forget: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """Seconds of the full account metrics table (key "table") and of each analysis
    (`{key: (name, params)}`, as `analysis_result` with every row), all warm; `forget()` drops
    the kept results before every timed analysis run. Also the last result of each."""
    metrics = table_metrics(ws.config.analysis.model)
    account_table(ws, metrics)  # warm the rollup and the Ibis compiler once
    seconds: dict[str, float] = {}
    seconds["table"], _ = best_of(lambda: account_table(ws, metrics), repeats)
    results: dict[str, Any] = {}
    for key, (name, params) in analyses.items():
        ws.analysis(name, **params)  # warm up (imports such as scikit-learn)

        def once(n: str = name, p: dict[str, Any] = params) -> Any:
            forget()
            return ws.analysis_result(n, limit=100_000, **p)

        seconds[key], results[key] = best_of(once, repeats)
    return seconds, results


def one_query_table(ws: Workspace, metrics: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """The account metrics table as users get it from `--wide`, REST or `ws.metrics_table`:
    one query."""
    return by_account(ws.metrics_table(list(metrics), level="account")).sort_index()


def _same_value(a: Any, b: Any) -> bool:
    missing_a, missing_b = pd.isna(a), pd.isna(b)
    if missing_a or missing_b:
        return bool(missing_a and missing_b)
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return str(a) == str(b)


def _assert_same(expected: pd.Series, actual: pd.Series, label: str) -> None:
    diffs = [key for key, a, b in zip(expected.index, expected, actual) if not _same_value(a, b)]
    if diffs:
        key = diffs[0]
        raise AssertionError(f"{label} differs for {len(diffs)} rows, e.g. {key}: "
                             f"accountlens {expected[key]!r} vs {actual[key]!r}")


def assert_equal_tables(expected: pd.DataFrame, actual: pd.DataFrame, who: str) -> None:
    """Every value of `expected` (accountlens) equals `actual` (a baseline), same rows."""
    actual = actual.set_index(expected.index.name) if expected.index.name in actual else actual
    missing = expected.index.difference(actual.index).union(actual.index.difference(expected.index))
    if len(missing):
        raise AssertionError(f"{who}: rows differ, e.g. {list(missing[:3])}")
    actual = actual.reindex(expected.index)
    for column in expected.columns:
        if column not in actual:
            raise AssertionError(f"{who} has no column {column!r}")
        _assert_same(expected[column], actual[column], f"{who} {column}")


# --- contenders, each run in a fresh child process ----------------------------------------------
def run_accountlens(path: Path, metrics: list[str], repeats: int,
                    analyses: tuple[tuple[str, dict], ...] = ()) -> dict[str, Any]:
    """Warm best-of-`repeats` times of the table, the funnel and each of `analyses`."""
    with Workspace.open(path, read_only=True) as ws:
        def table() -> pd.DataFrame:
            return one_query_table(ws, metrics)

        def separate() -> pd.DataFrame:
            return account_table(ws, metrics)

        def funnel() -> pd.DataFrame:
            return ws.metric("funnel", level="account")

        table(), separate(), funnel()  # warm: imports, the Ibis compiler, DuckDB's caches
        table_s, result = best_of(table, repeats)
        separate_s, separate_result = best_of(separate, repeats)
        assert_equal_tables(separate_result, result, "the one-query table")
        funnel_s, funnel_result = best_of(funnel, repeats)
        out = {"table_s": table_s, "separate_s": separate_s, "funnel_s": funnel_s,
               "table": result, "funnel": funnel_result}
        for name, params in analyses:
            ws.analysis(name, **params)  # warm, as the metrics were
            out[analysis_label(name, params)] = best_of(
                lambda n=name, p=params: ws.analysis(n, cached=False, **p), repeats)[0]
    return out


def analysis_label(name: str, params: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in params.items())


def run_sql(path: Path, repeats: int) -> dict[str, Any]:
    with Workspace.open(path, read_only=True) as ws:
        settings = ws.config.metrics

        def table() -> pd.DataFrame:
            return ws.store.arrow(account_sql.TABLE_SQL, account_sql.params(settings)).to_pandas()

        def funnel() -> pd.DataFrame:
            return ws.store.arrow(account_sql.FUNNEL_SQL,
                                  account_sql.funnel_params(settings)).to_pandas()

        table(), funnel()
        table_s, result = best_of(table, repeats)
        funnel_s, funnel_result = best_of(funnel, repeats)
    return {"table_s": table_s, "funnel_s": funnel_s, "table": result.set_index("account"),
            "funnel": funnel_result}


def run_pandas(path: Path, repeats: int) -> dict[str, Any]:
    with Workspace.open(path, read_only=True) as ws:
        settings = ws.config.metrics
        load_s, tables = timed(lambda: account_pandas.load(ws.store, settings))
    table_s, result = best_of(lambda: account_pandas.account_table(tables, settings), repeats)
    funnel_s, funnel_result = best_of(lambda: account_pandas.funnel(tables, settings), repeats)
    return {"load_s": load_s, "table_s": table_s, "funnel_s": funnel_s, "table": result,
            "funnel": funnel_result}


@benchmark("metrics", "Account metrics table and AARRR funnel vs SQL and pandas", order=55,
           requires=("workspace",))
def metrics_benchmark(ctx: Context) -> list[Row]:
    """On the analytics workspace, accountlens computes the account metrics table — every
    registered metric offered at account level that runs without params and gives one row per
    account, side by side as one query (`ws.metrics_table(names, level="account")`, what
    `accountlens metrics NAME... --wide` and `GET /api/v1/metrics/table` run; the same table
    from one query per metric, `ws.metric(name, level="account")` joined, is reported next to
    it and asserted equal) — and the AARRR funnel
    at account level (`ws.metric("funnel", level="account")`), reading its daily rollup.
    Baseline (a): one hand-written DuckDB SQL query for the table and one for the funnel, run
    on the workspace's own connection, reading the raw tables (events, accounts, users,
    memberships, subscriptions; the funnel's stage moments are exact event times there, as in
    the engine, which reads its rollup and looks up in raw events only the days where a stage's
    moment falls inside a day). Baseline (b): the same computations in pandas
    over DataFrames of those raw tables (event strings as categoricals; the invitee e-mail
    extracted from the JSON properties while loading); loading them is reported on its own.
    Before any figure is reported the benchmark asserts that the SQL and pandas results equal
    accountlens's, value by value for every account and funnel stage. Each contender runs in
    its own fresh process: time is the best of several warm runs (pandas: after loading), and
    peak memory is that process's peak RSS (Linux `VmHWM`), interpreter and DuckDB's buffers
    included."""
    bw = bench_workspace(ctx)
    with Workspace.open(bw.path, read_only=True) as ws:
        metrics = table_metrics(ws.config.analysis.model)
    repeats = 1 if ctx.quick else 3
    ctx.log(f"metrics: accountlens ({len(metrics)} metrics + funnel)")
    al, al_rss = in_child(run_accountlens, bw.path, metrics, repeats)
    ctx.log("metrics: hand-written SQL")
    sql, sql_rss = in_child(run_sql, bw.path, repeats)
    ctx.log("metrics: pandas")
    pdx, pd_rss = in_child(run_pandas, bw.path, 1 if ctx.quick else 2)
    for who, result in (("SQL", sql), ("pandas", pdx)):
        assert_equal_tables(al["table"], result["table"], f"{who} metrics table")
        assert_equal_tables(al["funnel"].set_index("stage"), result["funnel"].set_index("stage"),
                            f"{who} funnel")
    n_accounts, n_columns = al["table"].shape
    checked = f"values equal accountlens's for all {n_accounts:,} accounts × {n_columns} columns"
    return [
        Row("metrics.table", f"accountlens: account metrics table ({len(metrics)} metrics)",
            al["table_s"], "s", baseline="metrics.table_sql", target=Target("<=", 1.5),
            note=", ".join(metrics)),
        Row("metrics.table_separate", "  accountlens: the same table as one query per metric",
            al["separate_s"], "s", baseline="metrics.table_sql",
            note="values equal the one-query table's"),
        Row("metrics.table_sql", "  baseline (a): hand-written DuckDB SQL, one query",
            sql["table_s"], "s", note=checked),
        Row("metrics.table_pandas", "  baseline (b): pandas (ratio = accountlens's speed-up)",
            pdx["table_s"], "s", baseline="metrics.table", target=Target(">=", 10.0),
            note=checked),
        Row("metrics.funnel", "accountlens: AARRR funnel at account level", al["funnel_s"], "s",
            baseline="metrics.funnel_sql", target=Target("<=", 1.5),
            note=" → ".join(f"{s} {r:,}" for s, r in zip(al["funnel"]["stage"],
                                                        al["funnel"]["reached"]))),
        Row("metrics.funnel_sql", "  baseline (a): hand-written DuckDB SQL, one query",
            sql["funnel_s"], "s", note="reached, conversion and median days equal accountlens's"),
        Row("metrics.funnel_pandas", "  baseline (b): pandas (ratio = accountlens's speed-up)",
            pdx["funnel_s"], "s", baseline="metrics.funnel", target=Target(">=", 10.0),
            note="reached, conversion and median days equal accountlens's"),
        Row("metrics.pandas_load", "pandas: loading the raw tables into DataFrames",
            pdx["load_s"], "s", note="not included in the pandas times above"),
        Row("metrics.rss_accountlens", "peak RSS: accountlens process", al_rss / 1e6, "MB"),
        Row("metrics.rss_sql", "peak RSS: SQL process", sql_rss / 1e6, "MB"),
        Row("metrics.rss_pandas", "peak RSS: pandas process (with its DataFrames)",
            pd_rss / 1e6, "MB"),
    ]
