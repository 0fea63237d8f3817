"""How far a bulk import has come, for a progress bar: the step it is in and the share done.

An import is a handful of large SQL statements (the load pipeline's steps). Each step owns a
share of the bar, measured on a 1M-event import (docs/benchmarks.md, "Bulk import"); within a
step, the engine's own estimate of the running statement (DuckDB's query progress) moves the
bar. The reported share never goes back.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

# step → (what the bar says, its share of an import's time)
STEPS: dict[str, tuple[str, float]] = {
    "stage": ("reading", 0.08),
    "parse": ("parsing", 0.19),
    "quarantine": ("quarantining invalid events", 0.01),
    "dedup": ("skipping duplicates", 0.08),
    "check_tracking_plan": ("checking the tracking plan", 0.0),  # nothing to do without a plan
    "record_warnings": ("recording ingestion warnings", 0.0),  # usually nothing to record
    "update_profiles": ("updating users and accounts", 0.07),
    "derive_memberships": ("deriving memberships", 0.09),
    "reattribute_changed": ("re-attributing stored events", 0.01),
    "attribute_new": ("attributing events to accounts", 0.08),
    "write_events": ("writing events", 0.33),
    "refresh_rollup": ("refreshing the daily rollup", 0.01),
    "commit": ("committing", 0.03),
    "rebuild_rollup": ("rebuilding the daily rollup", 0.02),
}
DONE = "done"
# step → share of the bar done before it
_BEFORE = dict(zip(STEPS, itertools.accumulate((share for _, share in STEPS.values()), initial=0.0),
                   strict=False))

Report = Callable[[str, float], None]  # (what the bar says, share done in [0, 1])


class ImportProgress:
    """Reports an import's progress to `report`: on every step, and every `interval` seconds
    from the statement running (`probe`: its percentage done, or a negative number)."""

    def __init__(self, report: Report, probe: Callable[[], float], interval: float = 0.25):
        self._report, self._probe, self._interval = report, probe, interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._step: str | None = None
        self._start = 0.0  # share done before the current step
        self._shown = 0.0
        self._thread = threading.Thread(target=self._poll, daemon=True,
                                        name="accountlens-import-progress")

    def __enter__(self) -> ImportProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self._emit(DONE, 1.0)

    def step(self, name: str) -> None:
        """The import enters step `name` (a pipeline step or one of `STEPS`)."""
        with self._lock:
            self._start = _BEFORE.get(name, self._start)  # a step of its own: where the last was
            self._step = name
        self._emit(self._label(name), self._start)

    @staticmethod
    def _label(name: str) -> str:
        return STEPS.get(name, (name.replace("_", " "), 0.0))[0]

    def _emit(self, label: str, share: float) -> None:
        # Under the lock: `report` hears from one thread at a time, in order.
        with self._lock:
            self._shown = max(self._shown, min(share, 1.0))
            self._report(label, self._shown)

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                step, start = self._step, self._start
            if step is None:
                continue
            percent = self._probe()
            if percent >= 0:
                share = STEPS.get(step, ("", 0.0))[1]
                self._emit(self._label(step), start + share * min(percent, 100.0) / 100.0)
