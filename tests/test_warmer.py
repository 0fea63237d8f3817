"""The dashboard warmer: the analyses the dashboard shows are computed once the data is quiet,
and exactly those the page asks for."""

from __future__ import annotations

import re
import time
from pathlib import Path

from accountlens.analysis import registry
from accountlens.api.dashboard import PANELS
from accountlens.serve.server import start_workspace, stop_workspace
from accountlens.serve.warmer import DASHBOARD_ANALYSES, DashboardWarmer
from tests import fixtures_b2b

APP_JS = Path(__file__).resolve().parent.parent / "src" / "accountlens" / "web" / "static" / "app.js"


def test_warmer_warms_what_the_page_asks_for() -> None:
    """The page renders the panels of GET /api/v1/dashboard (tests/test_dashboard.py checks the
    requests a real browser makes); the warmer warms the same panels' analyses, each a valid
    request, and app.js names no analysis of its own."""
    from fastapi.testclient import TestClient

    from accountlens.api.app import create_app

    served = TestClient(create_app([])).get("/api/v1/dashboard").json()["panels"]
    assert [(p["analysis"], p["params"]) for p in served] == list(DASHBOARD_ANALYSES)
    assert [(p.analysis, p.params) for p in PANELS] == list(DASHBOARD_ANALYSES)
    for name, params in DASHBOARD_ANALYSES:
        registry.load_all()[name].request(**params)
    assert not re.search(r"/api/v1/analyses/\w", APP_JS.read_text())


def test_dashboard_analyses_are_kept_after_a_quiet_period(tmp_path) -> None:
    ws = fixtures_b2b.build(tmp_path)
    root = ws.root
    ws.close()
    live = start_workspace(root)
    warmer = DashboardWarmer(live, quiet_seconds=0.2, poll_seconds=0.05)
    try:
        store = live.workspace.store
        warmer.start()
        deadline = time.monotonic() + 60
        while warmer.warmed_version != store.data_version and time.monotonic() < deadline:
            time.sleep(0.05)
        assert warmer.warmed_version == store.data_version
        kept = set(registry._RESULTS)
        assert any(key[:2] == (store.instance, store.data_version) for key in kept)
        for name, params in DASHBOARD_ANALYSES:  # what the page asks: answered from kept results
            live.workspace.analysis(name, **params)
        assert set(registry._RESULTS) == kept, "an analysis of the dashboard was computed anew"
    finally:
        warmer.stop()
        stop_workspace(live)


def test_warmer_waits_while_events_arrive(tmp_path) -> None:
    """Under heavy traffic the loader holds loads back for seconds; the data looks quiet in
    between, but the warmer does not compute the dashboard then (its results would be outdated
    by the next load, and it would take memory from the ingestion). It warms once the traffic
    has stopped and the last events are loaded."""
    import json

    from accountlens.ingest.loader import BackgroundLoader
    from accountlens.serve.live import LiveWorkspace
    from accountlens.workspace import Workspace

    ws = fixtures_b2b.build(tmp_path)
    root = ws.root
    ws.close()
    ws = Workspace.open(root)
    event_log = ws.open_log()
    cfg = ws.config.ingest.model_copy(update={"load_interval_seconds": 0.1,
                                              "max_load_delay_seconds": 0.8})
    live = LiveWorkspace(ws, event_log, BackgroundLoader(ws.store, cfg, event_log))
    warmer = DashboardWarmer(live, quiet_seconds=0.2, poll_seconds=0.05)
    store = ws.store
    try:
        live.loader.start()
        warmer.start()
        deadline = time.monotonic() + 60
        while warmer.warmed_version != store.data_version and time.monotonic() < deadline:
            time.sleep(0.05)
        first = warmer.warmed_version
        assert first == store.data_version

        padding = "x" * 900  # ~1 KB events, 100 per append: several MB/s, heavy traffic
        versions, warmed_during = {store.data_version}, set()
        started, sent = time.monotonic(), 0
        # at least 3 s of traffic, and on until two loads happened in it (a loaded machine
        # loads more slowly)
        while time.monotonic() - started < (3.0 if len(versions) >= 3 else 30.0):
            lines = [json.dumps({"type": "track", "messageId": f"burst-{sent + i}",
                                 "userId": "u-burst", "event": "Report Created",
                                 "properties": {"pad": padding}}).encode() for i in range(100)]
            event_log.append(b"\n".join(lines) + b"\n").result()
            sent += 100
            versions.add(store.data_version)
            warmed_during.add(warmer.warmed_version)
            time.sleep(0.01)
        assert len(versions) >= 3, "the loader loaded while the traffic went on"
        assert warmed_during == {first}

        deadline = time.monotonic() + 60
        while (warmer.warmed_version != store.data_version or live.loader.ingesting
               or store.scalar("SELECT count(*) FROM events WHERE message_id LIKE 'burst-%'") < sent) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert warmer.warmed_version == store.data_version != first
    finally:
        warmer.stop()
        stop_workspace(live)
