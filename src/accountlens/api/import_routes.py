"""`POST /api/v1/imports/{kind}`: bulk imports into a workspace that `accountlens serve` holds.

The server owns the DuckDB file while it runs, so `accountlens import …` hands its file to the
server instead of opening the store (cli/remote.py). The body is the file; it is written to the
workspace's `imports/` folder, then imported by the same code as a local import (the same
validation, all-or-nothing per file, the same messages, naming the file as the client named
it), under the store's write lock, so it takes turns with the background loader.

No `from __future__ import annotations` here: FastAPI must see the real types."""

import contextlib
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from accountlens.model.entities import ENTITIES

KINDS = ("events", *ENTITIES)
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
CHUNK = 1 << 20


def import_router(live_workspace: Callable, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(prefix="/api/v1/imports", tags=["imports"])

    @router.post("/{kind}", responses=errors)
    async def upload(
        kind: str, request: Request,
        filename: str = Query(description="the file's name: its type (events.jsonl.gz, "
                                          "accounts.csv, …) and how errors name it"),
        stream: bool = Query(default=False, description=(
            "answer NDJSON: progress lines `{\"progress\": {\"step\", \"share\"}}`, then one "
            "`{\"result\": …}` or `{\"error\": …}` line")),
        live=Depends(live_workspace),
    ) -> Any:
        """Import a file into the served workspace, as `accountlens import KIND FILE` does."""
        if kind not in KINDS:
            raise HTTPException(404, f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
        if not _NAME.match(filename) or filename.startswith("."):
            raise HTTPException(400, "filename must be a plain file name (letters, digits, . _ -)")
        folder = live.workspace.root / "imports" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        path = folder / filename
        with path.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)

        def run(progress: Callable[[str, float], None] | None) -> dict[str, Any]:
            try:
                return _import(live.workspace, kind, path, progress)
            finally:
                with contextlib.suppress(OSError):
                    path.unlink()
                    folder.rmdir()

        if not stream:
            try:
                return await run_in_threadpool(run, None)
            except _Refused as exc:
                raise HTTPException(400, exc.message(filename)) from exc
        return StreamingResponse(_streamed(run, filename), media_type="application/x-ndjson")

    return router


class _Refused(Exception):
    """An import refused by its validation (the message names the server's copy)."""

    def __init__(self, text: str, path: Path):
        self.text, self.path = text, path

    def message(self, filename: str) -> str:
        return self.text.replace(str(self.path), filename)


def _import(workspace: Any, kind: str, path: Path,
            progress: Callable[[str, float], None] | None) -> dict[str, Any]:
    from accountlens.ingest.importers import ImportError_

    try:
        if kind == "events":
            result = workspace.import_events(path, progress=progress)
            return {"kind": kind, "received": result.received, "inserted": result.inserted,
                    "duplicates": result.duplicates, "quarantined": result.quarantined,
                    "suppressed": result.suppressed}
        return {"kind": kind, "rows": workspace.import_entities(kind, path)}
    except ImportError_ as exc:
        raise _Refused(str(exc), path) from exc


def _streamed(run: Callable, filename: str) -> Iterator[bytes]:
    """Run the import on a thread; yield its progress, then its result, as NDJSON lines."""
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def work() -> None:
        try:
            result = run(lambda step, share: lines.put({"progress": {"step": step, "share": share}}))
            lines.put({"result": result})
        except _Refused as exc:
            lines.put({"error": exc.message(filename)})
        except Exception as exc:  # noqa: BLE001 - reported to the client, which waits for a last line
            lines.put({"error": f"{type(exc).__name__}: {exc}"})
        finally:
            lines.put(None)

    threading.Thread(target=work, name="accountlens-import", daemon=True).start()
    while (line := lines.get()) is not None:
        yield orjson.dumps(line) + b"\n"
