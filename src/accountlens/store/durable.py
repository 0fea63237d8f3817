"""Making writes to files durable: the lake's Parquet files (store/lake.py) and the ingest log's
segments (ingest/log.py) both flush a file, or a folder's names after a rename or a create."""

from __future__ import annotations

import os
from pathlib import Path


def fsync(path: Path) -> None:
    """Flush a file, or a folder's names (after renames or creates in it), to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
