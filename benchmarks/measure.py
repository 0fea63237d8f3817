"""Measuring helpers: best-of-N wall time, and running a contender in a fresh child process so
its peak resident memory is its own."""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = func()
    return time.perf_counter() - started, result


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, every thread (DuckDB's) included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best_of(func: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(fastest seconds, last result) of `repeats` calls, each computing afresh: the kept
    metric rows are dropped before every call (compiled SQL stays warm, as in a server)."""
    def run() -> tuple[float, Any]:
        forget_metric_rows()
        return timed(func)

    runs = [run() for _ in range(max(1, repeats))]
    return min(seconds for seconds, _ in runs), runs[-1][1]


def forget_metric_rows() -> None:
    """Drop the metric rows accountlens keeps between requests (metrics/registry.py), if loaded."""
    registry = sys.modules.get("accountlens.metrics.registry")
    if registry is not None:
        registry._ROWS.clear()


def forget_analysis_results() -> None:
    """Drop the analysis results accountlens keeps (analysis/registry.py), if loaded, so each
    run computes from the store."""
    registry = sys.modules.get("accountlens.analysis.registry")
    if registry is not None:
        registry._RESULTS.clear()


def peak_rss() -> int:
    """This process's peak resident memory in bytes: Linux's VmHWM, which starts afresh at exec
    (`ru_maxrss` would carry over the parent's peak into a spawned child)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _peak_rss_wrapper(func: Callable[..., Any], args: tuple) -> tuple[Any, int]:
    result = func(*args)
    return result, peak_rss()


def in_child(func: Callable[..., Any], *args: Any) -> tuple[Any, int]:
    """(result, peak RSS in bytes) of `func(*args)` run in a fresh spawned process.

    `func` must be importable (a module-level function); spawn, not fork, so the child holds
    neither this process's memory nor its DuckDB threads."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_peak_rss_wrapper, func, args).result()
