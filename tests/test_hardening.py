"""Hardening of `accountlens serve` (docs/security.md), against a real server on loopback: the
Host check on every route (server and collector port), rate limits per client and per write
key, the REST API's size limit, security headers, the access log, the local admin token in a
0600 serve.json, a 0600 accountlens.toml, and the loud warning off loopback without tokens."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from accountlens.serve.hardening import HostPolicy, RateLimit, RateLimiter, client_key
from accountlens.workspace import Workspace
from tests.conftest import Server, admin_headers, free_port, start_server

KEYS = ("wk_limited", "wk_other", "wk_spare")
LIMITS = {  # [serve] settings of the hardened workspace
    "token_rate_limit": "0.2", "token_rate_burst": "4",
    "write_key_rate_limit": "0.2", "write_key_rate_burst": "3",
    "max_request_bytes": "2048",
    "allowed_hosts": '["analytics.example.com", "*.corp.example"]',
}


def with_settings(root: Path, **settings: str) -> None:
    """Set [serve] keys (and the write keys) in the TOML text before the server starts."""
    config = root / "accountlens.toml"
    text = re.sub(r"^write_keys = .*$", "write_keys = " + json.dumps(list(KEYS)), config.read_text(),
                  count=1, flags=re.M)
    for key, value in settings.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        assert found, key
    config.write_text(text)


@pytest.fixture(scope="module")
def hardened(tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hardening") / "hardened"
    Workspace.init(root, name="hardened").close()
    with_settings(root, **LIMITS)
    server = start_server(root, collectors=1)
    yield server
    server.stop()


def reader(name: str) -> dict[str, str]:
    """A client of its own for the API's rate limit: a session cookie (unknown to the server, so
    an anonymous reader of a workspace without tokens)."""
    return {"Cookie": f"accountlens_session=test-{name}"}


def batch(message_id: str, pad: int = 0) -> bytes:
    event = {"type": "track", "messageId": message_id, "userId": "u1", "event": "Clicked",
             "timestamp": "2024-01-01T00:00:00Z", "properties": {"pad": "x" * pad}}
    return json.dumps({"batch": [event]}).encode()


def ingest(url: str, key: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(url + "/v1/batch", content=body, auth=(key, ""), timeout=10,
                      headers={"content-type": "application/json", **headers})


# --- trusted hosts -----------------------------------------------------------------------------
def test_a_foreign_host_is_refused_on_every_route(hardened: Server) -> None:
    evil = {"Host": "evil.example", **reader("host")}
    answers = {
        "api": httpx.get(hardened.url + "/api/v1/status", headers=evil, timeout=10),
        "page": httpx.get(hardened.url + "/accounts", headers=evil, timeout=10),
        "health": httpx.get(hardened.url + "/health", headers=evil, timeout=10),
        "ingestion": ingest(hardened.url, "wk_spare", batch("evil-1"), Host="evil.example"),
        "collector port": ingest(hardened.ingest_url, "wk_spare", batch("evil-2"),
                                 Host="evil.example:8845"),
        "preflight": httpx.options(hardened.url + "/v1/batch", timeout=10,
                                   headers={"Host": "evil.example", "Origin": "https://evil.example"}),
    }
    for where, answer in answers.items():
        assert answer.status_code == 400, where
        error = answer.json()
        assert error["success"] is False and error["problems"] == [], where
        assert "evil.example" in error["error"] and "serve.allowed_hosts" in error["error"], where


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "LOCALHOST.", "analytics.example.com", "analytics.example.com:443",
                                  "eu.corp.example"])
def test_the_served_address_loopback_and_allowed_names_pass(hardened: Server, host: str) -> None:
    headers = {"Host": host.format(port=hardened.port)}
    assert httpx.get(hardened.url + "/health", headers=headers, timeout=10).status_code == 200
    # the collector port serves ingestion only: past the Host check, anything else is a 404
    assert httpx.get(hardened.ingest_url + "/health", headers=headers, timeout=10).status_code == 404


def test_host_policy() -> None:
    loopback = HostPolicy.serving("127.0.0.1", ["*.corp.example"])
    assert loopback.allows("127.0.0.1:8844") and loopback.allows("[::1]:8844")
    assert loopback.allows("[0:0:0:0:0:0:0:1]") and loopback.allows("a.corp.example")
    assert not loopback.allows("corp.example") and not loopback.allows("10.1.2.3")
    assert not loopback.allows("") and not loopback.allows(None)
    assert not loopback.allows("127.0.0.1.evil.example")
    assert HostPolicy.serving("localhost").allows("127.0.0.1:8844")
    named = HostPolicy.serving("192.168.7.7")
    assert named.allows("192.168.7.7:8844") and not named.allows("192.168.7.8")
    anywhere = HostPolicy.serving("0.0.0.0")
    assert anywhere.allows("10.1.2.3:8844") and anywhere.allows("[fd00::1]")  # addresses: no rebinding
    assert anywhere.allows(socket.gethostname()) and not anywhere.allows("evil.example")
    assert HostPolicy.serving("127.0.0.1", ["*"]).allows("evil.example")


# --- rate limits -------------------------------------------------------------------------------
def assert_limited(answer: httpx.Response, setting: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["retry-after"].isdigit() and int(answer.headers["retry-after"]) >= 1
    error = answer.json()
    assert error["success"] is False and setting in error["error"]


def test_the_api_limits_each_client(hardened: Server) -> None:
    status = hardened.url + "/api/v1/status"
    answers = [httpx.get(status, headers=reader("rate-a"), timeout=10) for _ in range(5)]
    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert_limited(answers[4], "serve.token_rate_limit")
    assert answers[4].json()["problems"] == []
    # another client is not limited; nor are pages and /health
    assert httpx.get(status, headers=reader("rate-b"), timeout=10).status_code == 200
    assert httpx.get(hardened.url + "/health", headers=reader("rate-a"), timeout=10).status_code == 200
    # a bearer token is a client of its own (whether valid or not)
    bearer = {"Authorization": "Bearer not-a-token-of-this-workspace"}
    codes = [httpx.get(status, headers=bearer, timeout=10).status_code for _ in range(5)]
    assert codes[:4] == [401] * 4 and codes[4] == 429


def test_a_write_key_is_limited_and_another_is_not(hardened: Server) -> None:
    answers = [ingest(hardened.url, "wk_limited", batch(f"rate-{i}")) for i in range(4)]
    assert [a.status_code for a in answers[:3]] == [200] * 3
    assert_limited(answers[3], "serve.write_key_rate_limit")
    assert ingest(hardened.url, "wk_other", batch("rate-other")).status_code == 200
    # the key in the body is limited too
    body = json.dumps({"writeKey": "wk_limited", "batch": json.loads(batch("rate-body"))["batch"]})
    answer = httpx.post(hardened.url + "/v1/batch", content=body, timeout=10)
    assert_limited(answer, "serve.write_key_rate_limit")


def test_rate_limiter_refills_and_forgets() -> None:
    limiter = RateLimiter(RateLimit(per_second=2, burst=3), max_keys=2)
    assert [limiter.take("a", now=0.0) for _ in range(4)] == [0, 0, 0, 1]
    assert limiter.take("a", now=0.5) == 0  # one token back after half a second
    assert limiter.take("a", now=0.5) == 1
    assert limiter.take("b", now=0.5) == 0 and limiter.take("c", now=0.5) == 0  # "a" forgotten
    assert limiter.take("a", now=0.5) == 0  # full again
    slow = RateLimiter(RateLimit(per_second=0.1, burst=1))
    assert slow.take("k", now=0.0) == 0 and slow.take("k", now=0.0) == 10


def test_the_client_key_holds_no_credential() -> None:
    scope = {"headers": [(b"authorization", b"Bearer s3cret-token")], "client": ("10.0.0.1", 5)}
    key = client_key(scope, "accountlens_session")
    assert key.startswith("auth:") and "s3cret" not in key
    scope = {"headers": [(b"cookie", b"a=b; accountlens_session=sess1on")], "client": ("10.0.0.1", 5)}
    assert client_key(scope, "accountlens_session").startswith("session:")
    assert client_key({"headers": [], "client": ("10.0.0.1", 5)}, "c") == "client:10.0.0.1"


# --- request size ------------------------------------------------------------------------------
def test_an_oversized_api_body_gets_413(hardened: Server) -> None:
    url = hardened.url + "/api/v1/session"
    big = json.dumps({"token": "x" * 3000}).encode()
    declared = httpx.post(url, content=big, headers={"content-type": "application/json",
                                                     **reader("size")}, timeout=10)
    assert declared.status_code == 413
    assert "serve.max_request_bytes" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 500):
            yield big[start:start + 500]

    chunked = httpx.post(url, content=chunks(), timeout=10,
                         headers={"content-type": "application/json", **reader("size")})
    assert chunked.status_code == 413 and chunked.json()["success"] is False
    small = httpx.post(url, json={"token": "wrong"}, headers=reader("size"), timeout=10)
    assert small.status_code != 413
    # ingestion has its own limit (max_batch_bytes), imports none
    assert ingest(hardened.url, "wk_spare", batch("big-event", pad=4000)).status_code == 200
    rows = "account_id,name\n" + "".join(f"acct-{i:05d},Account number {i}\n" for i in range(200))
    imported = httpx.post(hardened.url + "/api/v1/imports/accounts", params={"filename": "a.csv"},
                          content=rows.encode(), headers=admin_headers(hardened.root), timeout=60)
    assert len(rows) > 2048 and imported.status_code == 200, imported.text


# --- security headers --------------------------------------------------------------------------
def test_security_headers(hardened: Server) -> None:
    for path in ("/", "/api/v1/status", "/docs", "/redoc", "/static/app.js", "/api/v1/nothing"):
        answer = httpx.get(hardened.url + path, headers=reader("headers"), timeout=10)
        headers = answer.headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["referrer-policy"] == "no-referrer", path
        policy = headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0], path
        if path.startswith("/api/"):
            assert headers["cache-control"] == "no-store", path
    docs = httpx.get(hardened.url + "/docs", timeout=10)
    assert "'sha256-" in docs.headers["content-security-policy"]  # Swagger UI's inline setup
    assert httpx.get(hardened.url + "/", timeout=10).headers["cache-control"] == "no-cache"


CSP_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium is not installed")
def test_the_web_app_and_api_docs_work_under_the_policy(server: Server) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_dashboard import drawn, launch

    violations = {}
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.add_init_script(CSP_VIOLATIONS)
        for path, ready in (("/", None), ("/docs", ".opblock"), ("/redoc", "[data-section-id]")):
            page.goto(server.url + path)
            if ready is None:
                drawn(page, 60_000)
            else:
                page.wait_for_selector(ready, timeout=30_000)
            page.wait_for_timeout(500)  # Redoc starts its search worker after drawing
            violations[path] = page.evaluate("window.__violations")
        browser.close()
    assert violations == {"/": [], "/docs": [], "/redoc": []}


# --- access log, local admin token -------------------------------------------------------------
def test_access_log_lines(hardened: Server) -> None:
    secret = "s3cret-in-a-header"
    httpx.get(hardened.url + "/api/v1/status", params={"workspace": "hardened", "token": "s3cret-q"},
              headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    httpx.get(hardened.url + "/accounts", headers=reader("log"), timeout=10)
    httpx.post(hardened.url + "/api/v1/flush", headers=admin_headers(hardened.root), timeout=30)
    ingest(hardened.url, "wk_spare", batch("not-logged"))
    path = hardened.root / "access.log"
    deadline = time.time() + 10
    while time.time() < deadline and "/api/v1/flush" not in path.read_text():
        time.sleep(0.1)
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "s3cret" not in text and admin_headers(hardened.root)["Authorization"][7:] not in text
    line = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z 127\.0\.0\.1 (GET|POST) (\S+) (\d{3}) [\d.]+ms \d+ (.+)$")
    parsed = [line.match(row) for row in text.splitlines()]
    assert all(parsed), text
    seen = {(m.group(1), m.group(2), m.group(3)) for m in parsed if m}
    assert ("GET", "/api/v1/status?workspace=hardened", "401") in seen
    assert ("GET", "/accounts", "200") in seen
    assert ("POST", "/api/v1/flush", "200") in seen
    assert not any("/v1/batch" in row for row in text.splitlines())  # ingestion is not logged
    flush = next(m for m in parsed if m and m.group(2) == "/api/v1/flush")
    assert "admin" in flush.group(4)  # the actor the API's authentication recorded


def test_the_access_log_goes_to_the_workspace_named(tmp_path: Path) -> None:
    import asyncio

    from accountlens.serve.hardening import AccessLog, AccessLogTarget

    async def app(scope, receive, send) -> None:
        scope["state"]["actor"] = "token:ab12cd34 (admin)\nforged line"  # as request.state does
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    logged = AccessLog(app, [AccessLogTarget("a", tmp_path / "a", True),
                             AccessLogTarget("b", tmp_path / "b", False)])

    async def send(message) -> None:
        pass

    for query in (b"", b"workspace=b&token=x", b"workspace=nope", b"token=secret&workspace=a"):
        scope = {"type": "http", "method": "GET", "path": "/api/v1/x y", "query_string": query,
                 "headers": [], "client": ("10.0.0.9", 1234)}
        asyncio.run(logged(scope, None, send))
    logged.close()
    lines = (tmp_path / "a" / "access.log").read_text().splitlines()
    assert [line.split()[3] for line in lines] == [
        "/api/v1/x%20y", "/api/v1/x%20y?workspace=nope", "/api/v1/x%20y?workspace=a"]
    assert all(line.split()[1] == "10.0.0.9" and " 204 " in line and line.endswith(
        " 4 token:ab12cd34 (admin)?forged line") for line in lines)
    assert not (tmp_path / "b" / "access.log").exists()


def test_the_local_admin_token_is_in_a_private_serve_json(hardened: Server) -> None:
    serve_json = hardened.root / "serve.json"
    assert stat.S_IMODE(serve_json.stat().st_mode) == 0o600
    assert len(json.loads(serve_json.read_text())["admin_token"]) >= 40
    flush = hardened.url + "/api/v1/flush"
    assert httpx.post(flush, headers=reader("admin"), timeout=30).status_code in (401, 403)
    assert httpx.post(flush, headers=admin_headers(hardened.root), timeout=30).status_code == 200


def test_init_writes_a_private_config(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "accountlens", "init", str(tmp_path / "w")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE((tmp_path / "w" / "accountlens.toml").stat().st_mode) == 0o600


# --- off loopback --------------------------------------------------------------------------------
def test_serving_beyond_loopback_without_tokens_warns(tmp_path: Path) -> None:
    root = tmp_path / "open"
    Workspace.init(root, name="open").close()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "accountlens", "serve", "--dir", str(root), "--host", "0.0.0.0",
         "--port", str(port), "--collectors", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        # on a wildcard address: the machine's name passes, a foreign name does not
        own = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": socket.gethostname()},
                        timeout=10)
        assert own.status_code == 200
        foreign = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "evil.example"},
                            timeout=10)
        assert foreign.status_code == 400
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    text = err.decode()
    assert "WARNING" in text and "0.0.0.0" in text and str(root) in text
    assert "anyone who can reach this address can read every account's data" in text


def test_the_warning_needs_an_exposed_address_and_no_tokens(tmp_path: Path, caplog) -> None:
    from accountlens.serve.server import warn_if_exposed

    open_root, guarded = tmp_path / "open", tmp_path / "guarded"
    Workspace.init(open_root, name="open").close()
    Workspace.init(guarded, name="guarded").close()
    config = guarded / "accountlens.toml"
    config.write_text(config.read_text().replace("api_tokens = []", 'api_tokens = ["t-1"]'))
    with caplog.at_level(logging.WARNING, logger="accountlens.server"):
        for host in ("127.0.0.1", "localhost", "::1", "[::1]"):
            warn_if_exposed([open_root], host)
        warn_if_exposed([guarded], "0.0.0.0")
        assert not caplog.records
        warn_if_exposed([guarded, open_root], "192.168.1.10")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert str(open_root) in message and str(guarded) not in message
