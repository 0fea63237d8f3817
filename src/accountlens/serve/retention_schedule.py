"""Applies the retention policies of a served workspace on a schedule (docs/retention.md):
every `serve.retention_interval_hours` (0: never), the first time a minute after the start,
once the server has loaded what its log held. A run holds the store's write lock (loads wait
for it) and is audited as `server:retention`; a failure is logged and tried again next time.
"""

from __future__ import annotations

import datetime as dt
import logging

from accountlens.governance.audit import Actor
from accountlens.governance.retention import apply_retention, rules
from accountlens.serve.live import LiveWorkspace
from accountlens.serve.periodic import FIRST_RUN_SECONDS, Periodic

log = logging.getLogger("accountlens.retention")

ACTOR = Actor("server:retention", "admin", "schedule")


class RetentionSchedule(Periodic):
    """A background thread per served workspace. `interval_seconds` overrides the configured
    interval, `first_run_seconds` the wait before the first run (tests)."""

    thread_name = "accountlens-retention"

    def __init__(self, live: LiveWorkspace, interval_seconds: float | None = None,
                 first_run_seconds: float = FIRST_RUN_SECONDS):
        hours = live.workspace.config.serve.retention_interval_hours
        super().__init__(live, interval_seconds if interval_seconds is not None else hours * 3600,
                         first_run_seconds)

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

