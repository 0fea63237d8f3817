"""The web app in real headless Chromium (Debian's, never a downloaded browser), driven by
Playwright, against a real `accountlens serve`: it works offline (every request goes to the
server itself), and so do `/docs` and `/redoc`. The helpers here are shared by
tests/test_web_pages.py and tests/test_web_auth.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Every panel has drawn: nothing loading, every Plotly chart has its SVG.
DRAWN = """() => {
  const main = document.getElementById("main");
  if (!main || main.querySelector(".loading, [aria-busy='true']")) return false;
  return [...main.querySelectorAll(".chart")].every((c) => c.querySelector(".main-svg"));
}"""
LOCAL_SCHEMES = ("data:", "blob:", "about:")


@dataclass
class Watched:
    """What a page did that a test checks: console errors, uncaught errors, requests that left
    the server."""

    base: str
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("request", lambda r: None if r.url.startswith((self.base, *LOCAL_SCHEMES))
                else self.outside.append(r.url))


def launch(pw):
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)


def open_page(context, url: str, watched: Watched, timeout_ms: int = 120_000):
    """A new page of `context` at `url`, once every panel has drawn."""
    page = context.new_page()
    watched.attach(page)
    page.goto(url)
    drawn(page, timeout_ms)
    return page


def drawn(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(DRAWN, timeout=timeout_ms)


def test_the_app_shows_a_fresh_workspace_offline(server: Server, tmp_path: Path) -> None:
    """A few events into an empty workspace: the overview counts them, says what was
    quarantined, and asks nothing of the internet (no CDN: usable offline)."""
    from playwright.sync_api import sync_playwright

    events = [{"type": "track", "messageId": f"m{i}", "userId": "u1", "event": "Clicked",
               "timestamp": "2024-01-01T00:00:00Z", "context": {"groupId": "acme"}} for i in range(7)]
    events.append({"type": "track", "messageId": "q", "userId": "u1", "timestamp": "2024-01-01T00:00:00Z"})
    httpx.post(server.url + "/v1/batch", content=json.dumps({"batch": events}),
               auth=(server.write_key, ""), timeout=10).raise_for_status()
    server.flush()
    watched = Watched(server.url)
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = open_page(context, server.url + "/", watched)
        assert page.get_attribute('.card[data-key="accounts"]', "data-value") == "1"
        assert page.get_attribute('.card[data-key="mau"]', "data-value") == "1"
        assert "1 events quarantined" in page.inner_text("#panel-alerts")
        assert "7 events" in page.inner_text("#panel-alerts")
        page.screenshot(path=str(tmp_path / "fresh-overview.png"), full_page=True)
        browser.close()
    assert watched.outside == []
    assert watched.errors == []


def test_api_docs_work_offline(server: Server) -> None:
    """/docs (Swagger UI) and /redoc load their scripts from the server, not a CDN."""
    from playwright.sync_api import sync_playwright

    watched = Watched(server.url)
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        watched.attach(page)
        page.goto(server.url + "/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        assert page.locator(".opblock").count() > 20  # the operations are listed
        assert "/api/v1/analyses/handoffs" in page.inner_text("#swagger-ui")
        page.goto(server.url + "/redoc")
        page.wait_for_selector("[data-section-id]", timeout=30_000)
        assert "accountlens" in page.inner_text("body")
        assert page.locator("[data-section-id]").count() > 20
        browser.close()
    assert watched.outside == []
    assert watched.errors == []
