"""`python -m benchmarks`: run the registered benchmarks and write `docs/benchmarks.md`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.registry import Context, discover, run
from benchmarks.report import render

# Issue sizes: metrics, analyses, scaling and the dashboard at 10M events (5,000 accounts,
# 100,000 users); ingestion at 1M, which keeps `make bench` within about 10–15 minutes.
FULL_EVENTS = 10_000_000
FULL_INGEST_EVENTS = 1_000_000
QUICK_EVENTS = 50_000


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--events", type=int,
                        help=f"events of the analytics workspace: metrics, analyses, scaling, "
                             f"dashboard (default {FULL_EVENTS:,}; {QUICK_EVENTS:,} with --quick)")
    parser.add_argument("--ingest-events", type=int,
                        help=f"events of the ingestion benchmarks (default {FULL_INGEST_EVENTS:,}"
                             " or --events if smaller)")
    parser.add_argument("--quick", action="store_true", help="small, fast run (about a minute)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these benchmarks (plus the baselines they compare with)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"),
                        help="markdown report to write (default docs/benchmarks.md)")
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"),
                        help="folder for generated data and workspaces (default bench-data)")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated data")
    parser.add_argument("--clients", type=int, default=4, help="HTTP client processes (default 4)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for bench in sorted(discover().values(), key=lambda b: b.order):
            print(f"{bench.name:14s} {bench.title}")
        return 0
    events = args.events or (QUICK_EVENTS if args.quick else FULL_EVENTS)
    ingest_events = args.ingest_events or min(events, QUICK_EVENTS if args.quick
                                              else FULL_INGEST_EVENTS)
    if min(events, ingest_events) < 100:
        print("error: --events and --ingest-events must be at least 100", file=sys.stderr)
        return 2
    ctx = Context(events=events, quick=args.quick, data_dir=args.data_dir / "run",
                  ingest_events=ingest_events, clients=max(1, args.clients),
                  keep_data=args.keep_data)
    load_before = os.getloadavg()[0]
    try:
        outcomes = run(ctx, args.only)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(ctx, outcomes, command.strip(), load_before), encoding="utf-8")
    ctx.log(f"wrote {args.out}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
