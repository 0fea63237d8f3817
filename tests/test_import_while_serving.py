"""`accountlens import` while `accountlens serve` holds the workspace: the CLI hands the file to
the running server, with the same validation, all-or-nothing, and the same messages; a store
held by some other process is named as such, not blamed on `serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests import fixtures_b2b
from tests.conftest import admin_headers, start_server


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accountlens", *args], capture_output=True,
                          text=True, timeout=180)


def test_imports_go_through_the_running_server(tmp_path) -> None:
    ws = fixtures_b2b.build(tmp_path)
    root = ws.root
    ws.close()
    server = start_server(root)
    try:
        before = server.status()
        accounts = tmp_path / "more_accounts.csv"
        accounts.write_text("account_id,name,domain\ninitech,Initech,initech.com\nhooli,Hooli,hooli.xyz\n")
        out = cli("import", "accounts", str(accounts), "--dir", str(root))
        assert out.returncode == 0, out.stderr
        assert "importing through the server" in out.stderr
        assert out.stdout.strip() == f"imported 2 accounts from {accounts}"
        events = tmp_path / "late.jsonl"
        events.write_text("".join(json.dumps(e) + "\n" for e in [
            fixtures_b2b.ev("late-1", "ann", "Report Shared", "2024-03-21T09:00:00Z"),
            fixtures_b2b.ev("late-2", "bob", "Report Shared", "2024-03-21T10:00:00Z"),
            {"type": "track", "messageId": "late-3", "event": "No User"},  # quarantined
        ]))
        out = cli("import", "events", str(events), "--dir", str(root), "--format", "json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [{"file": str(events), "received": 3, "inserted": 2,
                                           "duplicates": 0, "quarantined": 1}]
        after = server.status()
        assert after["accounts"] == before["accounts"] + 2
        assert after["events"] == before["events"] + 2
        assert after["quarantined"] == before["quarantined"] + 1
        again = cli("import", "events", str(events), "--dir", str(root), "--format", "json")
        assert json.loads(again.stdout)[0]["inserted"] == 0  # exactly once, however often

        bad = tmp_path / "bad_units.csv"
        bad.write_text("unit_id,account_id,kind,name\nu1,acme,team,Ok\nu2,acme,squad,Bad\n")
        refused = cli("import", "units", str(bad), "--dir", str(root))
        assert refused.returncode == 1
        assert f"{bad}:3 column kind: must be one of" in refused.stderr  # the user's path and line
        assert server.status()["org_units"] == before["org_units"]  # nothing from the file
        assert not list((root / "imports").rglob("*.csv"))  # the server's copies are gone
    finally:
        server.stop()
    assert not (root / "serve.json").exists()


def test_the_import_endpoint_needs_a_token_when_tokens_are_set(tmp_path) -> None:
    ws = fixtures_b2b.build(tmp_path)
    root = ws.root
    ws.close()
    config = (root / "accountlens.toml").read_text().replace("api_tokens = []", 'api_tokens = ["t-secret"]')
    (root / "accountlens.toml").write_text(config)
    server = start_server(root)
    try:
        url = f"{server.url}/api/v1/imports/accounts"
        body = b"account_id,name\nzeta,Zeta\n"
        denied = httpx.post(url, params={"filename": "a.csv"}, content=body, timeout=30)
        assert denied.status_code == 401 and denied.json()["success"] is False
        accepted = httpx.post(url, params={"filename": "a.csv"}, content=body, timeout=30,
                              headers=admin_headers(root))
        assert accepted.status_code == 200 and accepted.json() == {"kind": "accounts", "rows": 1}
        unknown = httpx.post(f"{server.url}/api/v1/imports/planets", params={"filename": "a.csv"},
                             content=body, timeout=30, headers=admin_headers(root))
        assert unknown.status_code == 404
        sneaky = httpx.post(url, params={"filename": "../../x.csv"}, content=body, timeout=30,
                            headers=admin_headers(root))
        assert sneaky.status_code == 400
        accounts = tmp_path / "b.csv"
        accounts.write_text("account_id,name\nyota,Yota\n")
        out = cli("import", "accounts", str(accounts), "--dir", str(root))  # sends the token
        assert out.returncode == 0, out.stderr
    finally:
        server.stop()


def test_a_store_held_by_another_process_is_named(tmp_path) -> None:
    ws = fixtures_b2b.build(tmp_path)  # this test's process holds the DuckDB file
    try:
        accounts = tmp_path / "a.csv"
        accounts.write_text("account_id,name\nzeta,Zeta\n")
        out = cli("import", "accounts", str(accounts), "--dir", str(ws.root))
        assert out.returncode == 1
        assert f"PID {os.getpid()}" in out.stderr and "pytest" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        ws.close()
