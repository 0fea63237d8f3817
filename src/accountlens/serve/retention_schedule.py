"""Applies the retention policies of a served workspace on a schedule (docs/retention.md):
every `serve.retention_interval_hours` (0: never), the first time a minute after the start,
once the server has loaded what its log held. A run holds the store's write lock (loads wait
for it) and is audited as `server:retention`; a failure is logged and tried again next time.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from accountlens.governance.audit import Actor
from accountlens.governance.retention import apply_retention, rules
from accountlens.serve.live import LiveWorkspace

log = logging.getLogger("accountlens.retention")

ACTOR = Actor("server:retention", "admin", "schedule")
FIRST_RUN_SECONDS = 60.0


class RetentionSchedule:
    """A background thread per served workspace. `interval_seconds` overrides the configured
    interval, `first_run_seconds` the wait before the first run (tests)."""

    def __init__(self, live: LiveWorkspace, interval_seconds: float | None = None,
                 first_run_seconds: float = FIRST_RUN_SECONDS):
        self.live = live
        hours = live.workspace.config.serve.retention_interval_hours
        self.interval = interval_seconds if interval_seconds is not None else hours * 3600
        self.first_run = min(first_run_seconds, self.interval)
        self.runs = 0  # runs that completed
        self.last_result: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="accountlens-retention", daemon=True)

    @property
    def enabled(self) -> bool:
        """An interval is set (the rules are read again at every run: none, no run)."""
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
        """Apply the rules now, if any is set; never raises (the server keeps serving)."""
        workspace = self.live.workspace
        try:
            if not rules(workspace.config.retention, dt.datetime.now(dt.UTC)):
                return  # nothing to apply: no audit entry every interval
            self.last_result = apply_retention(workspace.store, workspace.config, workspace.root,
                                               ACTOR)
            self.runs += 1
            log.info("retention applied: removed %s; rollup horizon %s",
                     self.last_result["removed"], self.last_result["rollup_horizon"])
        except Exception:
            log.exception("applying the retention policies of %s failed; trying again in %.0f s",
                          workspace.root, self.interval)

