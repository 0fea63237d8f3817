"""The Parquet export layout that every engine reads: one file per table, events partitioned by date.

A folder holds `<table>.parquet` per table, `events/event_date=YYYY-MM-DD/*.parquet` (Hive
partitioning) and `accountlens-export.json`, the manifest written last: a folder without it is
an unfinished export and no engine opens it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from accountlens.store.base import StoreError

MANIFEST = "accountlens-export.json"
FORMAT_VERSION = 1
EVENTS = "events"
# The tables of the data model metrics and analyses read (the account trait history: the
# segments of health, signals, value and accounts as of a day; the per-source subscriptions:
# reconcile; the rule set versions: attribution; designs, assignments and imported exposures:
# experiments); the workspace adds the daily rollup when current.
MODEL_TABLES = ("accounts", "org_units", "users", "memberships", "subscriptions", "outcomes", EVENTS,
                "account_traits_history", "subscription_sources", "attribution_rule_versions",
                "attribution_rule_changes", "experiments", "experiment_assignments",
                "experiment_exposures")
# Partition column of the events and the DuckDB expression of its value, per granularity.
PARTITIONS: dict[str, tuple[str, str]] = {
    "day": ("event_date", "CAST(timestamp AS DATE)"),
    "month": ("event_month", "strftime(timestamp, '%Y-%m')"),
}


def table_file(name: str) -> str:
    """A table's path inside the export folder: a folder of partitions for events."""
    return EVENTS if name == EVENTS else f"{name}.parquet"


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.exists():
        raise StoreError(f"{directory} is not an accountlens Parquet export (no {MANIFEST}); "
                         "create one with `accountlens export parquet DIR`")
    return parse_manifest(path.read_text(encoding="utf-8"), str(path))


def parse_manifest(text: str, where: str) -> dict[str, Any]:
    """The manifest in `text` (read from `where`), if an engine may read its export."""
    manifest = json.loads(text)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{where}: export format {manifest.get('format_version')} is not the "
                         f"one this accountlens reads ({FORMAT_VERSION}); export again")
    check_current(manifest, where)
    return manifest


# The manifest entry of an export written before people were deleted from the workspace
# (governance/deletion.py): it still holds their data, and no engine opens it.
STALE = "stale"


def check_current(manifest: dict[str, Any], where: str) -> None:
    """Refuse an export flagged `stale`: it contains data of people deleted since."""
    stale = manifest.get(STALE)
    if stale:
        raise StoreError(f"{where}: this export contains data of deleted people (deleted "
                         f"{stale.get('flagged_at', 'after it was written')}); run `accountlens "
                         "export parquet DIR --overwrite` to write it again without them")


def flag_stale(directory: Path, reason: str, people: int) -> bool:
    """Mark the export in `directory` stale (a `stale` entry in its manifest: why, when, how
    many people — no ids); False when there is no export there. A later flag adds its count."""
    path = directory / MANIFEST
    if not path.is_file():
        return False
    manifest = json.loads(path.read_text(encoding="utf-8"))
    earlier = manifest.get(STALE) or {}
    manifest[STALE] = {
        "reason": reason,
        "flagged_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "people_deleted": int(earlier.get("people_deleted", 0)) + people,
    }
    # written aside and renamed over: a reader sees the old manifest or the new, never half
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return True


def prepare(directory: Path, overwrite: bool) -> None:
    """Make `directory` ready for a new export; refuse to clobber anything but an old export."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MANIFEST).exists():
            raise StoreError(f"{directory} is not empty and holds no accountlens export; "
                             "choose an empty or new folder")
        if not overwrite:
            raise StoreError(f"{directory} already holds an export; pass --overwrite to replace it")
        old = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        (directory / MANIFEST).unlink()  # first: a half-replaced export must not look complete
        for entry in old.get("tables", {}).values():
            target = directory / entry["path"]
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    directory.mkdir(parents=True, exist_ok=True)


def write_manifest(directory: Path, rows: dict[str, int], partition: str,
                   schema_version: int) -> dict[str, Any]:
    column = PARTITIONS[partition][0]
    manifest = {
        "format_version": FORMAT_VERSION,
        "schema_version": schema_version,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "events_partitioned_by": {"granularity": partition, "column": column},
        "tables": {name: {"path": table_file(name), "rows": count} for name, count in rows.items()},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
