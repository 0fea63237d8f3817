"""The attribution page (`/attribution`) and the experiments page (`/experiments`) in real
Chromium against a real `accountlens serve` of a small workspace built through the importers:
accounts whose admins, analysts and procurement people touch the product before their renewals,
an active attribution rule set, and an experiment exposed by `Experiment Viewed` events. The
credit chart and table show every role under every model compared, their numbers are the REST
API's; the experiment's variants are drawn with their intervals beside the sample-ratio check;
an empty workspace says how to start an experiment; no console error, no request leaves the
server, and axe-core finds no serious violation."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, start_server
from tests.small_workspace import build
from tests.test_dashboard import CHROMIUM, Watched, drawn, launch, open_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")

ACCOUNTS = [f"acc-{i:02d}" for i in range(24)]
ROLES = ("admin", "analyst", "procurement")
# what each role does, and how many days before the renewal (analysts early, procurement last)
TOUCH = {"admin": ("Report Viewed", 30), "analyst": ("Export Run", 70), "procurement": ("Contract Approved", 6)}
RENEWAL = dt.date(2026, 6, 30)
EXPOSED = dt.date(2026, 5, 1)
MODELS = ["first_touch", "last_touch", "linear", "time_decay", "u_shaped", "role_weighted", "markov", "shapley"]
# the page's request for one model (api/dashboard.py's declared parameters)
CREDIT = {"outcome": "renewal", "by": "role", "value": "count", "resamples": 200, "limit": 500}


# the credit table's rows: the role, then each model's credit (the cells' data-value)
CELLS = """rows => rows.map((tr) => [tr.cells[0].textContent,
    [...tr.cells].slice(3).map((td) => td.dataset.value === undefined ? null : Number(td.dataset.value))])"""


def _track(mid: str, user: str, name: str, at: dt.datetime, props: dict | None = None) -> dict:
    return {"type": "track", "messageId": mid, "userId": user, "event": name,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "properties": props or {}}


def _world(root: Path):
    """24 accounts of 3 people (admin, analyst, procurement); 18 renew on RENEWAL, 6 churn. Each
    person touches the product around their role's day before it (some skip), and everyone
    keeps using it; half the accounts see the `onboarding` treatment on EXPOSED."""
    rng = random.Random(7)
    users = [(f"{a}-{role}", a, role) for a in ACCOUNTS for role in ROLES]
    csvs = {
        "accounts": "account_id,name,domain\n" + "".join(f"{a},Account {a},{a}.example\n" for a in ACCOUNTS),
        "users": "user_id,email,name\n" + "".join(f"{u},{u}@{a}.example,{role.title()} of {a}\n" for u, a, role in users),
        "memberships": "user_id,account_id,role,valid_from\n" + "".join(f"{u},{a},{role},2025-06-01\n" for u, a, role in users),
        "outcomes": "account_id,kind,date,arr_delta\n" + "".join(
            f"{a},{'renewal' if i < 18 else 'churn'},{RENEWAL},{1000 * (i % 4) if i < 18 else -500}\n"
            for i, a in enumerate(ACCOUNTS)),
    }
    events = []
    start = dt.datetime.combine(RENEWAL, dt.time(9), tzinfo=dt.UTC)
    for user, _account, role in users:
        name, days = TOUCH[role]
        if rng.random() < 0.8:
            at = start - dt.timedelta(days=days + rng.randrange(-4, 5), minutes=rng.randrange(300))
            events.append(_track(f"{user}-touch", user, name, at))
        # everyday use before and after the exposure (the experiment's metric is mau)
        for n in range(rng.randrange(2, 8)):
            at = start - dt.timedelta(days=rng.randrange(0, 80), minutes=rng.randrange(600))
            events.append(_track(f"{user}-use{n}", user, "Dashboard Opened", at))
    for i, account in enumerate(ACCOUNTS):
        variant = "treatment" if i % 2 else "control"
        at = dt.datetime.combine(EXPOSED, dt.time(10), tzinfo=dt.UTC)
        events.append(_track(f"{account}-exposed", f"{account}-admin", "Experiment Viewed", at,
                             {"experiment_id": "onboarding", "experiment_name": "New onboarding",
                              "variation_name": variant}))
    return build(root, "pages", csvs, events)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Server]:
    from accountlens.analysis.rule_versions import activate, create_version

    ws = _world(tmp_path_factory.mktemp("attribution-pages"))
    version = create_version(ws.store, {}, "maria", name="defaults, reviewed", note="Reviewed with CS.")
    activate(ws.store, version.version, "maria")
    root = ws.root
    ws.close()
    server = start_server(root)
    try:
        yield server
    finally:
        server.stop()


def _get(server: Server, path: str, **params):
    response = httpx.get(server.url + path, params=params, timeout=180)
    assert response.status_code == 200, response.text
    return response.json()


def _axe_serious(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])}×, e.g. {v['nodes'][0]['target']})"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_attribution_page_compares_models(served: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    rest = {m: _get(served, "/api/v1/analyses/attribution", model=m, **CREDIT) for m in MODELS}
    roles = {r["role"] for r in rest["linear"]["rows"]}
    assert set(ROLES) <= roles
    watched = Watched(served.url)
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = open_page(context, served.url + "/attribution", watched, timeout_ms=240_000)
        assert page.inner_text("#main h1") == "Attribution"
        assert page.locator('#nav-list a[aria-current="page"]').inner_text() == "Attribution"
        assert page.locator("#main .error").all_inner_texts() == []
        rules = page.inner_text("#rules-version")
        assert "version 1" in rules and "activated by maria" in rules, rules

        # the chart: one group of bars per model, every role on the axis, with intervals
        traces = page.eval_on_selector("#panel-credit .chart", """gd => gd.data.map((t) => (
            {name: t.name, x: t.x, y: t.y, intervals: Boolean(t.error_y && t.error_y.array)}))""")
        assert [t["name"] for t in traces] == [m.replace("_", " ").capitalize() for m in MODELS]
        for trace in traces:
            assert set(ROLES) <= set(trace["x"]), trace
            assert trace["intervals"], trace["name"]
        assert page.locator("#panel-credit .chart .main-svg .bars .point").count() >= len(MODELS) * len(ROLES)

        # the table: a row per role, a column per model; each cell is the API's credit
        header = page.eval_on_selector_all("#credit-table thead th", "ths => ths.map((th) => th.textContent.trim())")
        assert header[3:] == [m.replace("_", " ").capitalize() for m in MODELS]
        shown = dict(page.eval_on_selector_all("#credit-table tbody tr", CELLS))
        assert set(ROLES) <= set(shown)
        for i, model in enumerate(MODELS):
            for row in rest[model]["rows"]:
                assert shown[row["role"]][i] == pytest.approx(row["credit"]), (model, row["role"])
        admin = next(r for r in rest["linear"]["rows"] if r["role"] == "admin")
        text = page.inner_text("#credit-table")
        assert f"{admin['credit']:.2f}".rstrip("0").rstrip(".") in text
        assert "renewal outcomes" in page.inner_text("#panel-credit .notes")
        assert _axe_serious(page) == []
        page.screenshot(path=str(tmp_path / "attribution.png"), full_page=True)

        # each outcome worth its ARR change instead of 1
        page.click('label[for="control-value-arr"]')
        drawn(page, 240_000)
        assert "value=arr" in page.url
        arr = _get(served, "/api/v1/analyses/attribution", model="linear", **{**CREDIT, "value": "arr"})
        shown = dict(page.eval_on_selector_all("#credit-table tbody tr", CELLS))
        for row in arr["rows"]:
            assert shown[row["role"]][MODELS.index("linear")] == pytest.approx(row["credit"]), row["role"]
        assert page.eval_on_selector("#panel-credit .chart", "gd => gd.layout.yaxis.title.text") == "credit (ARR)"

        # fewer models, another dimension: the URL keeps them, the chart follows
        page.uncheck("#model-markov")
        drawn(page, 240_000)
        page.uncheck("#model-shapley")
        drawn(page, 240_000)
        assert "models=" in page.url
        names = page.eval_on_selector("#panel-credit .chart", "gd => gd.data.map((t) => t.name)")
        assert names == [m.replace("_", " ").capitalize() for m in MODELS if m not in ("markov", "shapley")]
        page.select_option("#control-by", "feature")
        drawn(page, 240_000)
        features = page.eval_on_selector_all("#credit-table tbody tr", "rows => rows.map((tr) => tr.cells[0].textContent)")
        assert {"Report Viewed", "Export Run", "Contract Approved"} <= set(features)
        page.go_back()
        drawn(page, 240_000)
        assert page.eval_on_selector("#control-by", "s => s.value") == "role"

        # at 390 px: the controls wrap, the table scrolls in its box, the page never sideways
        phone = browser.new_context(viewport={"width": 390, "height": 844})
        small = open_page(phone, served.url + "/attribution", watched, timeout_ms=240_000)
        assert small.evaluate("document.documentElement.scrollWidth") <= 390
        small.screenshot(path=str(tmp_path / "attribution-390.png"), full_page=True)
        browser.close()
    assert watched.outside == []
    assert watched.errors == []


def test_experiments_page_shows_each_variant_and_its_checks(served: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    listed = _get(served, "/api/v1/experiments")
    assert {r["experiment"] for r in listed} == {"onboarding"}
    result = _get(served, "/api/v1/analyses/experiments", experiment="onboarding", metric="mau")
    variants = [r["variant"] for r in result["rows"]]
    assert variants == ["control", "treatment"]
    watched = Watched(served.url)
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = open_page(context, served.url + "/experiments", watched, timeout_ms=240_000)
        assert page.inner_text("#main h1") == "Experiments"
        assert page.locator("#main .error").all_inner_texts() == []

        # the list: the experiment with its accounts per variant
        assert page.locator("#experiments-table tbody tr").count() == 1
        listing = page.inner_text("#experiments-table")
        assert "onboarding" in listing and "control: 12 exposed" in listing and "treatment: 12 exposed" in listing

        # the result: every variant, its interval drawn and written, the API's numbers
        rows = page.eval_on_selector_all("#result-table tbody tr", """rows => rows.map((tr) =>
            ({variant: tr.cells[0].textContent, accounts: Number(tr.cells[1].dataset.value),
              effect: tr.cells[3].dataset.value === undefined ? null : Number(tr.cells[3].dataset.value),
              interval: tr.cells[5].textContent}))""")
        assert [r["variant"] for r in rows] == variants
        treated = result["rows"][1]
        assert rows[1]["accounts"] == treated["accounts"] == 12
        assert rows[1]["effect"] == pytest.approx(treated["effect"])
        assert " to " in rows[1]["interval"]
        trace = page.eval_on_selector("#panel-result .chart", """gd => ({y: gd.data[0].y, x: gd.data[0].x,
            plus: gd.data[0].error_x.array, minus: gd.data[0].error_x.arrayminus, zero: gd.layout.shapes[0].x0})""")
        assert trace["y"] == variants
        assert trace["x"][1] + trace["plus"][1] == pytest.approx(treated["ci_high"])
        assert trace["x"][1] - trace["minus"][1] == pytest.approx(treated["ci_low"])
        assert trace["zero"] == 0
        assert page.locator("#panel-result .chart .main-svg .errorbar").count() >= 1

        # the checks: the sample ratio (12 against 12: no mismatch), multiple exposure, CUPED
        srm = page.locator('#panel-checks [data-check="srm"]')
        assert srm.get_attribute("data-verdict") == ("fail" if treated["srm_mismatch"] else "pass")
        assert f"p = {treated['srm_p_value']:.3f}" in srm.inner_text()
        assert page.locator('#panel-checks [data-check="multiple-exposure"]').get_attribute("data-verdict") == "pass"
        assert "CUPED" in page.inner_text("#panel-checks")
        assert _axe_serious(page) == []
        page.screenshot(path=str(tmp_path / "experiments.png"), full_page=True)

        # without CUPED: the API's interval without it
        page.uncheck("#control-cuped")
        drawn(page, 240_000)
        assert "cuped=false" in page.url
        plain = _get(served, "/api/v1/analyses/experiments", experiment="onboarding", metric="mau", cuped="false")
        effect = page.eval_on_selector_all("#result-table tbody tr", "rows => Number(rows[1].cells[3].dataset.value)")
        assert effect == pytest.approx(plain["rows"][1]["effect"])
        assert "off" in page.inner_text('#panel-checks [data-check="cuped"]')

        # at 390 px: nothing scrolls sideways
        phone = browser.new_context(viewport={"width": 390, "height": 844})
        small = open_page(phone, served.url + "/experiments", watched, timeout_ms=240_000)
        assert small.evaluate("document.documentElement.scrollWidth") <= 390
        small.screenshot(path=str(tmp_path / "experiments-390.png"), full_page=True)
        browser.close()
    assert watched.outside == []
    assert watched.errors == []


def test_pages_of_an_empty_workspace_say_what_to_do(empty_server: Server) -> None:
    """No outcomes, no experiments, no rule set: each panel says so; nothing fails."""
    from playwright.sync_api import sync_playwright

    server = empty_server
    watched = Watched(server.url)
    for path in ("/attribution", "/experiments"):
        response = httpx.get(server.url + path, headers={"Accept": "text/html"}, timeout=10)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context()
        page = open_page(context, server.url + "/experiments", watched)
        assert "No experiments yet" in page.inner_text("#panel-experiments")
        assert "accountlens experiments assign" in page.inner_text("#panel-result")
        assert page.locator("#main .error").all_inner_texts() == []
        page = open_page(context, server.url + "/attribution", watched)
        assert "built-in defaults" in page.inner_text("#rules-version")
        assert "No renewal outcomes" in page.inner_text("#panel-credit .empty")
        assert page.locator("#main .error").all_inner_texts() == []
        browser.close()
    assert watched.outside == []
    assert watched.errors == []

