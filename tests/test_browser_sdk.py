"""Real browser SDKs in headless Chromium against a real `accountlens serve`, through CORS.

npm's @segment/analytics-next and posthog-js are installed from the npm registry and bundled
with esbuild at test time (cached in the temp folder by package versions); a page on another
loopback origin loads a bundle and sends identify, group and track with the workspace's write
key. The events must arrive with the right user, account and name, and a page on an origin the
key does not allow must be blocked by the browser.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from accountlens.workspace import Workspace
from tests.conftest import Server, free_port, start_server
from tests.test_collector import events_of
from tests.test_dashboard import CHROMIUM, LAUNCH_ARGS

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")

# Pinned, so that a cached bundle is what the test asked for (raise them together, on purpose).
SDK_PACKAGES = {"@segment/analytics-next": "1.84.3", "posthog-js": "1.449.2", "esbuild": "0.28.2"}
ENTRIES = {
    "segment.js": "import { AnalyticsBrowser } from '@segment/analytics-next'\n"
                  "window.AnalyticsBrowser = AnalyticsBrowser\n",
    "posthog.js": "import posthog from 'posthog-js'\nwindow.posthog = posthog\n",
}
BUNDLES = Path(tempfile.gettempdir()) / "accountlens-browser-sdk"
KEY = "wk_browser"


@pytest.fixture(scope="session")
def sdk_bundles() -> Path:
    """A folder with segment.js and posthog.js, bundled from the npm registry (once per
    package versions: later runs take the cached folder)."""
    version = hashlib.sha256(json.dumps([SDK_PACKAGES, ENTRIES], sort_keys=True).encode())
    folder = BUNDLES / version.hexdigest()[:16]
    if all((folder / name).is_file() for name in ENTRIES):
        return folder
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("node and npm are needed to bundle the browser SDKs from the npm registry")
    BUNDLES.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix="build-", dir=BUNDLES))
    try:
        (build / "package.json").write_text(json.dumps(
            {"name": "accountlens-browser-sdk-test", "private": True, "dependencies": SDK_PACKAGES}))
        for name, source in ENTRIES.items():
            (build / "entry" / name).parent.mkdir(exist_ok=True)
            (build / "entry" / name).write_text(source)
        # No install scripts: esbuild's binary comes in its platform package all the same.
        steps = [[npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                 [str(build / "node_modules" / ".bin" / "esbuild"),
                  *[f"entry/{name}" for name in ENTRIES], "--bundle", "--format=iife", "--minify",
                  "--outdir=out", "--log-level=warning"]]
        for step in steps:
            done = subprocess.run(step, cwd=build, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                pytest.skip(f"could not bundle the browser SDKs ({Path(step[0]).name} exited "
                            f"{done.returncode}): {done.stderr.strip()[-500:]}")
        if not folder.exists():  # (another run may have finished first)
            (build / "out").rename(folder)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return folder


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_origins(sdk_bundles: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two loopback origins serving the same test page: one the write key allows, one not."""
    site = tmp_path / "site"
    site.mkdir()
    for name in ENTRIES:
        shutil.copy(sdk_bundles / name, site / name)
    (site / "index.html").write_text("<!doctype html><link rel=icon href='data:,'>"
                                     "<title>app on another origin</title>\n")
    servers = []
    for _ in range(2):
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                                partial(_Quiet, directory=str(site)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
    yield tuple(f"http://127.0.0.1:{httpd.server_address[1]}" for httpd in servers)  # type: ignore[misc]
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def browser_server(tmp_path: Path, page_origins: tuple[str, str]) -> Iterator[Server]:
    """`accountlens serve` whose write key allows the first page origin only."""
    root = tmp_path / "ws"
    Workspace.init(root, name="browser").close()
    config = root / "accountlens.toml"
    text = re.sub(r"write_keys = \[.*\]", f'write_keys = ["{KEY}"]', config.read_text())
    config.write_text(text.replace("[workspace.origins]\n",
                                   f'[workspace.origins]\n"{KEY}" = ["{page_origins[0]}"]\n', 1))
    server = start_server(root)
    yield server
    server.stop()


SEGMENT_CALLS = """async ({host, key}) => {
  const [analytics] = await window.AnalyticsBrowser.load(
    // Settings given here, so analytics.js asks no CDN for them; no remote metrics either.
    { writeKey: key, cdnSettings: { integrations: { 'Segment.io': { apiKey: key } },
                                    metrics: { sampleRate: 0 } } },
    { integrations: { 'Segment.io': { apiHost: host.replace('http://', '') + '/v1',
                                      protocol: 'http' } } })
  await analytics.identify('ann', { email: 'ann@acme.com', role: 'trainer' })
  await analytics.group('acme', { name: 'Acme' })
  await analytics.track('Report Created', { object_id: 'report-1' })
}"""

POSTHOG_CALLS = """({host, key}) => {
  window.posthog.init(key, {
    api_host: host, request_batching: false, persistence: 'localStorage',
    // no remote config, flags, surveys, recordings or autocapture: only the calls below
    advanced_disable_flags: true, disable_external_dependency_loading: true,
    disable_session_recording: true, disable_surveys: true, autocapture: false,
    capture_pageview: false, capture_pageleave: false,
    opt_out_useragent_filter: true,  // headless Chromium's user agent reads as a bot's
  })
  window.posthog.identify('cat', { email: 'cat@acme.com', role: 'executive' })
  window.posthog.group('company', 'acme', { name: 'Acme' })
  window.posthog.capture('Dashboard Viewed', { object_id: 'dashboard-1' })
}"""


def run_page(origin: str, server: Server, bundle: str, calls: str,
             expected_posts: int) -> tuple[list[tuple[str, int]], list[str], list[str]]:
    """Open the page on `origin`, load `bundle`, run `calls`; the collector's answers to the
    page's POSTs, the failed requests and the console, once `expected_posts` POSTs are done
    (answered or failed) or 20 s have passed."""
    from playwright.sync_api import sync_playwright

    answered: list[tuple[str, int]] = []
    failed: list[str] = []
    console: list[str] = []
    elsewhere: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page()
        ours = (server.url, origin)
        page.on("request", lambda r: None if r.url.startswith(ours) else elsewhere.append(r.url))
        page.on("response", lambda r: answered.append((r.url, r.status))
                if r.url.startswith(server.url) and r.request.method == "POST" else None)
        page.on("requestfailed", lambda r: failed.append(f"{r.method} {r.url}: {r.failure}")
                if r.url.startswith(server.url) else None)
        page.on("console", lambda m: console.append(m.text))
        page.goto(origin + "/index.html")
        page.add_script_tag(url=f"{origin}/{bundle}")
        page.evaluate(calls, {"host": server.url, "key": KEY})
        deadline = time.time() + 20
        while len(answered) + len([f for f in failed if f.startswith("POST")]) < expected_posts:
            if time.time() > deadline:
                break
            page.wait_for_timeout(100)
        page.wait_for_timeout(300)  # anything else it would send
        browser.close()
    assert elsewhere == [], "the SDK reached beyond the page and the collector"
    return answered, failed, console


def _wait_for_events(server: Server, count: int) -> None:
    """Until the store holds `count` events (SDKs may still be retrying when a page closes)."""
    deadline = time.time() + 20
    while True:
        server.flush()
        if server.status()["events"] >= count:
            return
        assert time.time() < deadline, f"fewer than {count} events arrived"
        time.sleep(0.2)


def _by_name(events: dict[str, dict]) -> dict[tuple[str, str | None], dict]:
    return {(e["type"], e["name"]): e for e in events.values()}


def test_segment_analytics_next_sends_through_cors(browser_server: Server,
                                                   page_origins: tuple[str, str]) -> None:
    allowed, stranger = page_origins
    answered, failed, _ = run_page(allowed, browser_server, "segment.js", SEGMENT_CALLS, 3)
    assert [status for _, status in answered] == [200, 200, 200], (answered, failed)
    assert {url.rsplit("/", 1)[1] for url, _ in answered} == {"i", "g", "t"}

    blocked, failed, console = run_page(stranger, browser_server, "segment.js", SEGMENT_CALLS, 3)
    assert blocked == [] and failed, "a refused origin's POSTs must fail in the browser"
    assert any("blocked by CORS policy" in line for line in console), console
    _wait_for_events(browser_server, 3)
    events = _by_name(events_of(browser_server))
    assert len(events) == 3  # nothing from the refused origin
    identify, group, track = (events[("identify", None)], events[("group", None)],
                              events[("track", "Report Created")])
    assert identify["user_id"] == group["user_id"] == track["user_id"] == "ann"
    assert group["account_id"] == track["account_id"] == "acme"
    assert track["attribution"] == "membership" and track["role"] == "trainer"
    assert json.loads(track["properties"])["object_id"] == "report-1"


def test_posthog_js_sends_through_cors(browser_server: Server,
                                       page_origins: tuple[str, str]) -> None:
    allowed, stranger = page_origins
    answered, failed, _ = run_page(allowed, browser_server, "posthog.js", POSTHOG_CALLS, 3)
    assert answered and all(status == 200 for _, status in answered), (answered, failed)

    blocked, failed, console = run_page(stranger, browser_server, "posthog.js", POSTHOG_CALLS, 3)
    assert blocked == [] and failed, "a refused origin's POSTs must fail in the browser"
    assert any("blocked by CORS policy" in line for line in console), console
    _wait_for_events(browser_server, 3)
    events = _by_name(events_of(browser_server))
    assert len(events) == 3, events.keys()
    identify, group, track = (events[("identify", None)], events[("group", None)],
                              events[("track", "Dashboard Viewed")])
    assert identify["user_id"] == track["user_id"] == "cat"
    assert group["account_id"] == track["account_id"] == "acme"
    assert track["attribution"] == "explicit"  # posthog-js sends $groups with every event
    assert json.loads(track["properties"])["object_id"] == "dashboard-1"
