"""Sign-in and several workspaces: a server of two workspaces, each with its own API token.
The API answers 401 without a token or a session; a token is exchanged for an HttpOnly,
SameSite=Strict session cookie (a random id, never the token) that opens that workspace only;
the web app signs in, refuses a wrong token with the API's message, switches workspaces with
the picker (signing in to each) and signs out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, start_server
from tests.test_dashboard import CHROMIUM, Watched, drawn, launch, open_page

TOKENS = {"alpha": "alpha-secret-token", "beta": "beta-secret-token"}
SIZES = {"alpha": 4, "beta": 6}  # accounts in each demo


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Iterator[Server]:
    from accountlens.demo.simulator import generate_demo

    base = tmp_path_factory.mktemp("auth")
    roots = []
    for seed, (name, accounts) in enumerate(SIZES.items(), start=7):
        root = base / name
        generate_demo(root, accounts=accounts, seed=seed)
        config = root / "accountlens.toml"
        text = re.sub(r'^name = ".*"$', f'name = "{name}"', config.read_text(), count=1, flags=re.M)
        config.write_text(text.replace("api_tokens = []", f'api_tokens = ["{TOKENS[name]}"]'))
        roots.append(root)
    server = start_server(roots[0], also=(roots[1],))
    yield server
    server.stop()


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def test_the_api_takes_a_token_or_a_session_of_that_workspace(two: Server) -> None:
    url = two.url
    refused = httpx.get(f"{url}/api/v1/status", params={"workspace": "alpha"}, timeout=30)
    assert refused.status_code == 401 and refused.json()["success"] is False
    state = httpx.get(f"{url}/api/v1/session", timeout=10).json()
    assert state == {"workspaces": [
        {"name": "alpha", "auth_required": True, "signed_in": False, "role": None},
        {"name": "beta", "auth_required": True, "signed_in": False, "role": None}]}

    wrong = httpx.post(f"{url}/api/v1/session", json={"token": TOKENS["beta"], "workspace": "alpha"}, timeout=10)
    assert wrong.status_code == 401 and "not valid for workspace 'alpha'" in wrong.json()["error"]
    assert "set-cookie" not in wrong.headers

    signed = httpx.post(f"{url}/api/v1/session", json={"token": TOKENS["alpha"], "workspace": "alpha"}, timeout=10)
    assert signed.status_code == 200
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("accountlens_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    session_id = signed.cookies["accountlens_session"]
    assert TOKENS["alpha"] not in cookie and len(session_id) >= 40

    with httpx.Client(base_url=url, cookies={"accountlens_session": session_id}, timeout=30) as browser_like:
        assert browser_like.get("/api/v1/status", params={"workspace": "alpha"}).status_code == 200
        assert browser_like.get("/api/v1/status", params={"workspace": "beta"}).status_code == 401
        assert [w["signed_in"] for w in browser_like.get("/api/v1/session").json()["workspaces"]] == [True, False]
        out = browser_like.delete("/api/v1/session", params={"workspace": "alpha"})
        assert out.status_code == 200 and 'accountlens_session=""' in out.headers["set-cookie"]
    # the session is over on the server, whatever a client kept
    kept = httpx.get(f"{url}/api/v1/status", params={"workspace": "alpha"},
                     cookies={"accountlens_session": session_id}, timeout=30)
    assert kept.status_code == 401
    # a bearer token works as before, for its own workspace only
    assert httpx.get(f"{url}/api/v1/status", params={"workspace": "beta"}, headers=bearer("beta"), timeout=30).status_code == 200
    assert httpx.get(f"{url}/api/v1/status", params={"workspace": "alpha"}, headers=bearer("beta"), timeout=30).status_code == 401


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_sign_in_switch_workspaces_and_sign_out(two: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    watched = Watched(two.url)
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        watched.attach(page)
        page.goto(f"{two.url}/accounts?workspace=alpha&industry=retail")
        page.wait_for_url(re.compile(r"/signin\?"))
        assert page.inner_text("#main h1") == "Sign in"
        assert page.locator("#main .card").count() == 0  # no data before signing in

        page.fill("#token", "not-the-token")
        page.click("form.signin button[type=submit]")
        page.wait_for_selector(".signin-message .error")
        assert "not valid for workspace 'alpha'" in page.inner_text(".signin-message")
        assert "/signin" in page.url
        page.screenshot(path=str(tmp_path / "signin-refused.png"))

        page.fill("#token", TOKENS["alpha"])
        page.click("form.signin button[type=submit]")
        page.wait_for_url(re.compile(r"/accounts\?.*industry=retail"))  # back where it was going
        drawn(page)
        assert page.evaluate("document.cookie") == ""  # HttpOnly: the page cannot read it
        assert context.cookies()[0]["httpOnly"] is True
        assert page.locator("#accounts-table").count() == 1

        # the picker lists both workspaces; beta needs its own sign-in
        page.goto(f"{two.url}/?workspace=alpha")
        drawn(page)
        assert page.locator("#workspace-picker option").all_inner_texts() == ["alpha", "beta"]
        alpha_accounts = page.get_attribute('.card[data-key="accounts"]', "data-value")
        assert alpha_accounts == str(SIZES["alpha"])
        page.select_option("#workspace-picker", "beta")
        page.wait_for_url(re.compile(r"/signin\?.*workspace=beta"))
        page.fill("#token", TOKENS["beta"])
        page.click("form.signin button[type=submit]")
        page.wait_for_url(re.compile(r"/\?workspace=beta$"))
        drawn(page)
        assert page.get_attribute('.card[data-key="accounts"]', "data-value") == str(SIZES["beta"])
        status = httpx.get(f"{two.url}/api/v1/status", params={"workspace": "beta"}, headers=bearer("beta"), timeout=30).json()
        assert f"{status['events']:,} events" in page.inner_text("#panel-alerts")

        page.select_option("#workspace-picker", "alpha")  # still signed in there
        page.wait_for_url(re.compile(r"/\?workspace=alpha$"))
        drawn(page)
        assert page.get_attribute('.card[data-key="accounts"]', "data-value") == alpha_accounts

        page.click("#sign-out")
        page.wait_for_url(re.compile(r"/signin"))
        signed_out = context.request.get(f"{two.url}/api/v1/status?workspace=alpha")
        assert signed_out.status == 401
        assert context.request.get(f"{two.url}/api/v1/status?workspace=beta").status == 200
        page.screenshot(path=str(tmp_path / "signed-out.png"))
        browser.close()
    assert watched.outside == []
    # the only errors: the browser's report of the refused sign-in (HTTP 401)
    assert [e for e in watched.errors if "401" not in e] == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_a_page_opened_without_a_session_goes_to_sign_in(two: Server) -> None:
    from playwright.sync_api import sync_playwright

    watched = Watched(two.url)
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 390, "height": 800})
        page = open_page(context, f"{two.url}/accounts/acc-001?workspace=beta", watched)
        assert "/signin" in page.url and "next=%2Faccounts%2Facc-001" in page.url
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.locator("#signin-workspace").input_value() == "beta"
        browser.close()
    assert watched.errors == [] and watched.outside == []
