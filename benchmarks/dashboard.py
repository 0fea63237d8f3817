"""Dashboard page times: `accountlens serve` over the analytics workspace, loaded in headless
Chromium (Playwright, Debian's browser — never a downloaded one) until every panel has rendered."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.http_ingest import HOST, Server, _request
from benchmarks.measure import timed
from benchmarks.registry import Context, Row, Skipped, benchmark
from benchmarks.workspace import bench_workspace

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
RENDER_TIMEOUT_MS = 900_000
WARM_LOADS = 2
# Every panel has rendered: the status cards exist, every table has its body (rows or "none"),
# every chart has its SVG (when plotly loaded). app.js writes a failure into #updated.
RENDERED = """() => {
  const failed = (document.getElementById("updated")?.textContent || "").includes("Error");
  if (failed) return "error: " + document.getElementById("updated").textContent;
  const cards = document.querySelectorAll("#cards .card").length > 0;
  const tables = [...document.querySelectorAll("table")].every((t) => t.tBodies.length > 0);
  const charts = [...document.querySelectorAll(".chart")]
    .every((c) => !window.Plotly || c.querySelector(".main-svg"));
  return cards && tables && charts;
}"""


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def load_page(browser, url: str) -> tuple[float, dict[str, float]]:
    """(seconds until every panel rendered, {API path: ms}) of one load in a fresh context
    (empty browser cache); each API call's time is the browser's request start → response end."""
    context = browser.new_context()
    api: dict[str, float] = {}

    def finished(request) -> None:
        path = _path(request.url)
        if path.startswith("/api/v1/") and path not in api:  # /status is polled again later
            api[path] = request.timing["responseEnd"]

    try:
        page = context.new_page()
        page.on("requestfinished", finished)
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        state = page.wait_for_function(RENDERED, timeout=RENDER_TIMEOUT_MS).json_value()
        seconds = time.perf_counter() - started
        if state is not True:
            raise RuntimeError(f"the dashboard failed: {state}")
        return seconds, api
    finally:
        context.close()


def _direct(port: int, paths: list[str]) -> float:
    """Seconds to fetch `paths` one after the other straight from the API, without a browser."""
    seconds = 0.0
    for path in paths:
        spent, (status, body) = timed(lambda p=path: _request(port, "GET", p, timeout=600))
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body}")
        seconds += spent
    return seconds


@benchmark("dashboard", "Dashboard page times (headless Chromium)", order=80,
           requires=("workspace",))
def dashboard_benchmark(ctx: Context) -> list[Row]:
    """`accountlens serve` runs on a loopback port over the analytics workspace; headless Chromium
    opens the dashboard in a fresh browser context and the page counts as loaded when every
    panel has rendered (status cards, every table filled, every chart drawn). Cold: the first
    load after the server started (its caches and DuckDB's empty). Warm: the best of two
    further loads, each with an empty browser cache. The per-call rows are the browser's timing
    of each `/api/v1/...` request of the warm load (cold in the note). Baseline: the same API
    calls fetched one after the other straight from the server without a browser (warm) — the
    page can not be faster than its data; the ratio shows what the browser, the sequential
    fetches and the rendering add."""
    if not CHROMIUM.exists():
        raise Skipped(f"{CHROMIUM} is not installed (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    bw = bench_workspace(ctx)
    server = Server.start(bw.path, bw.path.parent / "serve.log")
    url = f"http://{HOST}:{server.port}/"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=LAUNCH_ARGS)
            try:
                cold_s, cold_api = load_page(browser, url)
                ctx.log(f"dashboard: cold load {cold_s:.1f} s")
                warm = [load_page(browser, url) for _ in range(WARM_LOADS)]
            finally:
                browser.close()
        warm_s, warm_api = min(warm, key=lambda run: run[0])
        direct_s = _direct(server.port, list(warm_api))
    finally:
        server.stop()
    rows = [
        Row("dashboard.cold", "page until every panel rendered, cold", cold_s, "s",
            baseline="dashboard.api_direct",
            note=f"{len(cold_api)} API calls, first load after `accountlens serve` started"),
        Row("dashboard.warm", "page until every panel rendered, warm", warm_s, "s",
            baseline="dashboard.api_direct", note=f"best of {WARM_LOADS} loads"),
        Row("dashboard.api_direct", "baseline: its API calls fetched directly, one by one",
            direct_s, "s", note="warm, no browser"),
    ]
    for number, (path, ms) in enumerate(warm_api.items()):
        cold = cold_api.get(path)
        rows.append(Row(f"dashboard.api.{number}", f"  `GET {path}`", ms / 1000, "s",
                        note=f"cold {cold / 1000:.2f} s" if cold is not None else ""))
    return rows
