"""Evaluates the alert rules of a served workspace on a schedule and delivers its alerts
(docs/alerts.md): the rules every `alerts.interval_minutes` (0: never), the first time a
minute after the start at the latest; pending deliveries (also those a previous run of the
server left) as soon as their retry is due. A failure is logged and tried again next time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from accountlens.governance.alerts import run_alerts
from accountlens.governance.delivery import deliver_due
from accountlens.serve.live import LiveWorkspace

log = logging.getLogger("accountlens.alerts")

FIRST_RUN_SECONDS = 60.0
# How often due retries are looked for between evaluations (a cheap query), at most.
RETRY_CHECK_SECONDS = 5.0


class AlertSchedule:
    """A background thread per served workspace. `interval_seconds` overrides the configured
    interval, `first_run_seconds` the wait before the first evaluation (tests)."""

    def __init__(self, live: LiveWorkspace, interval_seconds: float | None = None,
                 first_run_seconds: float = FIRST_RUN_SECONDS):
        self.live = live
        settings = live.workspace.config.alerts
        self.interval = (interval_seconds if interval_seconds is not None
                         else settings.interval_minutes * 60)
        self.first_run = min(first_run_seconds, self.interval)
        # short enough to honour the backoff of the first retry
        self.tick = max(0.1, min(RETRY_CHECK_SECONDS, self.interval, settings.backoff_seconds / 2))
        self.runs = 0  # evaluations that completed
        self.last_result: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="accountlens-alerts", daemon=True)

    @property
    def enabled(self) -> bool:
        """An interval is set, and a rule to evaluate or a webhook to deliver to."""
        alerts = self.live.workspace.config.alerts
        return self.interval > 0 and bool(alerts.rules or alerts.webhooks)

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        next_run = time.monotonic() + self.first_run
        self.deliver_once()  # what the previous server left pending, if due
        while not self._stop.wait(max(0.0, min(self.tick, next_run - time.monotonic()))):
            if time.monotonic() >= next_run:
                self.run_once()
                next_run = time.monotonic() + self.interval
            else:
                self.deliver_once()

    def run_once(self) -> None:
        """Evaluate the rules, record new alerts, deliver what is due; never raises."""
        workspace = self.live.workspace
        try:
            self.last_result = run_alerts(workspace.store, workspace.config)
            self.runs += 1
            if self.last_result["new"]:
                log.info("alerts: %d new as of %s", len(self.last_result["new"]),
                         self.last_result["as_of"])
        except Exception:
            log.exception("evaluating the alert rules of %s failed; trying again in %.0f s",
                          workspace.root, self.interval)

    def deliver_once(self) -> None:
        workspace = self.live.workspace
        try:
            deliver_due(workspace.store, workspace.config)
        except Exception:
            log.exception("delivering the alerts of %s failed; trying again", workspace.root)
