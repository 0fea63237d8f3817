"""Evaluates the alert rules of a served workspace on a schedule and delivers its alerts
(docs/alerts.md): the rules every `alerts.interval_minutes` (0: never), the first time a
minute after the start at the latest; pending deliveries (also those a previous run of the
server left) as soon as their retry is due. A failure is logged and tried again next time.
"""

from __future__ import annotations

import logging
import time

from accountlens.governance.alerts import run_alerts
from accountlens.governance.delivery import deliver_due
from accountlens.serve.live import LiveWorkspace
from accountlens.serve.periodic import FIRST_RUN_SECONDS, Periodic

log = logging.getLogger("accountlens.alerts")

# How often due retries are looked for between evaluations (a cheap query), at most.
RETRY_CHECK_SECONDS = 5.0


class AlertSchedule(Periodic):
    """A background thread per served workspace. `interval_seconds` overrides the configured
    interval, `first_run_seconds` the wait before the first evaluation (tests)."""

    thread_name = "accountlens-alerts"

    def __init__(self, live: LiveWorkspace, interval_seconds: float | None = None,
                 first_run_seconds: float = FIRST_RUN_SECONDS):
        settings = live.workspace.config.alerts
        super().__init__(live, interval_seconds if interval_seconds is not None
                         else settings.interval_minutes * 60, first_run_seconds)
        # short enough to honour the backoff of the first retry
        self.tick = max(0.1, min(RETRY_CHECK_SECONDS, self.interval, settings.backoff_seconds / 2))

    @property
    def enabled(self) -> bool:
        """An interval is set, and a rule to evaluate or a webhook to deliver to."""
        alerts = self.live.workspace.config.alerts
        return self.interval > 0 and bool(alerts.rules or alerts.webhooks)

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
