"""CORS on the collector endpoints, through a real `accountlens serve` (docs/ingestion.md,
"Browser SDKs and CORS"): preflights, per-key origins, refused origins, collector processes."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from accountlens.config import ConfigError, load_config
from accountlens.config_template import render_template
from accountlens.workspace import Workspace
from tests.conftest import Server, admin_headers, start_server

APP = "http://app.test:3000"  # allowed for key A
OTHER = "https://other.test"  # allowed for key B, and for key Z of the second workspace
STRANGER = "https://stranger.test"  # allowed for no key


def configure(root: Path, name: str, keys: list[str], origins: dict[str, list[str]]) -> Path:
    """A workspace whose accountlens.toml has `keys` and `origins` (as a user would write it)."""
    Workspace.init(root, name=name).close()
    path = root / "accountlens.toml"
    text = re.sub(r"write_keys = \[.*\]", "write_keys = " + json.dumps(keys), path.read_text())
    lines = "".join(f"{json.dumps(key)} = {json.dumps(listed)}\n" for key, listed in origins.items())
    path.write_text(text.replace("[workspace.origins]\n", "[workspace.origins]\n" + lines, 1))
    return root


@pytest.fixture(scope="module", params=[0, 1], ids=["server", "collector-process"])
def served(tmp_path_factory, request) -> Iterator[Server]:
    """Two workspaces on one server: keys A (APP), B (OTHER), C (none); Z (OTHER) in the other.
    Served by the server itself, or through a collector process; shared by the module's tests
    (each counts the events it adds)."""
    folder = tmp_path_factory.mktemp("cors")
    main = configure(folder / "main", "main", ["wk_A", "wk_B", "wk_C"],
                     {"wk_A": [APP], "wk_B": [OTHER + ":443/"]})  # normalized to OTHER
    second = configure(folder / "second", "second", ["wk_Z"], {"wk_Z": [OTHER]})
    server = start_server(main, collectors=request.param, also=(second,))
    yield server
    server.stop()


def preflight(url: str, origin: str | None, path: str = "/v1/batch") -> httpx.Response:
    headers = {"Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type,authorization"}
    if origin:
        headers["Origin"] = origin
    return httpx.request("OPTIONS", url + path, headers=headers, timeout=10)


def track(url: str, key: str, origin: str | None, message_id: str, path: str = "/v1/track",
          in_body: bool = False) -> httpx.Response:
    event = {"userId": "ann", "event": "Report Created", "messageId": message_id,
             "context": {"groupId": "acme"}}
    headers = {"Content-Type": "text/plain"} | ({"Origin": origin} if origin else {})
    if in_body:  # a "simple" request: no Authorization header, so browsers send no preflight
        return httpx.post(url + path, content=json.dumps({**event, "writeKey": key}),
                          headers=headers, timeout=10)
    return httpx.post(url + path, content=json.dumps(event), auth=(key, ""), headers=headers,
                      timeout=10)


def cors(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def event_count(server: Server, workspace: str = "main") -> int:
    httpx.post(server.url + f"/api/v1/flush?workspace={workspace}", headers=admin_headers(server.root),
               timeout=30).raise_for_status()
    return httpx.get(server.url + f"/api/v1/status?workspace={workspace}", timeout=30).json()["events"]


def test_preflight_allows_origins_of_any_served_key(served: Server) -> None:
    url = served.ingest_url
    for path in ("/v1/batch", "/v1/t", "/v1/identify", "/batch/", "/e/", "/i/v0/e/", "/capture/"):
        answer = preflight(url, APP, path)
        assert answer.status_code == 204, path
        assert cors(answer) == {
            "access-control-allow-origin": APP,
            "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers":
                "Content-Type, Authorization, Content-Encoding, X-Retry-Count",
            "access-control-max-age": "7200",
        }
        assert answer.headers["vary"] == "Origin"
    # OTHER is listed for key B (written with a default port and a slash) and in the other workspace
    assert cors(preflight(url, OTHER))["access-control-allow-origin"] == OTHER
    refused = preflight(url, STRANGER)
    assert refused.status_code == 403 and cors(refused) == {}
    assert "[workspace.origins]" in refused.json()["error"]
    plain = preflight(url, None)  # an OPTIONS that is no CORS preflight
    assert plain.status_code == 204 and cors(plain) == {} and plain.headers["allow"] == "POST, OPTIONS"


def test_the_post_checks_its_own_keys_origins(served: Server) -> None:
    url = served.ingest_url
    before = event_count(served)
    accepted = track(url, "wk_A", APP, "a-from-app")
    assert accepted.status_code == 200
    assert cors(accepted) == {"access-control-allow-origin": APP,
                              "access-control-expose-headers": "Retry-After"}
    assert accepted.headers["vary"] == "Origin"
    # APP passes a preflight (key A allows it), but key B and key C do not allow it
    for key in ("wk_B", "wk_C"):
        refused = track(url, key, APP, f"{key}-from-app")
        assert refused.status_code == 403 and cors(refused) == {}
        assert "[workspace.origins]" in refused.json()["error"]
    # a simple request (text/plain, key in the body) is sent without a preflight: refused too
    assert track(url, "wk_A", STRANGER, "a-from-stranger", in_body=True).status_code == 403
    assert track(url, "wk_B", OTHER, "b-from-other", in_body=True).status_code == 200
    # no Origin (server-side SDKs, curl): as before, whatever the key's origins
    no_origin = track(url, "wk_C", None, "c-server-side")
    assert no_origin.status_code == 200 and cors(no_origin) == {} and "vary" not in no_origin.headers
    # a page served from the collector's own origin is no cross-origin request
    assert track(url, "wk_C", url, "c-same-origin").status_code == 200
    # errors an allowed origin can read (the SDK sees why), e.g. an unknown key
    unknown = track(url, "wk_nope", APP, "unknown-key")
    assert unknown.status_code == 401 and cors(unknown)["access-control-allow-origin"] == APP
    # analytics.js's one-letter paths: /v1/t and the batch endpoint /v1/b
    assert track(url, "wk_A", APP, "a-short-path", path="/v1/t").status_code == 200
    batch = {"batch": [{"type": "identify", "userId": "ann", "messageId": "a-batch-identify"}],
             "writeKey": "wk_A"}
    assert httpx.post(url + "/v1/b", content=json.dumps(batch), headers={"Origin": APP},
                      timeout=10).status_code == 200
    assert event_count(served) - before == 6  # a-from-app, b-from-other, the two wk_C, the two short paths


def test_posthog_endpoints_per_key_and_workspace(served: Server) -> None:
    url = served.ingest_url
    before = {workspace: event_count(served, workspace) for workspace in ("main", "second")}

    def capture(key: str, origin: str, path: str, uuid: str) -> httpx.Response:
        body = {"api_key": key, "batch": [{"event": "Dashboard Viewed", "uuid": uuid,
                                           "properties": {"distinct_id": "cat"}}]}
        # posthog-js gzips its body and says so only in the query string (compression=gzip-js)
        return httpx.post(url + path + "?compression=gzip-js&ver=1",
                          content=gzip.compress(json.dumps(body).encode()),
                          headers={"Origin": origin, "Content-Type": "text/plain"}, timeout=10)

    ok = capture("wk_B", OTHER, "/e/", "00000000-0000-4000-8000-000000000001")
    assert ok.status_code == 200 and cors(ok)["access-control-allow-origin"] == OTHER
    second = capture("wk_Z", OTHER, "/i/v0/e/", "00000000-0000-4000-8000-000000000002")
    assert second.status_code == 200
    refused = capture("wk_Z", APP, "/batch/", "00000000-0000-4000-8000-000000000003")
    assert refused.status_code == 403 and cors(refused) == {}
    assert event_count(served, "main") - before["main"] == 1
    assert event_count(served, "second") - before["second"] == 1


def test_any_origin_for_a_key(tmp_path: Path) -> None:
    root = configure(tmp_path / "open", "open", ["wk_open", "wk_shut"], {"wk_open": ["*"]})
    server = start_server(root)
    try:
        answer = preflight(server.url, STRANGER)
        # "*" is answered with the request's own origin, and never with credentials
        assert cors(answer)["access-control-allow-origin"] == STRANGER
        assert "access-control-allow-credentials" not in answer.headers
        posted = track(server.url, "wk_open", STRANGER, "open-1")
        assert posted.status_code == 200 and cors(posted)["access-control-allow-origin"] == STRANGER
        assert track(server.url, "wk_shut", STRANGER, "shut-1").status_code == 403
        # the REST API is not the collector: no CORS there
        assert cors(httpx.get(server.url + "/api/v1/status", headers={"Origin": STRANGER})) == {}
        assert event_count(server, "open") == 1
    finally:
        server.stop()


def test_origins_config(tmp_path: Path) -> None:
    template = render_template("t", "wk_template")
    assert "[workspace.origins]" in template and '# "wk_template" = [' in template
    path = tmp_path / "accountlens.toml"
    path.write_text(template)
    assert load_config(path).workspace.origins == {}  # the default: no browser origin
    cases = {
        '"wk_template" = ["HTTPS://App.Example.com:443/", "http://localhost:3000", "*"]':
            ["https://app.example.com", "http://localhost:3000", "*"],
        '"wk_template" = ["app.example.com"]': "is not an origin",
        '"wk_template" = ["https://app.example.com/signup"]': "is not an origin",
        '"wk_revoked" = ["https://app.example.com"]': "not in write_keys",
    }
    for line, expected in cases.items():
        path.write_text(template.replace("[workspace.origins]\n", f"[workspace.origins]\n{line}\n"))
        if isinstance(expected, list):
            assert load_config(path).workspace.origins == {"wk_template": expected}
        else:
            with pytest.raises(ConfigError, match=expected):
                load_config(path)
