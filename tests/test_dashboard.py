"""The dashboard in real headless Chromium (Debian's), driven by Playwright, against a real server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from accountlens.api.dashboard import PANELS
from tests.conftest import Server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_dashboard_shows_workspace_status_offline(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    events = [{"type": "track", "messageId": f"m{i}", "userId": "u1", "event": "Clicked",
               "timestamp": "2024-01-01T00:00:00Z", "context": {"groupId": "acme"}} for i in range(7)]
    events.append({"type": "track", "messageId": "q", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z"})
    httpx.post(server.url + "/v1/batch", content=json.dumps({"batch": events}),
               auth=(server.write_key, ""), timeout=10).raise_for_status()
    server.flush()
    outside_requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page()
        page.on("request", lambda r: None if r.url.startswith(server.url) else outside_requests.append(r.url))
        page.goto(server.url + "/")
        page.wait_for_selector('.card[data-key="events"] .value')
        assert page.inner_text('.card[data-key="events"] .value') == "7"
        assert page.inner_text('.card[data-key="accounts"] .value') == "1"
        assert page.inner_text('.card[data-key="quarantined"] .value') == "1"
        assert "track without event name" in page.inner_text("#quarantine")
        assert "explicit" in page.inner_text("#attribution")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        browser.close()
    assert outside_requests == []  # no CDN: usable offline


def test_dashboard_shows_multi_user_analyses(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests import fixtures_b2b
    from tests.conftest import start_server

    fixtures_b2b.build(tmp_path).close()
    server = start_server(tmp_path / "ws")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url.removeprefix(server.url))
                    if r.url.startswith(server.url + "/api/v1/analyses/") else None)
            page.goto(server.url + "/")
            for table in ("#bottlenecks", "#champions", "#sequences", "#collaboration", "#stalls"):
                page.wait_for_selector(f"{table} tbody tr td")
            page.wait_for_selector("#bottlenecks-chart .main-svg")  # plotly rendered, served locally
            page.wait_for_selector("#ttv-chart .main-svg")
            # the page renders the panels GET /api/v1/dashboard lists, in its order, each
            # headed by the day its analysis is as of
            assert asked == [f"/api/v1/analyses/{p.analysis}?{urlencode(p.params)}" for p in PANELS]
            headings = [" ".join(h.split()) for h in page.locator("#panels section h2").all_inner_texts()]
            assert [h.split(" as of ")[0].split(" (")[0] for h in headings] == [p.title for p in PANELS]
            assert all(re.search(r"as of \d{4}-\d{2}-\d{2}$", h) for h in headings), headings
            assert "editor" in page.inner_text("#bottlenecks")
            assert "ann" in page.inner_text("#champions")
            assert "w2" in page.inner_text("#stalls")
            assert page.locator("#champions tr.risk-low").count() == 1
            page.screenshot(path=str(Path("/tmp") / "accountlens-dashboard.png"), full_page=True)
            browser.close()
        assert errors == []
    finally:
        server.stop()
