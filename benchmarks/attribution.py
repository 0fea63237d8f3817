"""Outcome attribution and account-level experiments (issue 21) against the account metrics
table of the same workspace: every heuristic model ≤ 2× the table, Markov ≤ 5×, a 1,000-resample
bootstrap ≤ 30 s, and an experiment analysis over every account ≤ 2 s."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from accountlens.analysis.credit_models import DATA_DRIVEN_MODELS, HEURISTIC_MODELS
from accountlens.workspace import Workspace
from benchmarks.measure import best_of, forget_analysis_results, in_child
from benchmarks.metrics import analyses_against_table, table_metrics
from benchmarks.registry import Context, Row, Target, benchmark
from benchmarks.workspace import bench_workspace

EXPERIMENT = "bench-onboarding"


def _exposures(ws: Workspace, folder: Path) -> int:
    """Every account exposed to one of two variants (split by account number), on the day of
    its first event; imported as a CSV like users import theirs."""
    path = folder / "exposures.csv"
    ws.store.execute(f"""
        COPY (SELECT account_id, '{EXPERIMENT}' AS experiment,
                     CASE WHEN hash(account_id) % 2 = 0 THEN 'control' ELSE 'treatment' END AS variant,
                     first_at AS exposed_at
              FROM account_firsts WHERE account_id IS NOT NULL) TO '{path}' (HEADER)""")
    ws.import_entities("exposures", path)
    return int(ws.store.rows(f"SELECT count(DISTINCT account_id) AS n FROM experiment_exposures "
                             f"WHERE experiment = '{EXPERIMENT}'")[0]["n"])


def run_attribution(path: Path, repeats: int) -> dict[str, Any]:
    ws = Workspace.open(path)
    try:
        analyses = {model: ("attribution", {"model": model, "by": "role", "resamples": 0})
                    for model in (*HEURISTIC_MODELS, *DATA_DRIVEN_MODELS)}
        analyses["bootstrap_linear"] = ("attribution", {"model": "linear", "resamples": 1000})
        analyses["bootstrap_markov"] = ("attribution", {"model": "markov", "resamples": 1000})
        seconds, results = analyses_against_table(ws, analyses, repeats, forget_analysis_results)
        notes = {key: result.notes[0] if result.notes else "" for key, result in results.items()}
        started = time.perf_counter()
        accounts = _exposures(ws, path.parent)
        seconds["import_exposures"] = time.perf_counter() - started
        for key, params in {"experiment_metric": {"metric": "depth"},
                            "experiment_outcome": {"outcome": "renewal"}}.items():
            ws.analysis("experiments", experiment=EXPERIMENT, **params)  # warm up

            def once(p: dict[str, Any] = params) -> Any:
                forget_analysis_results()
                return ws.analysis_result("experiments", experiment=EXPERIMENT, **p)

            seconds[key], result = best_of(once, repeats)
            notes[key] = f"{accounts:,} accounts; " + "; ".join(result.notes[:2])
        return {"seconds": seconds, "notes": notes, "metrics": len(table_metrics(ws.config.analysis.model))}
    finally:
        ws.close()


@benchmark("attribution", "Outcome attribution and experiments vs the account metrics table",
           order=67, requires=("workspace",))
def attribution_benchmark(ctx: Context) -> list[Row]:
    """On the analytics workspace (one outcome per account: renewals and churns), in one fresh
    process: the full account metrics table, then outcome attribution of the renewals by role
    under each model without intervals (the touches read from the events, user-feature-day
    grain, 365-day lookback), then linear and Markov credit with 1,000 bootstrap resamples of the
    accounts. Then every account is exposed to one of two variants (a CSV import into the
    workspace) and the experiment is analysed on a metric (depth, with CUPED on its pre-period
    value) and on an outcome (renewal). Kept results are dropped before every run; best of two
    runs (one in quick mode). Peak memory is the process's peak RSS (Linux `VmHWM`)."""
    bw = bench_workspace(ctx)
    out, rss = in_child(run_attribution, bw.path, 1 if ctx.quick else 2)
    seconds, notes = out["seconds"], out["notes"]
    rows = [Row("attribution.metrics_table", f"account metrics table ({out['metrics']} metrics)",
                seconds["table"], "s")]
    for model in HEURISTIC_MODELS:
        rows.append(Row(f"attribution.{model}", f"attribution of renewals by role, {model}",
                        seconds[model], "s", baseline="attribution.metrics_table",
                        target=Target("<=", 2.0), note=notes[model] if model == "linear" else ""))
    rows += [
        Row("attribution.markov", "attribution of renewals by role, markov (order 1)",
            seconds["markov"], "s", baseline="attribution.metrics_table", target=Target("<=", 5.0)),
        Row("attribution.shapley", "attribution of renewals by role, shapley (exact)",
            seconds["shapley"], "s", baseline="attribution.metrics_table"),
        Row("attribution.bootstrap_linear", "linear credit with 1,000 bootstrap resamples of accounts",
            seconds["bootstrap_linear"], "s", target=Target("<=", 30.0, on="value")),
        Row("attribution.bootstrap_markov", "Markov credit with 1,000 bootstrap resamples of accounts",
            seconds["bootstrap_markov"], "s", target=Target("<=", 30.0, on="value")),
        Row("attribution.import_exposures", "importing one exposure per account (CSV)",
            seconds["import_exposures"], "s"),
        Row("attribution.experiment_metric", "experiment analysis on a metric (depth, CUPED)",
            seconds["experiment_metric"], "s", target=Target("<=", 2.0, on="value"),
            note=notes["experiment_metric"]),
        Row("attribution.experiment_outcome", "experiment analysis on an outcome (renewal)",
            seconds["experiment_outcome"], "s", target=Target("<=", 2.0, on="value"),
            note=notes["experiment_outcome"]),
        Row("attribution.rss", "peak RSS of that process", rss / 1e6, "MB"),
    ]
    return rows
