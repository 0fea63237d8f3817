"""The analyses through every interface: CLI (subprocess), REST (real server), Python API."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests import fixtures_b2b
from tests.conftest import start_server


def test_cli_rest_and_python_agree(tmp_path) -> None:
    ws = fixtures_b2b.build(tmp_path)
    python_rows = ws.analysis("handoffs", view="bottlenecks", min_handoffs=1)
    root = ws.root
    ws.close()
    cli = subprocess.run(
        [sys.executable, "-m", "accountlens", "handoffs", "--dir", str(root), "--view", "bottlenecks",
         "--min-handoffs", "1", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    cli_rows = json.loads(cli.stdout)
    assert [r["from_actor"] for r in cli_rows] == list(python_rows.from_actor)
    bad = subprocess.run([sys.executable, "-m", "accountlens", "paths", "--dir", str(root),
                          "--level", "account"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "supports level" in bad.stderr
    server = start_server(root)
    try:
        listing = httpx.get(server.url + "/api/v1/analyses", timeout=10).json()
        assert {a["name"] for a in listing} == {
            "handoffs", "collaboration", "sequences", "paths", "champions", "health", "predict",
            "backtest", "signals", "renewals", "value", "accounts", "activity", "anomalies",
            "reconcile", "attribution", "experiments"}
        body = httpx.get(server.url + "/api/v1/analyses/handoffs",
                         params={"view": "bottlenecks", "min_handoffs": 1}, timeout=30).json()
        assert body["rows"] == cli_rows and body["as_of"] == python_rows.attrs["as_of"].isoformat()
        response = httpx.get(server.url + "/api/v1/analyses/champions", params={"level": "role"}, timeout=10)
        assert response.status_code == 422
        response = httpx.get(server.url + "/api/v1/analyses/handoffs", params={"bogus": 1}, timeout=10)
        assert response.status_code == 422
    finally:
        server.stop()
