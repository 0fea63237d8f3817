"""The web app's pages in real Chromium against a real `accountlens serve` of a generated demo
workspace (30 accounts): every page loads from its own URL at desktop and phone width without
console errors or requests outside the server, its charts drawn; the as-of picker and the
filters change the numbers as the API says; drill-down, back/forward, CSV, accessibility.
Screenshots of every page at both widths are kept under pytest's temporary folder
(`screenshots/`; the path is printed)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import Server, start_server
from tests.test_dashboard import CHROMIUM, Watched, drawn, launch, open_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")

WIDTHS = {"desktop": 1400, "phone": 390}
ANALYSES = ("retention", "handoffs", "stalls", "collaboration", "sequences", "paths", "champions",
            "signals", "value", "health", "renewals", "predict", "backtest")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Server]:
    from accountlens.demo.simulator import generate_demo

    root = tmp_path_factory.mktemp("web") / "demo"
    generate_demo(root, accounts=30, seed=7)
    server = start_server(root)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("screenshots", numbered=False)
    print(f"\nscreenshots: {folder}")
    return folder


def api(server: Server, path: str, **params) -> dict:
    response = httpx.get(server.url + path, params=params, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def ids(served: Server) -> dict[str, str]:
    """An account with users and activity (the largest by ARR), and its most active user."""
    top = api(served, "/api/v1/analyses/accounts", limit=1)["rows"][0]
    detail = api(served, f"/api/v1/accounts/{top['account_id']}")
    user = max(detail["users"], key=lambda u: u["events_30d"])
    return {"account": top["account_id"], "account_name": top["account_name"],
            "user": user["user_id"], "user_name": user["name"] or user["email"] or user["user_id"]}


def page_paths(ids: dict[str, str]) -> dict[str, str]:
    return {"overview": "/", "accounts": "/accounts", "account": f"/accounts/{ids['account']}",
            "user": f"/users/{ids['user']}", "analyses": "/analyses", "signin": "/signin",
            **{f"analysis-{name}": f"/analyses/{name}" for name in ANALYSES}}


def test_every_page_loads_from_its_url_at_both_widths(served: Server, browser, ids, shots) -> None:
    """Each page, opened directly from its URL (desktop), or reached inside the app (phone:
    the history API, as a link inside the app does), draws every panel (no panel shows an
    error), its Plotly charts have SVG with marks in it, nothing is asked of any other host,
    the console has no error; at 390 px nothing is wider than the screen (tables scroll inside
    their box). (Reaching the phone pages inside the app saves Plotly's start, ~1 s a load.)"""
    watched = Watched(served.url)
    charted = {"overview", "account", "user", "analysis-retention", "analysis-handoffs",
               "analysis-stalls", "analysis-paths", "analysis-champions", "analysis-health"}
    for width_name, width in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": 900})
        inside = None
        for name, path in page_paths(ids).items():
            if width_name == "desktop":
                page = open_page(context, served.url + path, watched)
            else:
                page = inside = inside or open_page(context, served.url + "/", watched)
                page.evaluate("(url) => { history.pushState(null, '', url); dispatchEvent(new PopStateEvent('popstate')); }", path)
                drawn(page)
            assert page.locator("#main h1").count() == 1, name
            errors = page.locator("#main .error").all_inner_texts()
            assert errors == [], f"{name}: {errors}"
            charts = page.locator("#main .chart").count()
            if name in charted:
                assert charts > 0, f"{name} draws no chart"
            marks = page.evaluate("""() => [...document.querySelectorAll('#main .chart .main-svg')]
                .filter((svg) => svg.querySelector('.plot path, .plot rect, .heatmaplayer image, .pielayer path, .trace path')).length""")
            assert marks >= charts > 0 or charts == 0, f"{name}: {marks} of {charts} charts have marks"
            if width <= 390:
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= width, f"{name} is {scroll} px wide on a {width} px screen"
            page.screenshot(path=str(shots / f"{name}-{width_name}.png"), full_page=True)
            if page is not inside:
                page.close()
        context.close()
    assert watched.outside == []
    assert watched.errors == []


def test_graphs_of_handoffs_are_drawn(served: Server, browser, ids) -> None:
    watched = Watched(served.url)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = open_page(context, served.url + f"/accounts/{ids['account']}", watched)
    pairs = api(served, "/api/v1/analyses/handoffs", view="pairs", account=ids["account"], limit=100)["rows"]
    assert pairs, "the demo's largest account hands work around"
    graph = page.locator("#panel-handoffs svg.graph")
    assert graph.locator("circle").count() == len({p["from_actor"] for p in pairs} | {p["to_actor"] for p in pairs})
    assert graph.locator("path[marker-end]").count() == len([p for p in pairs if p["from_actor"] != p["to_actor"]])
    context.close()
    assert watched.errors == []


def test_as_of_and_filters_change_every_number(served: Server, browser) -> None:
    """The overview as of an earlier day, then of one industry, shows what the API answers for
    that day and that industry."""
    watched = Watched(served.url)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = open_page(context, served.url + "/", watched)
    latest = api(served, "/api/v1/metrics/table", names=["active_accounts", "mau", "arr"], level="all")
    assert page.input_value("#as-of") == latest["as_of"]

    def card(key: str) -> float:
        return float(page.get_attribute(f'.card[data-key="{key}"]', "data-value"))

    assert card("mau") == latest["rows"][0]["mau"]
    earlier = (dt.date.fromisoformat(latest["as_of"]) - dt.timedelta(days=120)).isoformat()
    page.fill("#as-of", earlier)
    page.wait_for_url(re.compile(rf"as_of={earlier}"))
    drawn(page)
    then = api(served, "/api/v1/metrics/table", names=["active_accounts", "mau", "arr"], level="all",
               as_of=earlier)["rows"][0]
    assert card("mau") == then["mau"] != latest["rows"][0]["mau"]
    assert card("arr") == pytest.approx(then["arr"])
    grades = [api(served, "/api/v1/analyses/accounts", grade=g, limit=1, as_of=earlier) for g in
              ("healthy", "concerning", "poor", "unknown")]
    assert card("accounts") == sum(g["total_rows"] or len(g["rows"]) for g in grades)
    activity = api(served, "/api/v1/analyses/activity", as_of=earlier)
    assert activity["rows"][-1]["period"].startswith(earlier)

    industries = api(served, "/api/v1/metrics/mau", level="industry")["rows"]
    industry = max(industries, key=lambda r: r["mau"])["industry"]
    page.wait_for_selector(f'#filter-industry option[value="{industry}"]', state="attached")
    page.select_option("#filter-industry", industry)
    page.wait_for_url(re.compile("industry="))
    drawn(page)
    sliced = api(served, "/api/v1/metrics/table", names=["active_accounts", "mau", "arr"], level="all",
                 as_of=earlier, industry=industry)["rows"][0]
    assert card("mau") == sliced["mau"] < then["mau"]
    assert card("active_accounts") == sliced["active_30d"]
    counted = [api(served, "/api/v1/analyses/accounts", grade=g, limit=1, as_of=earlier, industry=industry)
               for g in ("healthy", "concerning", "poor", "unknown")]
    assert card("accounts") == sum(g["total_rows"] or len(g["rows"]) for g in counted)
    # the state is in the link: opened anew, the page shows the same
    again = open_page(context, page.url, watched)
    assert again.get_attribute('.card[data-key="mau"]', "data-value") == page.get_attribute('.card[data-key="mau"]', "data-value")
    assert again.input_value("#as-of") == earlier and again.input_value("#filter-industry") == industry
    context.close()
    assert watched.errors == [] and watched.outside == []


def test_accounts_list_filters_sorts_and_pages_on_the_server(served: Server, browser) -> None:
    watched = Watched(served.url)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = open_page(context, served.url + "/accounts", watched)
    everything = api(served, "/api/v1/analyses/accounts", limit=50)
    names = page.locator("#accounts-table tbody tr td:first-child a").all_inner_texts()
    assert names == [r["account_name"] for r in everything["rows"]]  # names, largest ARR first
    assert page.locator("#accounts-table svg.sparkline").count() == len(everything["rows"])

    page.click("#accounts-table th button:has-text('MAU')")
    page.wait_for_url(re.compile("sort=mau"))
    drawn(page)
    by_mau = api(served, "/api/v1/analyses/accounts", limit=50, sort="mau", descending=True)
    assert page.locator("#accounts-table tbody tr td:first-child a").all_inner_texts() == \
        [r["account_name"] for r in by_mau["rows"]]

    page.select_option("#filter-grade", "healthy")
    page.wait_for_url(re.compile("grade=healthy"))
    drawn(page)
    healthy = api(served, "/api/v1/analyses/accounts", limit=50, sort="mau", descending=True, grade="healthy")
    shown = page.locator("#accounts-table tbody tr td:first-child a").all_inner_texts()
    assert shown == [r["account_name"] for r in healthy["rows"]] and 0 < len(shown) < len(names)

    # back and forward restore the state: the filter, the sort, and what the table shows
    page.go_back()
    page.wait_for_url(re.compile(r"sort=mau(?!.*grade)"))
    drawn(page)
    assert page.input_value("#filter-grade") == ""
    assert len(page.locator("#accounts-table tbody tr").all()) == len(by_mau["rows"])
    page.go_forward()
    page.wait_for_url(re.compile("grade=healthy"))
    drawn(page)
    assert page.input_value("#filter-grade") == "healthy"
    assert page.locator("#accounts-table tbody tr td:first-child a").all_inner_texts() == shown

    # search, then a page of 50 of many: the server pages (offset/limit)
    page.fill("#filter-q", healthy["rows"][0]["account_name"][:6])
    page.wait_for_url(re.compile("q="))
    drawn(page)
    query = parse_qs(urlsplit(page.url).query)
    searched = api(served, "/api/v1/analyses/accounts", limit=50, sort="mau", descending=True,
                   grade="healthy", q=query["q"][0])
    assert page.locator("#accounts-table tbody tr td:first-child a").all_inner_texts() == \
        [r["account_name"] for r in searched["rows"]]
    context.close()
    assert watched.errors == [] and watched.outside == []


def test_csv_download_has_every_row(served: Server, browser) -> None:
    watched = Watched(served.url)
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = open_page(context, served.url + "/accounts?industry=retail", watched)
    with page.expect_download() as download:
        page.click("#panel-accounts button.csv")
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = api(served, "/api/v1/analyses/accounts", limit=1000, industry="retail")["rows"]
    assert [r["account_id"] for r in rows] == [r["account_id"] for r in expected]
    assert download.value.suggested_filename.startswith("accounts-")
    context.close()


def test_drill_down_account_user_account_and_back(served: Server, browser, ids) -> None:
    watched = Watched(served.url)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = open_page(context, served.url + "/accounts", watched)
    page.click(f"#accounts-table a:text-is('{ids['account_name']}')")
    page.wait_for_url(re.compile(rf"/accounts/{ids['account']}$"))
    drawn(page)
    assert page.inner_text("#main h1") == ids["account_name"]
    detail = api(served, f"/api/v1/accounts/{ids['account']}")
    assert float(page.get_attribute('.card[data-key="arr"]', "data-value")) == pytest.approx(detail["contract"]["arr"])
    assert page.locator("a:has-text('Print review')").get_attribute("href").startswith(f"/reports/accounts/{ids['account']}")

    page.click(f"#users-table a[href^='/users/{ids['user']}']")
    page.wait_for_url(re.compile(rf"/users/{ids['user']}$"))
    drawn(page)
    assert page.inner_text("#main h1") == ids["user_name"]
    user = api(served, f"/api/v1/users/{ids['user']}")
    assert page.locator("#user-accounts-table tbody tr").count() == len(user["accounts"])

    page.click(f"#user-accounts-table a[href^='/accounts/{ids['account']}']")
    page.wait_for_url(re.compile(rf"/accounts/{ids['account']}$"))
    drawn(page)
    assert page.inner_text("#main h1") == ids["account_name"]
    page.go_back()
    page.wait_for_url(re.compile(rf"/users/{ids['user']}$"))
    drawn(page)
    assert page.inner_text("#main h1") == ids["user_name"]
    page.go_back()
    page.go_back()
    page.wait_for_url(re.compile(r"/accounts$"))
    drawn(page)
    assert page.locator("#accounts-table").count() == 1
    context.close()
    assert watched.errors == [] and watched.outside == []


def test_unknown_pages_and_api_paths(served: Server, browser) -> None:
    """A page path that names nothing is the app's "not found" page (404); an unknown API path
    stays a JSON 404 in the API's error shape."""
    missing = httpx.get(served.url + "/api/v1/nothing-here", timeout=10)
    assert missing.status_code == 404 and missing.json()["success"] is False
    page_404 = httpx.get(served.url + "/no-such-page", headers={"Accept": "text/html"}, timeout=10)
    assert page_404.status_code == 404 and "<main" in page_404.text
    unknown_account = httpx.get(served.url + "/api/v1/accounts/no-such-account", timeout=30)
    assert unknown_account.status_code == 404
    watched = Watched(served.url)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = open_page(context, served.url + "/no-such-page", watched)
    assert page.inner_text("#main h1") == "Page not found"
    page = open_page(context, served.url + "/accounts/no-such-account", watched)
    assert "no-such-account" in page.locator("#main .error").first.inner_text()
    context.close()


def test_no_serious_accessibility_violations(served: Server, browser, ids) -> None:
    """axe-core on the main pages: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    watched = Watched(served.url)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    found: dict[str, list[str]] = {}
    for name in ("overview", "accounts", "account", "user", "analysis-handoffs", "analysis-retention", "signin"):
        page = open_page(context, served.url + page_paths(ids)[name], watched)
        results = axe.run(page)
        serious = [f"{v['id']}: {v['help']} ({len(v['nodes'])}×, e.g. {v['nodes'][0]['target']})"
                   for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        if serious:
            found[name] = serious
        page.close()
    context.close()
    assert found == {}


def test_predictions_drivers_and_calibration(tmp_path_factory, browser) -> None:
    """On a workspace with enough outcomes to learn from (tests/outcome_world.py): the account
    page shows the API's churn probability and draws its drivers; the backtest page draws the
    calibration of every source it measured."""
    from tests import outcome_world

    ws = outcome_world.build(tmp_path_factory.mktemp("outcomes"), accounts=200,
                             prediction={"max_training_cutoffs": 6, "backtest_cutoffs": 2})
    root = ws.root
    ws.close()
    server = start_server(root)
    try:
        top = api(server, "/api/v1/analyses/predict", outcome="churn", limit=1)["rows"][0]
        watched = Watched(server.url)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = open_page(context, server.url + f"/accounts/{top['account_id']}", watched, timeout_ms=240_000)
        churn = page.locator('#panel-outlook .outcome[data-outcome="churn"]')
        assert float(churn.locator("[data-probability]").get_attribute("data-probability")) == pytest.approx(top["probability"])
        assert churn.locator(".chart .main-svg .trace").count() >= 1
        assert top["drivers"][0]["feature"].replace("_", " ").lower() in churn.inner_text().lower()

        page = open_page(context, server.url + "/analyses/backtest", watched, timeout_ms=240_000)
        calibration = api(server, "/api/v1/analyses/backtest", outcome="churn", view="calibration", limit=1000)["rows"]
        sources = {r["source"] for r in calibration}
        assert sources and page.locator("#panel-calibration .chart .scatterlayer .trace").count() == len(sources) + 1
        assert page.locator("#backtest-table tr.used").count() == 1  # the model the predictions use
        context.close()
        assert watched.errors == [] and watched.outside == []
    finally:
        server.stop()
