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
# The tables of the data model metrics read; the workspace adds the daily rollup when current.
MODEL_TABLES = ("accounts", "org_units", "users", "memberships", "subscriptions", "outcomes", EVENTS)
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
    manifest = json.loads(text)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{where}: export format {manifest.get('format_version')} is not the "
                         f"one this accountlens reads ({FORMAT_VERSION}); export again")
    return manifest


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
