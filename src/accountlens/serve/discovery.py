"""How a command finds the `accountlens serve` that holds a workspace: the server writes
`serve.json` (its process id, URL and local admin token) into each workspace folder it serves
and removes it when it stops; a file left by a killed server is recognised by its process being
gone. The file is readable by its owner only (mode 0600): the token is an admin's."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

SERVE_FILE = "serve.json"


def announce(roots: list[Path], url: str, admin_token: str | None = None) -> None:
    """Write serve.json into each of `roots`; `admin_token`: the server's local admin token."""
    info: dict[str, Any] = {"pid": os.getpid(), "url": url}
    if admin_token is not None:
        info["admin_token"] = admin_token
    text = (json.dumps(info) + "\n").encode("utf-8")
    for root in roots:
        path = root / SERVE_FILE
        # a new file, 0600 from its first byte, then renamed over any old one (whatever its mode)
        temporary = path.with_name(f".{SERVE_FILE}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left by a crash
            os.write(fd, text)
        finally:
            os.close(fd)
        os.replace(temporary, path)


def withdraw(roots: list[Path]) -> None:
    for root in roots:
        path = root / SERVE_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()


def _running(root: Path) -> dict[str, Any] | None:
    """serve.json of the server that serves `root`, if one runs."""
    try:
        info = json.loads((root / SERVE_FILE).read_text(encoding="utf-8"))
        pid, info["url"] = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left by a server that was killed
    except PermissionError:
        pass  # another user's process: it runs
    return dict(info)


def running_server(root: Path) -> str | None:
    """The URL of the server that serves the workspace `root`, if one runs."""
    info = _running(root)
    return str(info["url"]) if info is not None else None


def local_admin_token(root: Path) -> str | None:
    """The admin token of the server that serves `root`, if one runs (and this user may read
    its serve.json): what the CLI on this machine sends as its bearer token."""
    info = _running(root)
    token = info.get("admin_token") if info is not None else None
    return token if isinstance(token, str) else None
