"""Roles and books, adversarially, against the real server: every REST route is tried with no
token, a wrong one, another workspace's, an expired and a revoked one, and with a token of each
role; a `csm` token sees its book only — rows, aggregates, drill-downs, reports, status — and
ids outside it answer 404 exactly as ids that do not exist. Refusals are in the audit log."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest

from accountlens.governance.audit import Actor, AuditLog
from accountlens.governance.token_admin import create_token
from accountlens.governance.tokens import Principal, TokenStore
from accountlens.workspace import Workspace
from tests.conftest import start_server

OWNER = "ana.lima@vendor.example"  # owns acc-003, acc-006, … in the demo (docs/governance.md)
PUBLIC = {("GET", "/health"), ("GET", "/api/v1/dashboard"), ("GET", "/api/v1/session"),
          ("POST", "/api/v1/session"), ("DELETE", "/api/v1/session"), ("GET", "/api/v1/workspaces")}
ROLES = ("admin", "analyst", "viewer", "csm")


def permission_of(method: str, path: str) -> str:
    """What a route needs, as docs/governance.md states it (not read from the code)."""
    if path.startswith("/api/v1/attribution/rules") and method != "GET":
        return "admin"
    if path.startswith("/api/v1/admin/") or (method, path) in (("POST", "/api/v1/plan"),
                                                               ("POST", "/api/v1/alerts/run"),
                                                               ("POST", "/api/v1/experiments/{name}/assign")):
        return "admin"
    if path in ("/api/v1/flush", "/api/v1/quarantine/replay") or path.startswith("/api/v1/imports/"):
        return "write"
    if path == "/api/v1/quarantine":
        return "raw"
    return "read"


ALLOWED = {"admin": {"read", "raw", "export", "write", "admin"}, "analyst": {"read", "raw", "export"},
           "viewer": {"read"}, "csm": {"read"}}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    from accountlens.demo.simulator import generate_demo

    base = tmp_path_factory.mktemp("governance")
    root, other = base / "main", base / "other"
    generate_demo(root, accounts=12, seed=11)
    generate_demo(other, accounts=4, seed=3)
    for folder in (root, other):
        config = folder / "accountlens.toml"
        text = re.sub(r'^name = ".*"$', f'name = "{folder.name}"', config.read_text(), count=1,
                      flags=re.M)
        # hundreds of calls per token in a few seconds: no rate limit here (tested elsewhere)
        config.write_text(re.sub(r"^token_rate_limit = .*$", "token_rate_limit = 0", text, flags=re.M))
    tokens, audit, actor = TokenStore(root), AuditLog(root), Actor.cli()
    made = {role: create_token(tokens, audit, actor, role, owner=OWNER if role == "csm" else None)
            for role in ROLES}
    made["csm_list"] = create_token(tokens, audit, actor, "csm", accounts=["acc-001"])
    made["expired"] = create_token(tokens, audit, actor, "admin", expires=dt.date.today() + dt.timedelta(days=3))
    made["revoked"] = create_token(tokens, audit, actor, "admin")
    tokens.revoke(made["revoked"]["id"])
    with tokens._editing() as records:  # as if its day had passed
        records[made["expired"]["id"]].expires_at = "2020-01-01T00:00:00+00:00"
    made["other"] = create_token(TokenStore(other), AuditLog(other), actor, "admin")
    with Workspace.open(root) as ws:
        book = sorted(r["account_id"] for r in ws.store.rows(
            "SELECT account_id FROM accounts WHERE traits->>'owner' = ? "
            "OR parent_account_id IN (SELECT account_id FROM accounts WHERE traits->>'owner' = ?)",
            [OWNER, OWNER]))
        users = {r["user_id"]: r["accounts"] for r in ws.store.rows(
            "SELECT user_id, list(DISTINCT account_id) AS accounts FROM memberships GROUP BY ALL")}
        events = ws.store.df("SELECT account_id, user_id, type, timestamp FROM events")
        accounts = ws.store.rows("SELECT account_id, industry, parent_account_id FROM accounts")
    server = start_server(root, also=(other,))
    yield {"server": server, "root": root, "tokens": {k: v["token"] for k, v in made.items()},
           "ids": {k: v["id"] for k, v in made.items()}, "book": book, "users": users,
           "events": events, "industry": {a["account_id"]: a["industry"] for a in accounts},
           "children": {a["account_id"] for a in accounts if a["parent_account_id"] == "acc-001"}}
    server.stop()


def call(world: dict, method: str, path: str, token: str | None = None,
         params: dict | None = None, **kwargs) -> httpx.Response:
    """A request to the workspace `main` of the server (two are served)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, world["server"].url + path, headers=headers, timeout=120,
                         params={"workspace": "main", **(params or {})}, **kwargs)


def operations(world: dict) -> list[tuple[str, str]]:
    spec = httpx.get(world["server"].url + "/openapi.json", timeout=30).json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


def concrete(path: str, world: dict) -> str:
    inside = world["book"][0]
    user = next(u for u, accounts in world["users"].items() if set(accounts) <= set(world["book"]))
    return (path.replace("{account_id}", inside).replace("{user_id}", user)
            .replace("{token_id}", world["ids"]["viewer"]).replace("{kind}", "accounts"))


BODIES = {"/api/v1/quarantine/replay": {"ids": [999999]},
          "/api/v1/admin/tokens": {"role": "viewer"},
          "/api/v1/admin/users/delete": {"user_id": "nobody-at-all"}}


def test_bad_credentials_are_refused_on_every_route(world) -> None:
    ops = operations(world)
    assert len(ops) >= 60
    bad = {"none": None, "wrong": "al_000000000000_" + "x" * 43, "other workspace": world["tokens"]["other"],
           "expired": world["tokens"]["expired"], "revoked": world["tokens"]["revoked"],
           "a write key": world["server"].write_key}
    for method, path in ops:
        if (method, path) in PUBLIC:
            continue
        for label, token in bad.items():
            response = call(world, method, concrete(path, world), token, json=BODIES.get(path))
            assert response.status_code == 401, (label, method, path, response.text)
            assert world["book"][0] not in response.text  # nothing of the data in the error


def test_each_role_may_do_what_its_role_allows(world) -> None:
    for method, path in operations(world):
        if (method, path) in PUBLIC:
            continue
        needed = permission_of(method, path)
        for role in ROLES:
            if role == "admin" and method != "GET":
                continue  # the admin's writes are tried below, one by one
            response = call(world, method, concrete(path, world), world["tokens"][role],
                            json=BODIES.get(path))
            if needed in ALLOWED[role]:
                assert response.status_code not in (401, 403), (role, method, path, response.text)
                assert response.status_code < 500, (role, method, path, response.text)
            else:
                assert response.status_code == 403, (role, method, path, response.text)
                assert f"a {role} token may not do this" in response.json()["error"]


def test_a_csm_sees_only_its_book_in_every_metric_and_analysis(world) -> None:
    book, token = set(world["book"]), world["tokens"]["csm"]
    assert 2 <= len(book) < 12
    metrics = call(world, "GET", "/api/v1/metrics", token).json()
    seen = set()
    for metric in metrics:
        if "account" not in metric["levels"]:
            continue
        result = call(world, "GET", f"/api/v1/metrics/{metric['name']}", token,
                      params={"level": "account"}).json()
        accounts = {row["account_id"] for row in result["rows"] if row.get("account_id")}
        assert accounts <= book, metric["name"]
        seen |= accounts
    assert seen == book
    for analysis in ("handoffs", "collaboration", "champions", "health", "signals", "renewals",
                     "accounts", "paths", "value"):
        result = call(world, "GET", f"/api/v1/analyses/{analysis}", token).json()
        assert "rows" in result, (analysis, result)
        accounts = {row["account_id"] for row in result["rows"] if row.get("account_id")}
        assert accounts <= book, analysis


def test_a_csm_aggregate_is_the_aggregate_of_its_book(world) -> None:
    """MAU by industry for the csm = distinct users active in the book's accounts in the 30 days
    to the as-of, by industry — computed here from the raw events with pandas."""
    token = world["tokens"]["csm"]
    result = call(world, "GET", "/api/v1/metrics/mau", token, params={"level": "industry"}).json()
    as_of = pd.Timestamp(result["as_of"], tz="UTC")
    events, industries = world["events"], world["industry"]
    active = events[events.type.isin(["track", "page", "screen"]) & events.account_id.isin(world["book"])
                    & (events.timestamp > as_of + pd.Timedelta(days=1) - pd.Timedelta(days=30))
                    & (events.timestamp < as_of + pd.Timedelta(days=1)) & events.user_id.notna()]
    active = active.assign(industry=active.account_id.map(industries))
    expected = active.groupby("industry").user_id.nunique().to_dict()
    got = {row["industry"]: row["mau"] for row in result["rows"] if row["mau"]}
    assert got == expected and got
    status = call(world, "GET", "/api/v1/status", token).json()
    assert status["events"] == int(events.account_id.isin(world["book"]).sum())
    assert status["accounts"] == len(world["book"]) and status["quarantined"] == 0


def test_ids_outside_the_book_answer_like_ids_that_do_not_exist(world) -> None:
    token, book = world["tokens"]["csm"], world["book"]
    outside = next(f"acc-{i:03d}" for i in range(1, 13) if f"acc-{i:03d}" not in book)
    foreign_user = next(u for u, accounts in world["users"].items() if not set(accounts) & set(book))
    for path, missing in ((f"/api/v1/accounts/{outside}", "/api/v1/accounts/acc-999"),
                          (f"/api/v1/users/{foreign_user}", "/api/v1/users/no-such-user"),
                          (f"/reports/accounts/{outside}", "/reports/accounts/acc-999")):
        hidden, absent = call(world, "GET", path, token), call(world, "GET", missing, token)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["error"].replace(outside, "X").replace(foreign_user, "X") == \
            absent.json()["error"].replace("acc-999", "X").replace("no-such-user", "X")
    # the admin sees them
    assert call(world, "GET", f"/api/v1/accounts/{outside}", world["tokens"]["admin"]).status_code == 200
    # a csm by explicit list sees that account (and its subsidiaries) only
    listed = call(world, "GET", "/api/v1/metrics/mau", world["tokens"]["csm_list"],
                  params={"level": "account"}).json()
    assert {row["account_id"] for row in listed["rows"]} == {"acc-001"} | world["children"]


def test_refusals_and_token_changes_are_audited_once_each(world) -> None:
    audit = AuditLog(world["root"])
    before = len(audit.entries(action="access.denied"))
    call(world, "POST", "/api/v1/flush", world["tokens"]["viewer"])
    denied = audit.entries(action="access.denied")
    assert len(denied) == before + 1
    assert denied[-1]["actor"] == f"token:{world['ids']['viewer']}" and denied[-1]["details"] == {
        "status": 403, "permission": "write"}
    made = call(world, "POST", "/api/v1/admin/tokens", world["tokens"]["admin"],
                json={"role": "csm", "owner": OWNER, "name": "ana"}).json()
    assert made["token"].startswith(f"al_{made['id']}_") and made["state"] == "active"
    entries = [e for e in audit.entries(action="token.") if e["target"] == f"token:{made['id']}"]
    assert [e["action"] for e in entries] == ["token.create"]
    assert entries[0]["actor"] == f"token:{world['ids']['admin']}" and made["token"] not in \
        (world["root"] / "audit.jsonl").read_text()
    # a session opened with it ends when it is rotated
    signed = httpx.post(world["server"].url + "/api/v1/session", json={"token": made["token"],
                        "workspace": "main"}, timeout=10)
    assert signed.json()["role"] == "csm"
    cookies = {"accountlens_session": signed.cookies["accountlens_session"]}
    assert call(world, "GET", "/api/v1/status", cookies=cookies).status_code == 200
    rotated = call(world, "POST", f"/api/v1/admin/tokens/{made['id']}/rotate", world["tokens"]["admin"]).json()
    assert call(world, "GET", "/api/v1/status", cookies=cookies).status_code == 401
    assert call(world, "GET", "/api/v1/status", made["token"]).status_code == 401
    assert call(world, "GET", "/api/v1/status", rotated["token"]).status_code == 200
    call(world, "DELETE", f"/api/v1/admin/tokens/{made['id']}", world["tokens"]["admin"])
    assert call(world, "GET", "/api/v1/status", rotated["token"]).status_code == 401
    actions = [e["action"] for e in audit.entries(action="token.") if e["target"] == f"token:{made['id']}"]
    assert actions == ["token.create", "token.rotate", "token.revoke"]
    assert audit.verify()["ok"]
    listed = call(world, "GET", "/api/v1/admin/audit", world["tokens"]["admin"],
                  params={"actor": f"token:{world['ids']['admin']}"}).json()
    assert {e["action"] for e in listed} >= {"token.create", "token.rotate", "token.revoke"}


def test_a_book_keeps_each_row_as_the_admin_sees_it(world) -> None:
    admin = call(world, "GET", "/api/v1/metrics/seat_utilization", world["tokens"]["admin"],
                 params={"level": "account"}).json()
    csm = call(world, "GET", "/api/v1/metrics/seat_utilization", world["tokens"]["csm"],
               params={"level": "account"}).json()
    by_admin = {row["account_id"]: row for row in admin["rows"]}
    assert csm["rows"] and all(by_admin[row["account_id"]] == row for row in csm["rows"])


def test_a_scoped_store_never_writes_the_workspace(tmp_path: Path) -> None:
    from accountlens.demo.simulator import generate_demo

    generate_demo(tmp_path / "ws", accounts=4, seed=5)
    with Workspace.open(tmp_path / "ws") as ws:
        total = ws.store.scalar("SELECT count(*) FROM events")
        view = ws.acting_as(Principal("token:t", "csm", accounts=("acc-001",)), "test")
        kept = view.store.scalar("SELECT count(*) FROM events")
        assert 0 < kept < total
        view.store.execute("CREATE OR REPLACE TABLE events AS SELECT 1 AS x")  # lands in scratch
        for statement in ("DELETE FROM events", "INSERT INTO accounts (account_id) VALUES ('x')",
                          "UPDATE users SET email = 'x'"):
            with pytest.raises(duckdb.Error):
                view.store.execute(statement)
        with pytest.raises(Exception, match="read-only"):
            view.replay_quarantine()
        assert ws.store.scalar("SELECT count(*) FROM events") == total
        assert view.store.scalar("SELECT count(*) FROM events") == kept
        assert ws.store.scalar("SELECT count(*) FROM quarantine") >= 0
        assert view.store.scalar("SELECT count(*) FROM workspace_secrets") == 0


def test_a_csm_signed_in_to_the_web_app_sees_its_book(world, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_dashboard import CHROMIUM, Watched, drawn, launch

    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    url = world["server"].url
    watched = Watched(url)
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        watched.attach(page)
        page.goto(f"{url}/accounts?workspace=main")
        page.wait_for_url(re.compile(r"/signin\?"))
        page.fill("#token", world["tokens"]["csm"])
        page.click("form.signin button[type=submit]")
        page.wait_for_url(re.compile(r"/accounts\?"))
        drawn(page)
        assert page.inner_text("#role-badge") == "csm · your book of accounts"
        links = page.eval_on_selector_all("#accounts-table a[href*='/accounts/']",
                                          "els => els.map(e => e.getAttribute('href'))")
        shown = {re.search(r"/accounts/([^?]+)", link)[1] for link in links}
        assert shown == set(world["book"])
        assert page.locator("button.csv").count() == 0  # a csm has no exports
        page.screenshot(path=str(tmp_path / "csm-accounts.png"))
        outside = next(f"acc-{i:03d}" for i in range(1, 13) if f"acc-{i:03d}" not in world["book"])
        page.goto(f"{url}/accounts/{outside}?workspace=main")
        page.wait_for_selector("#main .error")
        assert f"no account '{outside}'" in page.inner_text("#main .error")
        browser.close()
    assert not watched.outside
