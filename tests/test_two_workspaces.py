"""One `accountlens serve` of two workspaces: each is reached by name and sees only its own
data; workspaces that cannot be told apart are refused at start (issue 16, finding 5)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from accountlens.workspace import Workspace
from tests.conftest import admin_headers, free_port, start_server, write_key_of

# users and account of each workspace; `quarantined` events without any identity
PEOPLE = {"alpha": (["a-ann", "a-bob", "a-cat"], "acme", 1),
          "beta": (["b-dan", "b-eve"], "globex", 2)}


def _events(name: str) -> list[dict]:
    users, account, quarantined = PEOPLE[name]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = (now - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    events: list[dict] = [{"type": "group", "messageId": f"{name}-group", "userId": users[0],
                           "groupId": account, "traits": {"name": account.title()},
                           "timestamp": stamp}]
    for user in users:
        events.append({"type": "identify", "messageId": f"{name}-id-{user}", "userId": user,
                       "traits": {"email": f"{user}@{account}.com"}, "timestamp": stamp})
        for step in range(2):  # a path of two events each
            events.append({"type": "track", "messageId": f"{name}-{user}-{step}", "userId": user,
                           "event": ("Report Opened", "Report Shared")[step], "timestamp": stamp,
                           "context": {"groupId": account}})
    events += [{"type": "track", "messageId": f"{name}-bad-{i}", "event": "Nobody",
                "timestamp": stamp} for i in range(quarantined)]
    return events


def _serve_two(tmp_path: Path):
    roots = [tmp_path / name for name in PEOPLE]
    for root in roots:
        Workspace.init(root, name=root.name).close()
    return roots, start_server(roots[0], also=(roots[1],))


def test_two_workspaces_each_see_only_their_own(tmp_path) -> None:
    roots, server = _serve_two(tmp_path)
    try:
        for root in roots:
            response = httpx.post(server.url + "/v1/batch", auth=(write_key_of(root), ""),
                                  json={"batch": _events(root.name)}, timeout=30)
            assert response.status_code == 200, response.text
        assert httpx.get(server.url + "/api/v1/workspaces", timeout=10).json() == ["alpha", "beta"]
        # several served: the name is required, and an unknown one is a clear 404
        assert httpx.get(server.url + "/api/v1/status", timeout=10).status_code == 400
        unknown = httpx.get(server.url + "/api/v1/metrics/mau", params={"workspace": "gamma"},
                            timeout=10)
        assert unknown.status_code == 404 and "gamma" in unknown.json()["error"]
        for name, (users, account, quarantined) in PEOPLE.items():
            params = {"workspace": name}
            flushed = httpx.post(server.url + "/api/v1/flush", params=params, timeout=60,
                                 headers=admin_headers(server.root))
            assert flushed.status_code == 200  # (the background loader may have been first)
            status = httpx.get(server.url + "/api/v1/status", params=params, timeout=30).json()
            assert status["workspace"] == name
            assert status["events"] == 1 + 3 * len(users)
            assert status["quarantined"] == quarantined

            mau = httpx.get(server.url + "/api/v1/metrics/mau",
                            params={**params, "level": "account"}, timeout=60)
            assert mau.status_code == 200, mau.text
            rows = mau.json()["rows"]
            assert [row["account_id"] for row in rows] == [account]
            assert [row["mau"] for row in rows] == [len(users)], rows

            paths = httpx.get(server.url + "/api/v1/analyses/paths", params=params, timeout=60)
            assert paths.status_code == 200, paths.text
            text = json.dumps(paths.json()["rows"])
            assert "Report Opened" in text  # the workspace's own steps, nothing of the other's
            other = next(n for n in PEOPLE if n != name)
            assert other not in text and PEOPLE[other][1] not in text

            held = httpx.get(server.url + "/api/v1/quarantine", params=params, timeout=30).json()
            assert sorted(row["message_id"] for row in held) == [
                f"{name}-bad-{i}" for i in range(quarantined)]
    finally:
        server.stop()
    for name, (users, _, quarantined) in PEOPLE.items():  # and so it is on disk
        with Workspace.open(tmp_path / name) as ws:
            ids = [row["message_id"] for row in ws.store.arrow(
                "SELECT message_id FROM events").to_pylist()]
            assert len(ids) == 1 + 3 * len(users) and all(i.startswith(name) for i in ids)
            assert ws.store.scalar("SELECT count(*) FROM quarantine") == quarantined


def _serve_fails(*roots: Path) -> str:
    dirs = [arg for root in roots for arg in ("--dir", str(root))]
    result = subprocess.run([sys.executable, "-m", "accountlens", "serve", *dirs,
                             "--port", str(free_port())], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def _set(root: Path, key: str, value: str) -> None:
    config = root / "accountlens.toml"
    config.write_text(re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", config.read_text(), count=1))


@pytest.mark.parametrize("clash", ["name", "write key", "folder"])
def test_workspaces_that_cannot_be_told_apart_are_refused(tmp_path, clash: str) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        Workspace.init(root, name=root.name).close()
    if clash == "name":
        _set(two, "name", '"one"')
        message = _serve_fails(one, two)
        assert f"{one} and {two} are both named 'one'" in message
    elif clash == "write key":
        key = write_key_of(one)
        _set(two, "write_keys", json.dumps([write_key_of(two), key]))
        message = _serve_fails(one, two)
        assert f"write key {key[:6]}…" in message and str(one) in message and str(two) in message
        assert key not in message  # a secret: only its first characters
    else:
        link = tmp_path / "link"
        link.symlink_to(one)  # the same folder by another name
        message = _serve_fails(one, two, link)
        assert f"{link} is given twice (as {one} too)" in message
    for root in (one, two):  # nothing was started: both open again
        with Workspace.open(root) as ws:
            assert ws.store.scalar("SELECT count(*) FROM events") == 0
