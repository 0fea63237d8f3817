"""A workspace built from CSV texts and a list of events, for tests with hand-computed fixtures."""

from __future__ import annotations

import json
from pathlib import Path

from accountlens.workspace import Workspace


def build(root: Path, name: str, csvs: dict[str, str], events: list[dict]) -> Workspace:
    """A new workspace at `root / "ws"`: each CSV text imported as its kind (in the given
    order), then the events as one JSONL file."""
    ws = Workspace.init(root / "ws", name=name)
    for kind, text in csvs.items():
        (root / f"{kind}.csv").write_text(text)
        ws.import_entities(kind, root / f"{kind}.csv")
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(root / "events.jsonl")
    return ws
