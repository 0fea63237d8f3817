"""`accountlens import` while `accountlens serve` holds the workspace: the file is handed to
the server's import endpoint (api/import_routes.py), which imports it with the same validation
and reports its progress line by line. Imports are writes: the CLI sends the server's local
admin token (serve/discovery.py), which only the user who started the server can read."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


class RemoteImportError(RuntimeError):
    """The server refused the file (its validation's message) or could not be reached."""


def import_file(url: str, kind: str, path: Path, workspace: str, token: str | None,
                progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Import `path` through the server at `url`; its result (as a local import's)."""
    query = urllib.parse.urlencode({"filename": path.name, "stream": "true", "workspace": workspace})
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(path.stat().st_size)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with path.open("rb") as body:
        request = urllib.request.Request(f"{url}/api/v1/imports/{kind}?{query}", data=body,
                                         headers=headers, method="POST")
        try:
            response = urllib.request.urlopen(request, timeout=3600)
        except urllib.error.HTTPError as exc:
            text = _error_text(exc.read(), path)
            if exc.code in (401, 403) and not token:
                text += (" (the server's serve.json, which holds its local admin token, could not "
                         "be read: run this as the user who started `accountlens serve`)")
            raise RemoteImportError(text) from None
        except OSError as exc:
            raise RemoteImportError(f"the server at {url} holds the workspace but cannot be "
                                    f"reached: {exc}") from None
    with response:
        for raw in response:
            line = json.loads(raw)
            if "progress" in line and progress is not None:
                progress(line["progress"]["step"], line["progress"]["share"])
            elif "result" in line:
                return dict(line["result"])
            elif "error" in line:
                raise RemoteImportError(str(line["error"]).replace(path.name, str(path)))
    raise RemoteImportError(f"the server at {url} stopped before the import of {path} finished")


def _error_text(body: bytes, path: Path) -> str:
    return _message(body).replace(path.name, str(path))


def _message(body: bytes) -> str:
    """The API's error message in a JSON error `body` (else the body as text)."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")


def call(url: str, directory: Path, method: str, path: str, params: dict[str, Any] | None = None,
         body: Any = None) -> Any:
    """The server's JSON answer to `method path?params` (a JSON `body`, when given) for the
    workspace folder `directory`, sent with the server's own admin token (serve.json); raises
    RemoteImportError with the server's message when it refuses or cannot be reached."""
    from accountlens.config import CONFIG_FILE, load_config
    from accountlens.serve.discovery import local_admin_token

    name = load_config(directory / CONFIG_FILE).workspace.name
    query = urllib.parse.urlencode({**(params or {}), "workspace": name})
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    token = local_admin_token(directory)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(f"{url}{path}?{query}", data=data, headers=headers,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RemoteImportError(f"the server refused: {_message(exc.read())}") from None
    except OSError as exc:
        raise RemoteImportError(f"the server at {url} holds the workspace but cannot be "
                                f"reached: {exc}") from None
