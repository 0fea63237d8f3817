"""Row-level enforcement (issue 19): the account metrics table and each multi-user analysis as
a `csm` whose book is every account, against the same as an admin: ≤ 10% more time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accountlens.governance.tokens import Principal
from accountlens.workspace import Workspace
from benchmarks.analyses import ANALYSES
from benchmarks.measure import best_of, in_child
from benchmarks.metrics import account_table, analysis_label, table_metrics
from benchmarks.registry import Context, Row, Target, benchmark
from benchmarks.workspace import bench_workspace


def run_scoped(path: Path, repeats: int) -> dict[str, Any]:
    ws = Workspace.open(path)
    try:
        everything = tuple(r["account_id"] for r in ws.store.rows(
            "SELECT account_id FROM accounts ORDER BY account_id"))
        book = ws.acting_as(Principal("token:bench", "csm", accounts=everything), "bench")
        tenth = ws.acting_as(Principal("token:tenth", "csm", accounts=everything[::10]), "bench")
        metrics = table_metrics(ws.config.analysis.model)
        seconds: dict[str, float] = {}
        checks: dict[str, int] = {}
        for who, view in (("admin", ws), ("csm", book), ("tenth", tenth)):
            account_table(view, metrics)  # warm: rollup, compiled SQL, the book's views
            seconds[f"table.{who}"], table = best_of(lambda v=view: account_table(v, metrics),
                                                     repeats)
            checks[f"table.{who}"] = len(table)
            for name, params in ANALYSES:
                key = analysis_label(name, params)
                view.analysis(name, **params)
                seconds[f"{key}.{who}"], result = best_of(
                    lambda v=view, n=name, p=params: v.analysis(n, cached=False, **p), repeats)
                checks[f"{key}.{who}"] = len(result)
        return {"seconds": seconds, "rows": checks, "accounts": len(everything),
                "metrics": len(metrics)}
    finally:
        ws.close()


@benchmark("governance", "Row-level enforcement: a csm's book vs the admin", order=66,
           requires=("workspace",))
def governance_benchmark(ctx: Context) -> list[Row]:
    """On the analytics workspace, in one fresh process: the full account metrics table and
    each multi-user analysis of the analyses benchmark, computed as the admin (the workspace's
    own store) and as a `csm` token whose book lists every account (store/scoped.py: every
    table read through a view keeping the book's rows — the most rows a book can have, so the
    filter's whole cost shows), each warm, best of two runs (one in quick mode). The row
    counts of both are equal (checked). Target: the book's time ≤ 110% of the admin's. For
    reference, a book of every tenth account (what a customer-success manager's book is like)."""
    out, _ = in_child(run_scoped, bench_workspace(ctx).path, 1 if ctx.quick else 2)
    seconds, counts = out["seconds"], out["rows"]
    labels = [("table", f"account metrics table ({out['metrics']} metrics)")]
    labels += [(analysis_label(n, p), analysis_label(n, p)) for n, p in ANALYSES]
    rows = []
    for key, label in labels:
        slug = key.replace(" ", ".").replace("=", "_")
        same = counts[f"{key}.admin"] == counts[f"{key}.csm"]
        rows.append(Row(f"governance.{slug}.admin", f"{label}, admin", seconds[f"{key}.admin"], "s"))
        rows.append(Row(f"governance.{slug}.csm", f"{label}, csm book of all {out['accounts']:,} accounts",
                        seconds[f"{key}.csm"], "s", baseline=f"governance.{slug}.admin",
                        target=Target("<=", 1.10),
                        note="" if same else "row counts differ from the admin's (a bug)"))
        rows.append(Row(f"governance.{slug}.tenth", f"{label}, csm book of a tenth of the accounts",
                        seconds[f"{key}.tenth"], "s", baseline=f"governance.{slug}.admin",
                        note=f"{counts[f'{key}.tenth']:,} rows"))
    return rows
