"""The benchmark suite behind `make bench`: registered benchmarks write `docs/benchmarks.md`.

Add a benchmark by adding a module to this package with a function decorated by `@benchmark`.
"""

from benchmarks.registry import (
    BENCHMARKS,
    Context,
    Row,
    Skipped,
    Target,
    benchmark,
    run,
)

__all__ = ["BENCHMARKS", "Context", "Row", "Skipped", "Target", "benchmark", "run"]
