"""The data-quality page (`/quality`) and the overview's alerts in real Chromium against a real
`accountlens serve` of a small demo workspace with a tracking plan that some loaded events
break: the violations, anomalies and reconciliation panels draw, the violation counts are the
REST API's, the overview lists the recorded alerts; no console error, no request leaves the
server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from accountlens.config import CONFIG_FILE
from tests.conftest import Server, start_server
from tests.test_dashboard import CHROMIUM, Watched, drawn, launch, open_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")

PLAN = {"events": {"Report Created": {"type": "object", "required": ["report_id"],
                                      "properties": {"rows": {"type": "integer", "minimum": 0}}}}}


def _track(n: int, props: dict, at: str, library: str) -> dict:
    return {"type": "track", "event": "Report Created", "userId": "quality-u1", "messageId": f"q{n}",
            "timestamp": at, "properties": props,
            "context": {"library": {"name": library, "version": "1.0.0"}}}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Server]:
    from accountlens.demo.simulator import generate_demo

    base = tmp_path_factory.mktemp("quality")
    root = base / "demo"
    generate_demo(root, accounts=6, seed=11)
    plan = base / "plan.json"
    plan.write_text(json.dumps(PLAN))
    subprocess.run([sys.executable, "-m", "accountlens", "plan", "import", str(plan), "--dir", str(root),
                    "--note", "reports need an id"], check=True, capture_output=True)
    # a rule that fires on the demo (an account has more active users than seats), no webhooks
    with (root / CONFIG_FILE).open("a") as config:
        config.write('\n[[alerts.rules]]\nname = "seats_full"\nkind = "seat_cap"\n'
                     'action = "Offer more seats"\nowner = "account_owner"\n')
    subprocess.run([sys.executable, "-m", "accountlens", "alerts", "run", "--dir", str(root)],
                   check=True, capture_output=True)
    server = start_server(root)
    try:
        at = server.status()["last_event_at"]
        events = [_track(1, {"rows": -1}, at, "analytics-node"),  # required, minimum
                  _track(2, {"rows": 2}, at, "analytics-node"),  # required
                  _track(3, {"report_id": "r-3", "rows": 1}, at, "analytics-python"),  # valid
                  _track(4, {}, at, "analytics-python")]  # required
        httpx.post(server.ingest_url + "/v1/batch", content=json.dumps({"batch": events}),
                   auth=(server.write_key, ""), timeout=10).raise_for_status()
        server.flush()
        yield server
    finally:
        server.stop()


def _get(server: Server, path: str, **params):
    response = httpx.get(server.url + path, params=params, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def test_quality_page_and_overview_alerts(served: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    violations = _get(served, "/api/v1/plan/violations")
    planned = [r for r in violations if r["event"] == "Report Created"]
    by_rule = {(r["library"], r["rule"]): r["violations"] for r in planned}
    assert by_rule == {("analytics-node", "required"): 2, ("analytics-node", "minimum"): 1,
                       ("analytics-python", "required"): 1}
    anomalies = _get(served, "/api/v1/analyses/anomalies")
    reconcile = _get(served, "/api/v1/analyses/reconcile")
    alerts = _get(served, "/api/v1/alerts", limit=10)

    watched = Watched(served.url)
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = open_page(context, served.url + "/quality", watched)
        assert page.inner_text("#main h1") == "Data quality"
        assert page.locator('#nav-list a[aria-current="page"]').inner_text() == "Data quality"
        assert page.locator("#main .error").all_inner_texts() == []

        # the violation counts are the API's, row by row and in total
        shown = page.eval_on_selector_all(
            "#violations-table tbody tr", """rows => rows.map((tr) => {
              const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent);
              return [cells[0], cells[2], Number(tr.cells[4].dataset.value)]; })""")
        assert shown == [[r["event"], r["rule"], r["violations"]] for r in violations]
        total = sum(r["violations"] for r in violations)
        assert page.get_attribute("#panel-violations .panel-body", "data-total") == str(total)
        assert "version 1" in page.inner_text("#panel-violations")

        # findings: as many as the API has, accounts linked to their page
        for name, result in (("anomalies", anomalies), ("reconcile", reconcile)):
            count = result.get("total_rows") or len(result["rows"])
            assert page.get_attribute(f"#panel-{name} .panel-body", "data-rows") == str(count), name
            linked = [r["account_id"] for r in result["rows"][:100] if r.get("account_id")]
            hrefs = page.eval_on_selector_all(f"#panel-{name} tbody a", "as => as.map((a) => a.getAttribute('href'))")
            assert [h.split("?")[0] for h in hrefs] == [f"/accounts/{a}" for a in linked], name

        page.screenshot(path=str(tmp_path / "quality.png"), full_page=True)

        # the overview's alerts: the latest recorded, with their delivery state
        page.click('#nav-list a:text("Overview")')
        drawn(page)
        text = page.inner_text("#panel-alert-history")
        assert alerts, "the seat_cap rule fires on the demo"
        assert page.locator("#alerts-table tbody tr").count() == len(alerts)
        assert alerts[0]["title"] in text
        hrefs = page.eval_on_selector_all("#alerts-table tbody a", "as => as.map((a) => a.getAttribute('href'))")
        assert [h.split("?")[0] for h in hrefs] == [f"/accounts/{a['account_id']}" for a in alerts if a["account_id"] != "*"]
        assert page.locator("#panel-alert-history .error").count() == 0
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
        browser.close()
    assert watched.outside == []
    assert watched.errors == []


def test_quality_page_is_a_page_of_the_server(served: Server) -> None:
    response = httpx.get(served.url + "/quality", headers={"Accept": "text/html"}, timeout=10)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


def test_violation_panel_without_a_plan(empty_server: Server) -> None:
    """A workspace without a tracking plan says so in its panel; the others still draw."""
    from playwright.sync_api import sync_playwright

    server = empty_server
    watched = Watched(server.url)
    with sync_playwright() as pw:
        browser = launch(pw)
        page = open_page(browser.new_context(), server.url + "/quality", watched)
        assert "No tracking plan" in page.inner_text("#panel-violations")
        assert page.locator("#main .error").all_inner_texts() == []
        browser.close()
    assert watched.outside == []
    assert watched.errors == []
