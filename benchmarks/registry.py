"""The benchmark registry: `@benchmark` functions return result rows; `run` executes a selection.

A row may name a baseline row measured in the same run; the report shows the ratio to it and
whether the row's target is met.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Modules of this package that hold machinery, not benchmarks.
_NOT_BENCHMARKS = {"__main__", "registry", "report"}


@dataclass(frozen=True)
class Target:
    """A goal for a row: `on="ratio"` compares the ratio to the baseline, `on="value"` the value."""

    op: str  # ">=", "<=" or "=="
    threshold: float
    on: str = "ratio"

    def met(self, value: float, ratio: float | None) -> bool | None:
        subject = ratio if self.on == "ratio" else value
        if subject is None:
            return None
        if self.op == "==":
            return abs(subject - self.threshold) < 1e-9
        return subject >= self.threshold if self.op == ">=" else subject <= self.threshold

    def describe(self, unit: str, baseline: str | None = None) -> str:
        if self.on == "ratio":
            return f"{self.op} {self.threshold:.0%} of {f'`{baseline}`' if baseline else 'baseline'}"
        return f"{'=' if self.op == '==' else self.op} {self.threshold:,.6g} {unit}"


@dataclass
class Row:
    key: str  # unique in a run, e.g. "bulk_import.rate"; baselines refer to it
    figure: str  # what is measured, for humans
    value: float
    unit: str
    baseline: str | None = None  # key of the row this one is compared with
    target: Target | None = None
    note: str = ""


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    order: int
    func: Callable[[Context], list[Row]]
    description: str
    requires: tuple[str, ...]  # benchmarks whose rows this one compares with


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, title: str, order: int, requires: tuple[str, ...] = ()):
    """Register `func(ctx) -> list[Row]`; its docstring is the section text in the report."""

    def register(func: Callable[[Context], list[Row]]) -> Callable[[Context], list[Row]]:
        if name in BENCHMARKS and BENCHMARKS[name].func is not func:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = Benchmark(
            name, title, order, func, inspect.cleandoc(func.__doc__ or ""), tuple(requires)
        )
        return func

    return register


@dataclass
class Context:
    """What a benchmark gets: the run's sizes and folders, shared cached data, earlier rows.

    `events` sizes the analytics workspace (metrics, analyses, scaling, dashboard);
    `ingest_events` the ingestion benchmarks (the same as `events` when not given).
    """

    events: int
    quick: bool
    data_dir: Path
    ingest_events: int = 0
    clients: int = 4
    keep_data: bool = False
    verbose: bool = True
    rows: dict[str, Row] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)
    _started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.ingest_events = self.ingest_events or self.events

    def cached(self, key: str, factory: Callable[[], Any]) -> Any:
        """Build a shared resource (e.g. the generated dataset) once per run."""
        if key not in self._cache:
            self._cache[key] = factory()
        return self._cache[key]

    def scratch(self, name: str) -> Path:
        """A fresh, empty folder under the run's data folder."""
        path = self.data_dir / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[bench {time.perf_counter() - self._started:7.1f}s] {message}",
                  file=sys.stderr, flush=True)

    def ratio(self, row: Row) -> float | None:
        base = self.rows.get(row.baseline) if row.baseline else None
        if base is None or not base.value:
            return None
        return row.value / base.value


class Skipped(Exception):
    """Raised by a benchmark that cannot run here (e.g. no browser); reported, not failed."""


@dataclass
class Outcome:
    benchmark: Benchmark
    rows: list[Row]
    seconds: float
    error: str | None = None
    skipped: str | None = None


def discover() -> dict[str, Benchmark]:
    """Import every benchmark module of this package; importing registers its benchmarks."""
    package = importlib.import_module("benchmarks")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_BENCHMARKS:
            importlib.import_module(f"benchmarks.{info.name}")
    return BENCHMARKS


def select(only: list[str] | None) -> list[Benchmark]:
    """The benchmarks to run in order: `only` (all when empty) plus the baselines they need."""
    known = discover()
    unknown = [name for name in only or [] if name not in known]
    if unknown:
        raise KeyError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen: set[str] = set()
    pending = list(only or known)
    while pending:
        name = pending.pop()
        if name not in chosen:
            chosen.add(name)
            pending.extend(known[name].requires)
    return sorted((known[n] for n in chosen), key=lambda b: (b.order, b.name))


def run(ctx: Context, only: list[str] | None = None) -> list[Outcome]:
    """Run the selection; a failing benchmark is reported, the others still run."""
    outcomes = []
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        for bench in select(only):
            ctx.log(f"{bench.name}: start")
            started = time.perf_counter()
            error = skipped = None
            try:
                rows = bench.func(ctx)
            except Skipped as exc:
                rows, skipped = [], str(exc)
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the rest
                rows, error = [], f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            for row in rows:
                if row.key in ctx.rows:
                    raise ValueError(f"row key {row.key!r} is used twice")
                ctx.rows[row.key] = row
            outcomes.append(Outcome(bench, rows, time.perf_counter() - started, error, skipped))
            ctx.log(f"{bench.name}: done in {outcomes[-1].seconds:.1f}s"
                    + (f" (FAILED: {error})" if error else "")
                    + (f" (skipped: {skipped})" if skipped else ""))
    finally:
        if not ctx.keep_data:
            shutil.rmtree(ctx.data_dir, ignore_errors=True)
    return outcomes
