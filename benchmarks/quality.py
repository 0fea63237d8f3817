"""Data quality (issue 20) against the account metrics table of the same workspace: anomaly
detection ≤ 2× the table; reconciliation reported beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accountlens.workspace import Workspace
from benchmarks.measure import forget_analysis_results, in_child
from benchmarks.metrics import analyses_against_table, table_metrics
from benchmarks.registry import Context, Row, Target, benchmark
from benchmarks.workspace import bench_workspace


def run_quality(path: Path, repeats: int) -> dict[str, Any]:
    ws = Workspace.open(path)
    try:
        seconds, results = analyses_against_table(
            ws, {name: (name, {}) for name in ("anomalies", "reconcile")}, repeats, forget_analysis_results)
        notes = {}
        for name, result in results.items():
            counts = result.frame.iloc[:, 0].value_counts().to_dict() if len(result.frame) else {}
            notes[name] = f"{len(result.frame):,} findings" + (
                f" ({', '.join(f'{k}: {v}' for k, v in counts.items())})" if counts else "")
        return {"seconds": seconds, "notes": notes,
                "metrics": len(table_metrics(ws.config.analysis.model))}
    finally:
        ws.close()


@benchmark("quality", "Anomalies and reconciliation vs the account metrics table", order=66,
           requires=("workspace",))
def quality_benchmark(ctx: Context) -> list[Row]:
    """On the analytics workspace, in one fresh process: the full account metrics table as in
    the analyses benchmark, then anomaly detection as of the default day (daily counts per
    account, event name and library from the raw events' `context` over 9 weeks, the
    same-weekday medians of every series, the per-account breakdown of candidates) and the
    reconciliation checks. Kept analysis results are dropped before every run; best of two runs
    (one in quick mode). Peak memory is the process's peak RSS (Linux `VmHWM`)."""
    bw = bench_workspace(ctx)
    out, rss = in_child(run_quality, bw.path, 1 if ctx.quick else 2)
    seconds, notes = out["seconds"], out["notes"]
    return [
        Row("quality.metrics_table", f"account metrics table ({out['metrics']} metrics)",
            seconds["table"], "s"),
        Row("quality.anomalies", "anomaly detection (every series, as of the default day)",
            seconds["anomalies"], "s", baseline="quality.metrics_table",
            target=Target("<=", 2.0), note=notes["anomalies"]),
        Row("quality.reconcile", "reconciliation (every check)", seconds["reconcile"], "s",
            baseline="quality.metrics_table", note=notes["reconcile"]),
        Row("quality.rss", "peak RSS of that process", rss / 1e6, "MB"),
    ]
