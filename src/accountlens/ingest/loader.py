"""Moves sealed log segments into the store, exactly once, in large set-based batches."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from accountlens.config import IngestSection
from accountlens.ingest.log import EventLog
from accountlens.ingest.pipeline import STAGING, LoadResult, run_pipeline, stage_jsonl
from accountlens.store.base import Store

log = logging.getLogger("accountlens.loader")


def load_segment(store: Store, cfg: IngestSection, path: Path) -> LoadResult | None:
    """Load one segment; None if it was already loaded (then it is only removed)."""
    with store.transaction():
        if store.scalar("SELECT count(*) FROM ingest_segments WHERE segment = ?", [path.name]):
            result = None
        else:
            stage_jsonl(store, path, source="collector:" + path.name)
            result = run_pipeline(store, cfg)
            store.execute(f"DROP TABLE {STAGING}")
            # Recording the segment in the same transaction makes a reload after a crash a no-op.
            store.execute(
                "INSERT INTO ingest_segments VALUES (?, now(), ?, ?, ?, ?)",
                [path.name, result.received, result.inserted, result.duplicates,
                 result.quarantined],
            )
    path.unlink(missing_ok=True)
    return result


def load_pending(store: Store, cfg: IngestSection, event_log: EventLog) -> LoadResult:
    total = LoadResult()
    for path in event_log.seal():
        result = load_segment(store, cfg, path)
        if result is not None:
            total.add(result)
    return total


class BackgroundLoader:
    """Loads the log every `interval` seconds until stopped; `flush()` loads right now."""

    def __init__(self, store: Store, cfg: IngestSection, event_log: EventLog):
        self.store, self.cfg, self.event_log = store, cfg, event_log
        self.totals = LoadResult()
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._run_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="accountlens-loader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> LoadResult:
        with self._run_lock:
            try:
                result = load_pending(self.store, self.cfg, self.event_log)
                self.last_error = None
            except Exception as exc:  # keep serving; the log keeps the data for the next try
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("loading the event log failed; will retry")
                raise
            self.totals.add(result)
            return result

    def _loop(self) -> None:
        while not self._stop.wait(self.cfg.load_interval_seconds):
            try:
                self.flush()
            except Exception:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self.flush()
        except Exception:
            pass
