"""Tokens stored hashed with roles, expiry, rotation and revocation; the hash-chained audit trail
(appends from several processes, tampering detected by `accountlens audit verify`); changes of
accountlens.toml, imports and exports recorded once each, without secrets."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import stat
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from accountlens.cli.main import app
from accountlens.governance.audit import Actor, AuditLog
from accountlens.governance.tokens import TokenError, TokenStore
from accountlens.workspace import Workspace

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_tokens_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").close()
    code, out = cli("tokens", "create", "--role", "csm", "--owner", "Ana@Example.com",
                    "--name", "Ana", "--dir", str(tmp_path / "ws"), "--format", "json")
    assert code == 0, out
    made = orjson.loads(out)[0]
    token = made["token"]
    assert made["role"] == "csm" and made["owner"] == "ana@example.com" and made["state"] == "active"
    stored = (tmp_path / "ws" / "tokens.json").read_text()
    # the secret is what follows al_<id>_ (it may itself contain "_": URL-safe base64)
    assert token not in stored and token.split("_", 2)[2] not in stored
    for name in ("tokens.json", "secret.key", "audit.jsonl"):
        assert stat.S_IMODE(os.stat(tmp_path / "ws" / name).st_mode) == 0o600, name
    store = TokenStore(tmp_path / "ws")
    principal = store.resolve(token)
    assert principal is not None and principal.role == "csm" and principal.owner == "ana@example.com"
    assert store.resolve(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    # another workspace (its own server secret) does not know it
    Workspace.init(tmp_path / "other").close()
    assert TokenStore(tmp_path / "other").resolve(token) is None
    code, out = cli("tokens", "list", "--dir", str(tmp_path / "ws"), "--format", "json")
    assert [row["id"] for row in orjson.loads(out)] == [made["id"]] and "token" not in orjson.loads(out)[0]


def test_rotation_expiry_and_revocation(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token, record = store.create("viewer", expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert store.resolve(token).role == "viewer"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    assert store.resolve(token, now=later) is None  # expired by then
    new, _ = store.rotate(record.id)
    assert store.resolve(token) is None and store.resolve(new).name == f"token:{record.id}"
    credential = store.credential(new)
    assert store.resolve_credential(credential) is not None
    store.revoke(record.id)
    assert store.resolve(new) is None and store.resolve_credential(credential) is None
    with pytest.raises(TokenError, match="revoked"):
        store.rotate(record.id)
    with pytest.raises(TokenError, match="needs a book"):
        store.create("csm")
    with pytest.raises(TokenError, match="unknown role"):
        store.create("root")
    with pytest.raises(TokenError, match="not in the future"):
        store.create("admin", expires=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(TokenError, match="no token with id"):
        store.revoke("nope")


def test_plain_api_tokens_still_work_as_analyst_tokens(tmp_path: Path) -> None:
    store = TokenStore(tmp_path, legacy=["old-plain-token"])
    principal = store.resolve("old-plain-token")
    assert principal is not None and principal.role == "analyst" and principal.may("raw")
    assert not principal.may("write") and store.resolve("old-plain-tokem") is None
    assert store.has_tokens()


def _append(root: str, worker: int) -> None:
    log = AuditLog(Path(root))
    for i in range(25):
        log.record(Actor(f"worker:{worker}", "admin", "test"), "test.append", f"{worker}-{i}")


def test_appends_from_several_processes_keep_one_chain(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append, args=(str(tmp_path), w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    log = AuditLog(tmp_path)
    entries = log.entries()
    assert [e["seq"] for e in entries] == list(range(1, 101))
    assert sorted(e["target"] for e in entries) == sorted(f"{w}-{i}" for w in range(4) for i in range(25))
    assert log.verify() == {"ok": True, "entries": 100, "head": entries[-1]["hash"],
                            "broken_at": None, "problem": None}


@pytest.mark.parametrize("tamper", ["edit", "remove", "swap", "garbage"])
def test_audit_verify_detects_tampering(tmp_path: Path, tamper: str) -> None:
    Workspace.init(tmp_path / "ws").close()
    log = AuditLog(tmp_path / "ws")
    for i in range(5):
        log.record(Actor.cli(), "token.create", f"token:{i}", {"role": "viewer"})
    lines = log.path.read_bytes().splitlines()
    assert cli("audit", "verify", "--dir", str(tmp_path / "ws"))[0] == 0
    if tamper == "edit":
        entry = orjson.loads(lines[3])
        entry["details"]["role"] = "admin"
        lines[3] = orjson.dumps(entry)
    elif tamper == "remove":
        del lines[3]
    elif tamper == "swap":
        lines[2], lines[3] = lines[3], lines[2]
    else:
        lines[3] = b"{not json"
    log.path.write_bytes(b"\n".join(lines) + b"\n")
    result = log.verify()
    assert not result["ok"] and result["broken_at"] in (3, 4)
    code, out = cli("audit", "verify", "--dir", str(tmp_path / "ws"), "--format", "json")
    assert code == 1 and orjson.loads(out)[0]["problem"].startswith("line ")


def test_config_changes_imports_and_exports_are_recorded_once(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root).close()
    log = AuditLog(root)
    assert [e["action"] for e in log.entries()] == ["config.recorded"]
    Workspace.open(root).close()  # unchanged: nothing recorded
    assert len(log.entries()) == 1
    config = root / "accountlens.toml"
    text = config.read_text()
    text = text.replace("stall_after_days = 7.0", "stall_after_days = 3.0")
    text = text.replace('write_keys = ["', 'write_keys = ["wk_added_secret_key", "')
    config.write_text(text)
    with Workspace.open(root) as ws:
        (tmp_path / "accounts.csv").write_text("account_id,name\nacc-1,One\nacc-2,Two\n")
        ws.import_entities("accounts", tmp_path / "accounts.csv")
        ws.export_parquet(tmp_path / "export")
    change = log.entries(action="config.change")
    assert len(change) == 1
    assert change[0]["details"] == {"changed": ["handoffs.stall_after_days"],
                                    "workspace.write_keys": {"added": 1, "removed": 0}}
    assert "wk_added_secret_key" not in log.path.read_text()
    imported = log.entries(action="import.")
    assert [(e["action"], e["target"], e["details"]) for e in imported] == [
        ("import.accounts", "accounts.csv", {"rows": 2})]
    exported = log.entries(action="export.")
    assert len(exported) == 1 and exported[0]["details"]["tables"]["accounts"] == 2
    assert log.verify()["ok"]
    code, out = cli("audit", "--dir", str(root), "--action", "import.", "--format", "json")
    assert code == 0 and [e["action"] for e in orjson.loads(out)] == ["import.accounts"]


def test_the_python_api_makes_tokens_and_scopes_by_them(tmp_path: Path) -> None:
    from accountlens.demo.simulator import generate_demo

    generate_demo(tmp_path / "ws", accounts=6, seed=4)
    with Workspace.open(tmp_path / "ws") as ws:
        made = ws.create_token("csm", accounts=["acc-002"], name="py")
        principal = ws.tokens.resolve(made["token"])
        view = ws.acting_as(principal, "python")
        assert set(view.metric("mau", level="account").account_id) <= {"acc-002"} | {
            r["account_id"] for r in ws.store.rows(
                "SELECT account_id FROM accounts WHERE parent_account_id = 'acc-002'")}
        rotated = ws.rotate_token(made["id"])
        assert ws.tokens.resolve(made["token"]) is None and ws.tokens.resolve(rotated["token"])
        assert ws.revoke_token(made["id"])["state"] == "revoked"
        actions = [e["action"] for e in ws.audit.entries(action="token.")]
        assert actions == ["token.create", "token.rotate", "token.revoke"]
