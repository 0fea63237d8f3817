"""Workspace lifecycle, schema migrations, config errors and the CLI, run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from accountlens.config import ConfigError
from accountlens.store.base import StoreError
from accountlens.store.schema import SCHEMA_VERSION
from accountlens.workspace import Workspace, WorkspaceError


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "accountlens", *args],
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def test_init_writes_commented_config_and_refuses_twice(tmp_path: Path) -> None:
    root = tmp_path / "w"
    out = cli("init", str(root)).stdout
    assert "write key wk_" in out
    text = (root / "accountlens.toml").read_text()
    assert text.count("#") > 5 and "write_keys" in text
    assert (root / "accountlens.duckdb").exists()
    again = cli("init", str(root), check=False)
    assert again.returncode == 1 and "already a workspace" in again.stderr


def test_open_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not an accountlens workspace"):
        Workspace.open(tmp_path)
    Workspace.init(tmp_path / "w").close()
    config = tmp_path / "w" / "accountlens.toml"
    config.write_text(config.read_text() + "\n[ingest]\nmax_event_bytes = 'big'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Workspace.open(tmp_path / "w")
    config.write_text("[ingest]\nmax_event_bytes = -3\nbogus = 1\n")
    with pytest.raises(ConfigError) as err:
        Workspace.open(tmp_path / "w")
    assert "ingest.max_event_bytes" in str(err.value) and "ingest.bogus" in str(err.value)
    result = cli("status", "--dir", str(tmp_path / "w"), check=False)
    assert result.returncode == 1 and "ingest.bogus" in result.stderr


def test_schema_migrates_up_and_refuses_newer(tmp_path: Path) -> None:
    root = tmp_path / "w"
    Workspace.init(root).close()
    # An "older" workspace: the file exists but has no schema yet (version 0).
    (root / "accountlens.duckdb").unlink()
    duckdb.connect(str(root / "accountlens.duckdb")).close()
    with Workspace.open(root) as ws:
        assert ws.store.schema_version() == SCHEMA_VERSION
    con = duckdb.connect(str(root / "accountlens.duckdb"))
    con.execute("INSERT INTO schema_version VALUES (999, 'from the future', now())")
    con.close()
    with pytest.raises(StoreError, match="newer than this accountlens understands"):
        Workspace.open(root)


def test_cli_import_status_quarantine_roundtrip(tmp_path: Path) -> None:
    root = tmp_path / "w"
    cli("init", str(root))
    events = tmp_path / "e.jsonl"
    events.write_text(
        json.dumps({"type": "track", "messageId": "a", "userId": "u", "event": "X",
                    "timestamp": "2024-01-01T00:00:00Z", "context": {"groupId": "acc"}}) + "\n"
        + json.dumps({"type": "track", "messageId": "b", "event": "X",
                      "timestamp": "2024-01-01T00:00:00Z"}) + "\n")
    imported = json.loads(cli("import", "events", str(events), "--dir", str(root), "--format", "json").stdout)
    assert imported == [{"file": str(events), "received": 2, "inserted": 1, "duplicates": 0, "quarantined": 1}]
    status = json.loads(cli("status", "--dir", str(root), "--format", "json").stdout)
    assert len(status) == 1
    assert (status[0]["events"], status[0]["quarantined"], status[0]["attributed_explicit"]) == (1, 1, 1)
    csv_out = cli("quarantine", "list", "--dir", str(root), "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("quarantine_id,message_id,reason")
    assert "no userId, anonymousId or groupId" in csv_out
    bad_patch = cli("quarantine", "replay", "--dir", str(root), "--patch", "{nope", check=False)
    assert bad_patch.returncode == 1 and "not valid JSON" in bad_patch.stderr
    replay = cli("quarantine", "replay", "1", "--dir", str(root), "--patch", '{"userId": "u2"}').stdout
    assert "1 loaded" in replay
    table = cli("attribution", "--dir", str(root)).stdout
    assert "explicit" in table and "unattributed" in table
    bad = tmp_path / "accounts.csv"
    bad.write_text("account_id,employees\nacme,many\n")
    result = cli("import", "accounts", str(bad), "--dir", str(root), check=False)
    assert result.returncode == 1 and f"{bad}:2 column employees: not a valid bigint" in result.stderr
