"""Configuration changes in the audit log: `accountlens.toml` is edited by hand, so each open of
the workspace compares it with what was seen last (`config.seen.json`, mode 0600, holding a
hash per setting, never a value) and records the settings that changed (names only; for key
and token lists, how many were added and removed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from accountlens.config import Config
from accountlens.governance.audit import Actor, AuditLog

SEEN_FILE = "config.seen.json"
_LISTED = ("workspace.write_keys", "workspace.api_tokens")  # secrets: counted, not named


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and not prefix.endswith(("origins", "pii", "event_days", "conf",
                                                        "quota_events", "module_events")):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def record_config_change(root: Path, config: Config, actor: Actor) -> dict[str, Any] | None:
    """Record in the audit log how the configuration differs from the last one seen; the entry,
    or None when nothing changed."""
    flat = _flat(config.model_dump(mode="json"))
    current = {key: _digest(value) for key, value in flat.items()}
    listed = {key: sorted(_digest(v) for v in flat.get(key, [])) for key in _LISTED}
    path = Path(root) / SEEN_FILE
    try:
        seen = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        seen = None
    if seen is not None and seen.get("settings") == current:
        return None
    details: dict[str, Any]
    if seen is None:
        action, details = "config.recorded", {"settings": len(current)}
    else:
        before = seen.get("settings", {})
        changed = sorted(k for k in current.keys() | before.keys()
                         if current.get(k) != before.get(k) and k not in _LISTED)
        details = {"changed": changed}
        for key in _LISTED:
            old, new = set(seen.get("listed", {}).get(key, [])), set(listed[key])
            if old != new:
                details[key] = {"added": len(new - old), "removed": len(old - new)}
        action = "config.change"
    entry = AuditLog(root).record(actor, action, "accountlens.toml", details)
    body = orjson.dumps({"settings": current, "listed": listed})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(body)
    return entry
