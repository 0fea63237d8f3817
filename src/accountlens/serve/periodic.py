"""A background thread per served workspace that does its work on a schedule (the retention
policies, the alert rules): started with the server when an interval is set, stopped with it."""

from __future__ import annotations

import threading
from typing import Any

FIRST_RUN_SECONDS = 60.0  # after the start, at the latest: the server has loaded its log by then


class Periodic:
    """Calls `run_once()` `first_run` seconds after `start()`, then every `interval` seconds
    (0: never); `run_once` must not raise (the server keeps serving). A subclass may replace
    `_loop` to do more between runs."""

    thread_name = "accountlens-periodic"

    def __init__(self, live: Any, interval: float, first_run_seconds: float = FIRST_RUN_SECONDS):
        self.live = live
        self.interval = interval
        self.first_run = min(first_run_seconds, interval)
        self.runs = 0  # runs that completed
        self.last_result: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        wait = self.first_run
        while not self._stop.wait(wait):
            self.run_once()
            wait = self.interval

    def run_once(self) -> None:
        raise NotImplementedError
