"""The outcome layer (issue 17) against the account metrics table of the same workspace: the
health table ≤ 2×, scoring every account (predict) ≤ 3×, a 4-cut-off backtest ≤ 20×."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accountlens.workspace import Workspace
from benchmarks.measure import forget_analysis_results, in_child
from benchmarks.metrics import analyses_against_table, table_metrics
from benchmarks.registry import Context, Row, Target, benchmark
from benchmarks.workspace import bench_workspace

CONTENDERS = (  # (key, label, analysis, params, target ratio)
    ("health", "health table (every account)", "health", {}, 2.0),
    ("predict", "churn prediction for every account (trained as of the day)", "predict",
     {"outcome": "churn"}, 3.0),
    ("backtest", "4-cut-off churn backtest", "backtest", {"outcome": "churn"}, 20.0),
)


def _forget() -> None:
    """Drop the kept results (analyses, features, models) so each run computes from the store;
    the compiled-SQL caches stay warm, as they do for the metrics table."""
    from accountlens.analysis import features, predict

    forget_analysis_results()
    features._CACHE.clear()
    for cache in getattr(predict, "CACHES", ()):
        cache.clear()


def run_outcomes(path: Path, repeats: int) -> dict[str, Any]:
    ws = Workspace.open(path)
    try:
        seconds, results = analyses_against_table(
            ws, {key: (name, params) for key, _label, name, params, _target in CONTENDERS},
            repeats, _forget)
        notes = {key: f"{len(result.frame):,} rows" + (
            f"; {result.notes[0]}" if result.notes else "") for key, result in results.items()}
        return {"seconds": seconds, "notes": notes,
                "metrics": len(table_metrics(ws.config.analysis.model))}
    finally:
        ws.close()


@benchmark("outcomes", "Health, prediction and backtest vs the account metrics table", order=65,
           requires=("workspace",))
def outcomes_benchmark(ctx: Context) -> list[Row]:
    """On the analytics workspace (one outcome per account in the last 150 days: renewal for two
    thirds, churn otherwise, not driven by behaviour — the figures here are speed, not model
    quality; the tests measure that), in one fresh process: the full account metrics table as in
    the analyses benchmark, then the health table (every account's score, factors, trend: the
    features as of the day and 30 days before), churn prediction for every account (labels at up
    to 12 training cut-offs, the rolling-origin backtest that chooses the model, training,
    scoring, drivers, survival) and the 4-cut-off churn backtest on its own. Each is timed with
    the kept results (analyses, features, models) dropped before every run, compiled SQL kept
    warm as for the table; best of two runs (one in quick mode). Peak memory is the process's
    peak RSS (Linux `VmHWM`)."""
    bw = bench_workspace(ctx)
    out, rss = in_child(run_outcomes, bw.path, 1 if ctx.quick else 2)
    seconds, notes = out["seconds"], out["notes"]
    rows = [Row("outcomes.metrics_table", f"account metrics table ({out['metrics']} metrics)",
                seconds["table"], "s")]
    for key, label, _name, _params, target in CONTENDERS:
        rows.append(Row(f"outcomes.{key}", label, seconds[key], "s",
                        baseline="outcomes.metrics_table", target=Target("<=", target),
                        note=notes[key]))
    rows.append(Row("outcomes.rss", "peak RSS of that process", rss / 1e6, "MB"))
    return rows
