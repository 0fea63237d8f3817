"""How the account metrics, the funnel and the multi-user analyses grow from a 10× smaller
workspace to the full one (issue 3: near linear from 1M to 10M events)."""

from __future__ import annotations

from accountlens.workspace import Workspace
from benchmarks.analyses import ANALYSES
from benchmarks.measure import in_child
from benchmarks.metrics import analysis_label, run_accountlens, table_metrics
from benchmarks.registry import Context, Row, Target, benchmark
from benchmarks.workspace import bench_workspace

FACTOR = 10
# Near linear: 10× the events may cost at most this many times the time.
NEAR_LINEAR = 12.0
# The analyses with a speed target, with the parameters the analyses benchmark runs them with.
SCALED = tuple(a for a in ANALYSES if a in (("handoffs", {"view": "pairs"}),
                                            ("sequences", {"outcome": "renewal"})))


@benchmark("scaling", f"Scaling: {FACTOR}× the events", order=70, requires=("workspace",))
def scaling_benchmark(ctx: Context) -> list[Row]:
    """The account metrics table, the account-level funnel and the analyses handoffs
    (view=pairs) and sequences (outcome=renewal), on a workspace with 10× fewer events drawn
    from the same accounts and users, and on the full one. Each size runs in its own fresh
    process, warm, best of two runs (one in quick mode); peak memory is that process's peak RSS
    (Linux `VmHWM`).
    Target: near linear, the full size at most 12× the time of the small one."""
    full = bench_workspace(ctx)
    small = bench_workspace(ctx, max(100, ctx.events // FACTOR))
    with Workspace.open(full.path, read_only=True) as ws:
        metrics = table_metrics(ws.config.analysis.model)
    measured = {}
    for size in (small, full):
        ctx.log(f"scaling: {size.events:,} events")
        measured[size.events] = in_child(run_accountlens, size.path, metrics,
                                         1 if ctx.quick else 2, SCALED)
    figures = [("table_s", "account metrics table"), ("funnel_s", "AARRR funnel (account)")]
    figures += [(analysis_label(n, p), analysis_label(n, p)) for n, p in SCALED]
    rows = []
    for key, figure in figures:
        slug = "scaling." + key.removesuffix("_s").replace(" ", ".").replace("=", "_")
        small_s, full_s = measured[small.events][0][key], measured[full.events][0][key]
        rows += [
            Row(f"{slug}.small", f"{figure} at {small.events:,} events", small_s, "s"),
            Row(f"{slug}.full", f"{figure} at {full.events:,} events", full_s, "s",
                baseline=f"{slug}.small", target=Target("<=", NEAR_LINEAR),
                note=f"{full_s / small_s:.1f}× the time for {full.events / small.events:.0f}× "
                     "the events" if small_s else ""),
        ]
    for size in (small, full):
        rows.append(Row(f"scaling.rss.{size.events}", f"peak RSS at {size.events:,} events",
                        measured[size.events][1] / 1e6, "MB"))
    return rows
