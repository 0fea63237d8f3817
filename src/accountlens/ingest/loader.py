"""Moves sealed log segments into the store, exactly once, in large set-based batches.

Several segments load as one batch (one pipeline run, one transaction): the per-batch work
that grows with the store (dedup against stored message ids, membership and attribution
lookups) is then paid once per batch, not once per 8 MB segment.

Loading competes with the collector for the same cores. Under a heavy stream of requests the
background loader therefore waits, leaving the events in the durable log, until the traffic
eases, the oldest waiting event is `max_load_delay_seconds` old, or the log holds
`max_unloaded_bytes`; light traffic is loaded every interval.

A load that fails for lack of disk space (the store's WAL, DuckDB spilling to its temporary
folder) is told from one that ran out of memory: it leaves the events in the log, is reported
(`loader_error`, `disk_full`) and retried every interval until space returns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from accountlens.config import IngestSection
from accountlens.ingest.log import SPACE_ERRNOS, EventLog, WriteFailure, segment_name, take_over
from accountlens.ingest.pipeline import STAGING, Batch, LoadResult, Step, run_pipeline, stage_jsonl
from accountlens.model.rollup import rebuild_deferred
from accountlens.store.base import WritableStore

log = logging.getLogger("accountlens.loader")

SOURCE_PREFIX = "collector:"
# Segments loaded together; bounds the loader's memory. Each batch pays costs that grow with
# the store, so larger is cheaper: 1M events over HTTP, 48 MB against 32 MB took 15-20% less
# server CPU and reached "loaded" 5-15% sooner at the same peak RSS; 64 MB came near the
# 500 MB RSS budget (docs/profiling.md, session 4).
BATCH_BYTES = 48 << 20
# Appends per second above which the collector counts as busy and loads wait (about 3,000
# events/s): below it, loading every interval costs the collector little.
HEAVY_BYTES_PER_SECOND = 1 << 20
# The same when collector processes receive the events (`serve --collectors`): the loader
# then has the server process to itself and competes with them for cores only, not for one
# interpreter, and they receive a 100-event request in a fraction of the time the loader spends
# on it. Below about 25,000 events/s (8 MB/s) they leave most of both cores idle, so loading
# every interval keeps events fresh (benchmarks/freshness.py); above it the loader
# could not keep up anyway and waits for the burst to end, as without collector processes.
HEAVY_BYTES_PER_SECOND_APART = 8 << 20


def _record_segments(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """Pipeline step: one `ingest_segments` row per segment, in the load's own transaction,
    so that loading a segment again after a crash is a no-op."""
    store.execute(
        """
        INSERT INTO ingest_segments
        SELECT segment, now(), received, inserted, received - inserted - quarantined, quarantined
        FROM (SELECT substr(c.source, ?) AS segment, count(*) AS received,
                     count(n.line_no) AS inserted,
                     count(*) FILTER (WHERE c.reason IS NOT NULL) AS quarantined
              FROM _checked c LEFT JOIN _new n USING (line_no) GROUP BY c.source)
        """,
        [len(SOURCE_PREFIX) + 1],
    )


RECORD_SEGMENTS = Step(_record_segments, reads=("_checked", "_new"))


def load_segments(store: WritableStore, cfg: IngestSection, root: Path, paths: list[Path],
                  on_step: Callable[[str], None] | None = None) -> LoadResult:
    """Load the segments `paths` of the log in `root` as one batch (those already loaded are
    only removed). A segment is recorded by its path relative to `root`; `on_step` is told
    each pipeline step's name as it starts."""
    result = LoadResult()
    with store.transaction():
        loaded = {row["segment"] for row in store.arrow(
            "SELECT segment FROM ingest_segments WHERE list_contains(?, segment)",
            [[segment_name(root, path) for path in paths]]).to_pylist()}
        todo = [path for path in paths
                if segment_name(root, path) not in loaded and path.stat().st_size]
        if todo:
            if on_step is not None:
                on_step("stage")
            stage_jsonl(store, todo, source_prefix=SOURCE_PREFIX,
                        names=[segment_name(root, path) for path in todo])
            result = run_pipeline(store, cfg, then=(RECORD_SEGMENTS,), on_step=on_step)
            store.execute(f"DROP TABLE {STAGING}")
    for path in paths:
        path.unlink(missing_ok=True)
    return result


def _batches(paths: list[Path]) -> list[list[Path]]:
    """Consecutive runs of segments of up to BATCH_BYTES (at least one segment each)."""
    batches: list[list[Path]] = []
    size = 0
    for path in paths:
        length = path.stat().st_size
        if not batches or size + length > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += length
    return batches


def load_pending(store: WritableStore, cfg: IngestSection, event_log: EventLog) -> LoadResult:
    """Seal the active segment and load every sealed one, and whatever collector processes of
    an earlier server left in their folders (see collector_pool)."""
    return _load(store, cfg, event_log.directory,
                 event_log.seal() + take_over(event_log.directory))


def _load(store: WritableStore, cfg: IngestSection, root: Path, paths: list[Path],
          on_step: Callable[[str], None] | None = None) -> LoadResult:
    total = LoadResult()
    for batch in _batches(paths):
        total.add(load_segments(store, cfg, root, batch, on_step))
    rebuild_deferred(store)  # a backfill of history: one rollup rebuild after its last batch
    return total


# How DuckDB words a full disk: a write of the database file or its WAL ("Could not write
# file ...: No space left on device"), and a spill to its temporary folder, which it reports as
# an OutOfMemoryException ("failed to offload data block ... max_temp_directory_size", whose
# default is the free space of that folder's disk). A larger memory limit helps neither.
_DISK_FULL_WORDS = ("no space left on device", "disk quota exceeded", "failed to offload")
# DuckDB invalidates the database after a fatal error (its FatalException), such as a
# checkpoint it could not write ("Failed to create checkpoint because of error: Could not write
# file ...", even after a commit that did succeed: "Transaction COMMIT succeeded and is durable,
# but the autocheckpoint failed"); only opening the file again makes it usable.
_INVALIDATED_WORDS = ("database has been invalidated", "reopen the database instance")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _disk_full(exc: BaseException) -> bool:
    """Whether a load failed for lack of disk space (not of memory)."""
    return any((isinstance(e, OSError) and e.errno in SPACE_ERRNOS)
               or any(words in str(e).lower() for words in _DISK_FULL_WORDS)
               for e in _causes(exc))


def _invalidated(exc: BaseException) -> bool:
    """Whether DuckDB must open the database again before it can be used."""
    return any(type(e).__name__ == "FatalException"
               or any(words in str(e).lower() for words in _INVALIDATED_WORDS)
               for e in _causes(exc))


def _out_of_memory(exc: BaseException) -> bool:
    """Whether the engine ran out of its memory limit (DuckDB's OutOfMemoryException), and
    not of disk space to spill to."""
    return type(exc).__name__ == "OutOfMemoryException" and not _disk_full(exc)


class LoadableLog(Protocol):
    """What the background loader reads of a log: an `EventLog`, or (collector processes
    appending too) the server's view of every folder that serve/collector_pool.py gives it."""

    directory: Path
    # whether collector processes receive the events (else this process does, beside the loader)
    collectors_apart: bool

    @property
    def appended_bytes(self) -> int: ...

    def seal(self) -> list[Path]: ...

    def segments(self) -> list[Path]: ...

    def write_failure(self) -> WriteFailure | None: ...


class BackgroundLoader:
    """Loads the log every `interval` seconds until stopped; `flush()` loads right now."""

    def __init__(self, store: WritableStore, cfg: IngestSection, event_log: LoadableLog,
                 memory_limits: tuple[str, str] | None = None):
        """`memory_limits`: DuckDB's memory limit while events arrive or are being loaded, and
        otherwise (a server keeps its footprint small while ingesting; analyses get more)."""
        self.store, self.cfg, self.event_log = store, cfg, event_log
        self._limits, self._ingesting = memory_limits, False
        self.step: str | None = None  # the pipeline step of the load under way (or the last)
        self._waiting_since: float | None = None  # heavy traffic has held loads back since
        self.totals = LoadResult()
        self.last_error: str | None = None
        self.disk_full = False  # the last load failed for lack of disk space
        self._reopen = False  # DuckDB invalidated the database: open it again before loading
        self._stop = threading.Event()
        self._run_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="accountlens-loader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> LoadResult:
        return self._run(self.event_log.seal)

    def _run(self, pending) -> LoadResult:
        with self._run_lock:
            try:
                if self._reopen:
                    self.store.reopen()
                    self._reopen = False
                    log.warning("the store was opened again after a fatal error")
                paths = pending()
                try:
                    result = _load(self.store, self.cfg, self.event_log.directory, paths,
                                   self._starting)
                except Exception as exc:
                    if not (_out_of_memory(exc) and self._outgrow_ingest_limit()):
                        raise
                    # the batches loaded before the failure were committed and removed
                    result = _load(self.store, self.cfg, self.event_log.directory,
                                   [path for path in paths if path.exists()], self._starting)
            except Exception as exc:  # keep serving; the log keeps the data for the next try
                self._failed(exc)
                raise
            if self.disk_full:
                log.warning("loading the event log works again: disk space is back")
            self.last_error, self.disk_full = None, False
            self.totals.add(result)
            return result

    def _failed(self, exc: Exception) -> None:
        self._reopen = self._reopen or _invalidated(exc)
        error = f"{type(exc).__name__}: {exc}"
        if not _disk_full(exc):
            self.disk_full = False
            log.exception("loading the event log failed; will retry")
        elif not self.disk_full:  # once per spell, not a traceback every interval
            self.disk_full = True
            log.error("loading the event log failed: the disk is full (%s); the events stay in "
                      "the log, loading is retried every %g s", error,
                      self.cfg.load_interval_seconds)
        self.last_error = f"disk full: {error}" if self.disk_full else error

    def _held(self) -> str:
        """What holds DuckDB's memory (its largest uses by kind), to tell what the limit was
        shared with."""
        try:
            rows = self.store.arrow(
                "SELECT tag, memory_usage_bytes AS bytes FROM duckdb_memory() "
                "WHERE memory_usage_bytes > 0 ORDER BY bytes DESC LIMIT 4").to_pylist()
        except Exception:  # noqa: BLE001 - a diagnostic only: never the reason a load fails
            return "(unknown)"
        return ", ".join(f"{r['tag'].lower()} {r['bytes'] / 2**20:.0f} MiB" for r in rows) or "nothing"

    def _starting(self, step: str) -> None:
        self.step = step

    def _outgrow_ingest_limit(self) -> bool:
        """After a load ran out of memory under the ingest limit: load under the normal limit
        from now on (the store has grown past what the small footprint can load: the rollup
        refresh and the deduplication against stored events grow with it). False when there
        is no higher limit to go to."""
        if self._limits is None or not self._ingesting or self._limits[0] == self._limits[1]:
            return False
        log.warning("loading needed more memory than the ingest limit (%s, "
                    "serve.ingest_memory_limit) in its step %s, with %s held besides the load; "
                    "loading under %s (serve.memory_limit) from now on",
                    self._limits[0], self.step, self._held(), self._limits[1])
        self._limits = (self._limits[1], self._limits[1])
        self.store.set_option("memory_limit", self._limits[1])
        return True

    @property
    def ingesting(self) -> bool:
        """Whether events are arriving (or the last load took some): work that can wait, such
        as warming the dashboard, waits until this is over."""
        return self._ingesting

    def _set_ingesting(self, ingesting: bool) -> None:
        if ingesting != self._ingesting:
            if self._limits is not None:
                self.store.set_option("memory_limit", self._limits[0 if ingesting else 1])
            self._ingesting = ingesting

    def _due(self, heavy: bool) -> bool:
        """Load now? Always when the traffic is light; under heavy traffic only once the
        oldest waiting event has waited `max_load_delay_seconds` or the log is too large."""
        if not heavy:
            self._waiting_since = None
            return True
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        backlog = 0
        for path in self.event_log.segments():
            with contextlib.suppress(FileNotFoundError):  # loaded and removed meanwhile
                backlog += path.stat().st_size
        return (now - self._waiting_since >= self.cfg.max_load_delay_seconds
                or backlog >= self.cfg.max_unloaded_bytes)

    def _loop(self) -> None:
        interval = self.cfg.load_interval_seconds
        appended = self.event_log.appended_bytes
        while not self._stop.wait(interval):
            total = self.event_log.appended_bytes  # collector processes are asked: read once
            # (a collector process started again counts from zero: never a negative arrival)
            arrived, appended = max(0, total - appended), total
            if arrived:
                self._set_ingesting(True)
            busy = HEAVY_BYTES_PER_SECOND_APART if self.event_log.collectors_apart else HEAVY_BYTES_PER_SECOND
            if not self._due(heavy=arrived >= busy * interval):
                continue
            try:
                result = self._run(self.event_log.seal)
            except Exception:  # noqa: BLE001 - logged by _run; the log keeps the data for the next try
                continue
            self._waiting_since = None
            self._set_ingesting(arrived > 0 or result.received > 0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started (`accountlens serve` starts it last)
            self._thread.join(timeout=30)
        with contextlib.suppress(Exception):  # logged by flush; the log is replayed on restart
            self.flush()
