"""The dashboard warmer: the analyses the dashboard shows are computed once the data is quiet,
and exactly those the page asks for."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qsl

from accountlens.analysis import registry
from accountlens.api.server import start_workspace, stop_workspace
from accountlens.api.warmer import DASHBOARD_ANALYSES, DashboardWarmer
from tests import fixtures_b2b

APP_JS = Path(__file__).resolve().parent.parent / "src" / "accountlens" / "web" / "static" / "app.js"


def test_warmer_warms_what_the_page_asks_for() -> None:
    asked = []
    for name, query in re.findall(r'"/api/v1/analyses/(\w+)\?([^"]*)"', APP_JS.read_text()):
        params = {k: int(v) if v.isdigit() else v for k, v in parse_qsl(query)}
        asked.append((name, params))
    assert asked == list(DASHBOARD_ANALYSES)


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
        kept = {key[2:4] for key in registry._RESULTS if key[:2] == (store.instance, store.data_version)}
        for name, params in DASHBOARD_ANALYSES:
            request = registry.load_all()[name].request(**params).model_dump_json()
            assert (name, request) in kept
    finally:
        warmer.stop()
        stop_workspace(live)
