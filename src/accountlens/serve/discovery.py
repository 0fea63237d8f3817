"""How a command finds the `accountlens serve` that holds a workspace: the server writes
`serve.json` (its process id and URL) into each workspace folder it serves and removes it when
it stops; a file left by a killed server is recognised by its process being gone."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

SERVE_FILE = "serve.json"


def announce(roots: list[Path], url: str) -> None:
    for root in roots:
        path = root / SERVE_FILE
        path.write_text(json.dumps({"pid": os.getpid(), "url": url}) + "\n", encoding="utf-8")


def withdraw(roots: list[Path]) -> None:
    for root in roots:
        path = root / SERVE_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()


def running_server(root: Path) -> str | None:
    """The URL of the server that serves the workspace `root`, if one runs."""
    try:
        info = json.loads((root / SERVE_FILE).read_text(encoding="utf-8"))
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left by a server that was killed
    except PermissionError:
        pass  # another user's process: it runs
    return url
