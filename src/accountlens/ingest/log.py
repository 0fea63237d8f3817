"""The durable append-only event log behind every acknowledged request.

The collector appends newline-delimited JSON and gets its acknowledgement only after the bytes
are fsync'd. Appends from concurrent requests are group-committed: one writer thread takes all
waiting batches, writes them with one `write` and one `fsync`, then releases them together.
The loader seals the active segment and loads sealed segments; a crash leaves at most a torn
last line of an unacknowledged batch, which recovery truncates. A group whose write or fsync
fails (a full disk, EIO) fails all its batches and is cut off the segment at once, so that no
complete line of it is ever loaded as if acknowledged; the next group tries again, so the log
resumes by itself when space returns.

A segment's name is never used twice in a workspace's life: the loader records every loaded
segment by name (so that loading it again after a crash is a no-op), and a reused name would
make it skip, then delete, acknowledged events. Segment numbers are microsecond timestamps,
above every number still in the folder and every number the store has recorded (`floor`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accountlens.store.durable import fsync

SEGMENT_RE = re.compile(r"^seg-(\d{12,})\.jsonl$")
# Write failures that mean "no room" (not a broken disk): they end when space is freed.
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# Less free space than this (two default-sized batches) counts as a full disk in `status`.
LOW_SPACE_BYTES = 1 << 20
# Seconds clients are told to wait (`Retry-After`) while the log or the store cannot be
# written: SDKs retry a 503 anyway; this spaces their retries while someone frees space.
RETRY_AFTER_SECONDS = 10

log = logging.getLogger("accountlens.log")


def free_bytes(path: Path) -> int:
    """Bytes that may still be written on the file system holding `path` (or its nearest
    existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


@dataclass(frozen=True)
class WriteFailure:
    """Why the log's last group commit failed (picklable: collector processes report it)."""

    error: str  # "OSError: [Errno 28] No space left on device"
    out_of_space: bool  # ENOSPC or EDQUOT: over once space is freed


def segment_files(directory: Path) -> list[Path]:
    """The log's segment files in `directory`, oldest first (none if it does not exist)."""
    if not directory.exists():
        return []
    return sorted((p for p in directory.iterdir() if SEGMENT_RE.match(p.name)), key=segment_number)


def segment_number(path: Path) -> int:
    match = SEGMENT_RE.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a log segment (seg-NNNNNNNNNNNN.jsonl)")
    return int(match.group(1))


def segment_name(root: Path, path: Path) -> str:
    """How the store records a loaded segment: its path under the log's root folder."""
    return path.relative_to(root).as_posix()


def recover(directory: Path) -> None:
    """Cut any torn tail (an unacknowledged, partly written batch) off the folder's segments."""
    for path in segment_files(directory):
        data_len = path.stat().st_size
        if data_len == 0:
            continue
        with open(path, "rb+") as fh:
            # Only the tail can be torn; scan back to the last newline.
            chunk = min(data_len, 1 << 20)
            fh.seek(data_len - chunk)
            tail = fh.read(chunk)
            if tail.endswith(b"\n"):
                continue
            cut = tail.rfind(b"\n")
            keep = data_len - chunk + cut + 1 if cut >= 0 else 0
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())


class EventLog:
    collectors_apart = False  # this process appends (the loader's `LoadableLog`)

    def __init__(self, directory: Path, segment_bytes: int, floor: int = 0):
        """`floor`: the segment numbers the store has already loaded are below it."""
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._floor = floor
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.appended_bytes = 0  # since the log was opened: how much traffic is arriving?
        self._queue: queue.Queue[tuple[bytes, Future] | None] = queue.Queue()
        # Where the active segment must be cut back to before anything else is appended: a
        # failed group whose cut failed too (None: the segment holds only acknowledged lines).
        self._torn: int | None = None
        self._failure: tuple[WriteFailure, int] | None = None  # the failure, its group's bytes
        self._file: Any = None
        recover(directory)
        self._open_new_segment()
        self._thread = threading.Thread(target=self._run, name="accountlens-log", daemon=True)
        self._thread.start()

    # --- segments ---------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        return segment_files(self.directory)

    def _next_number(self) -> int:
        existing = max((segment_number(p) for p in self.segments()), default=0)
        number = max(existing + 1, self._floor, time.time_ns() // 1000)
        self._floor = number + 1
        return number

    def _open_new_segment(self) -> None:
        """Make a new segment the active one. When that fails (no space for the file), the
        active segment stays open and active: it is sealed on a later try."""
        path = self.directory / f"seg-{self._next_number():016d}.jsonl"
        new = open(path, "ab", buffering=0)  # noqa: SIM115 - open until sealed
        try:
            # (until its name is on disk, a crash could take the file and its fsync'd lines)
            fsync(self.directory)
        except BaseException:
            new.close()
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        if self._file is not None:
            self._file.close()
        self._file, self._active, self._active_size = new, path, 0

    def seal(self) -> list[Path]:
        """Close the active segment if it holds data; return all sealed segments, oldest first.
        (On a full disk the active segment may stay open: it is sealed by a later call.)"""
        with self._lock:
            if self._active_size > 0:
                try:
                    if self._torn is not None:  # never hand the loader an unacknowledged tail
                        self._cut(self._torn)
                    self._open_new_segment()
                except OSError as exc:
                    log.warning("cannot seal the log segment %s yet: %s", self._active, exc)
        return self.sealed()

    def sealed(self) -> list[Path]:
        """The segments no longer appended to, oldest first (the active one stays open)."""
        with self._lock:
            active = self._active
        return [p for p in self.segments() if p != active]

    # --- appends ----------------------------------------------------------------------------
    def append(self, data: bytes) -> Future:
        """Queue `data` (complete JSON lines); the future resolves once it is on disk."""
        future: Future = Future()
        if not data:
            future.set_result(None)
            return future
        self.appended_bytes += len(data)
        self._queue.put((data, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            size = len(item[0])
            # Group commit: everything already waiting shares this write and fsync.
            while size < (8 << 20):
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                size += len(nxt[0])
            with self._lock:
                payload = b"".join(data for data, _ in batch)
                try:
                    self._commit(payload)
                except BaseException as exc:  # noqa: BLE001 - whatever failed, nobody gets a false acknowledgement
                    self._failed(exc, len(payload))
                    for _, future in batch:
                        future.set_exception(exc)
                    continue
                if self._failure is not None:
                    log.warning("the event log in %s is written again", self.directory)
                    self._failure = None
                if self._active_size >= self.segment_bytes:
                    try:
                        self._open_new_segment()
                    except OSError as exc:  # the group is on disk; the segment grows a little
                        log.warning("cannot start a new log segment yet: %s", exc)
            for _, future in batch:
                future.set_result(None)

    def _commit(self, payload: bytes) -> None:
        """Append `payload` to the active segment and fsync it; when either fails, cut the
        segment back to where it was (or remember to, before the next append)."""
        if self._torn is not None:
            self._cut(self._torn)
        start = self._active_size
        try:
            view = memoryview(payload)
            while view:
                written = self._file.write(view)
                view = view[written:]
            os.fsync(self._file.fileno())
        except BaseException:
            # Part of the group may be in the file, whole lines too; none of it is
            # acknowledged, so none of it may be loaded later. After a failed fsync the page
            # cache no longer says what is on disk: only a cut and a new write do.
            self._torn = start
            with contextlib.suppress(OSError):
                self._cut(start)
            raise
        self._active_size += len(payload)

    def _cut(self, offset: int) -> None:
        os.ftruncate(self._file.fileno(), offset)
        os.fsync(self._file.fileno())
        self._torn = None

    def _failed(self, exc: BaseException, size: int) -> None:
        out_of_space = isinstance(exc, OSError) and exc.errno in SPACE_ERRNOS
        if self._failure is None:  # once per spell of failures, not once per group
            log.error("cannot write the event log in %s: %s; the collector answers 503 until "
                      "writing works again", self.directory, exc)
        self._failure = (WriteFailure(f"{type(exc).__name__}: {exc}", out_of_space), size)

    def write_failure(self) -> WriteFailure | None:
        """Why the last group commit failed, while no later one has succeeded (None: the log
        writes). A lack of space counts as over once the file system has room for that group
        again: the next append will tell."""
        failure = self._failure
        if failure is None:
            return None
        with contextlib.suppress(OSError):
            if failure[0].out_of_space and free_bytes(self.directory) >= max(failure[1],
                                                                              LOW_SPACE_BYTES):
                return None
        return failure[0]

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        with self._lock:
            if self._torn is not None:
                with contextlib.suppress(OSError):
                    self._cut(self._torn)
            self._file.close()
            if self._active_size == 0 and self._active.exists():
                self._active.unlink()


# --- the folders collector processes of `accountlens serve` append to ------------------------
FOLDER_PREFIX = "collector-"
LOCK_FILE = ".lock"


def collector_folder(log_root: Path, index: int) -> Path:
    """The log folder of collector process `index` under a workspace's log."""
    return log_root / f"{FOLDER_PREFIX}{index}"


def collector_folders(log_root: Path) -> list[Path]:
    """The log folders of collector processes, past and present, under a workspace's log."""
    if not log_root.exists():
        return []
    return sorted(p for p in log_root.iterdir() if p.is_dir() and p.name.startswith(FOLDER_PREFIX))


def log_segments(log_root: Path) -> list[Path]:
    """Every segment of a workspace's log: the server process's, then the collectors'."""
    return [p for folder in (log_root, *collector_folders(log_root)) for p in segment_files(folder)]


def hold_lock(folder: Path, timeout: float) -> Any:
    """Hold the folder's exclusive lock (released when the returned file is closed)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+b")  # noqa: SIM115 - held until released
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise RuntimeError(f"{folder} is still locked by a collector process") from None
            time.sleep(0.05)


def take_over_folder(folder: Path, timeout: float) -> list[Path]:
    """Wait until no collector process appends to `folder`, cut torn tails, and return its
    segments: nobody appends to them any more, they can be loaded."""
    handle = hold_lock(folder, timeout)
    try:
        recover(folder)
        return segment_files(folder)
    finally:
        handle.close()


def take_over(log_root: Path, timeout: float = 30.0) -> list[Path]:
    """The segments left in the collector folders of `log_root` (by a stopped or killed server)."""
    return [path for folder in collector_folders(log_root) for path in take_over_folder(folder, timeout)]
