"""Keeps the web app's analyses computed: when a workspace's data has been quiet for a few
seconds after a change (or at start), the analyses the pages open with (api/dashboard.py's
PANELS: the overview, the accounts list, the analyses pages) are run once, so that opening a page
answers from the kept results (analysis/registry.py) instead of waiting for each computation
(seconds each at millions of events). One account's analyses are asked for when its page opens;
the models and account features they read are kept by then (warmed by the workspace-wide ones).

Quiet means no new data in the store and no events arriving: under heavy traffic the loader
holds loads back for seconds, and results computed then would be outdated by the next load
while taking memory and CPU from the ingestion (the server's memory budget is for ingesting)."""

from __future__ import annotations

import logging
import threading
import time

from accountlens.analysis import registry
from accountlens.api.dashboard import PANELS
from accountlens.serve.live import LiveWorkspace

log = logging.getLogger("accountlens.warmer")

# What the pages ask for as they open, in the order of their panels (api/dashboard.py).
DASHBOARD_ANALYSES: tuple[tuple[str, dict], ...] = tuple(
    (panel.analysis, panel.params) for panel in PANELS if panel.analysis)


class DashboardWarmer:
    """A background thread per served workspace; `quiet_seconds` without new data first."""

    def __init__(self, live: LiveWorkspace, quiet_seconds: float = 5.0, poll_seconds: float = 1.0):
        self.live, self.quiet, self.poll = live, quiet_seconds, poll_seconds
        self.warmed_version: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="accountlens-warmer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        store = self.live.workspace.store
        seen, since = store.data_version, time.monotonic()
        while not self._stop.wait(self.poll):
            if store.data_version != seen or self.live.loader.ingesting:
                seen, since = store.data_version, time.monotonic()
            elif seen != self.warmed_version and time.monotonic() - since >= self.quiet:
                self.warm(seen)

    def warm(self, version: int) -> None:
        store = self.live.workspace.store
        if not store.scalar("SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)"):
            self.warmed_version = version  # nothing to show yet (and nothing to import for it)
            return
        registered = registry.load_all()
        for name, params in DASHBOARD_ANALYSES:
            if name not in registered:
                continue  # an analysis of a plugin that is not installed here
            if (self._stop.is_set() or store.data_version != version
                    or self.live.loader.ingesting):
                return  # stopping, or new data: warm again once it is quiet
            try:
                self.live.workspace.analysis(name, **params)
            except Exception:
                log.exception("warming %s failed", name)
        self.warmed_version = version
