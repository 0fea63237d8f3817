"""`Workspace.metric(...)`: the Python API of the metric registry (returns a DataFrame)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pandas as pd

from accountlens.metrics.levels import FILTERS
from accountlens.metrics.registry import MetricError, MetricRequest, run

if TYPE_CHECKING:
    from accountlens.workspace import Workspace


def as_date(value: str | dt.date | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise MetricError(f"as_of must be a date YYYY-MM-DD, not {value!r}") from exc


def request(name: str, level: str | None = None, as_of: str | dt.date | None = None,
            **kwargs: Any) -> MetricRequest:
    """Split keyword arguments into account filters (industry=…, account=…) and metric params."""
    filters = {k: v for k, v in kwargs.items() if k in FILTERS and v is not None}
    params = {k: v for k, v in kwargs.items() if k not in FILTERS and v is not None}
    from accountlens.metrics.registry import normalize_filters

    return MetricRequest(name=name, level=level, as_of=as_date(as_of),
                         filters=normalize_filters(filters), params=params)


def metric(ws: Workspace, name: str, level: str | None = None,
           as_of: str | dt.date | None = None, engine: str = "duckdb",
           parquet: str | None = None, **kwargs: Any) -> pd.DataFrame:
    """`ws.metric("seat_utilization", level="account", as_of="2024-03-31", industry="retail")`;
    `engine="spark"` runs it on Spark over the workspace's Parquet export (docs/spark.md)."""
    return run(ws.engine(engine, parquet), ws.config.metrics, ws.config.analysis,
               request(name, level, as_of, **kwargs))


def metrics_table(ws: Workspace, names: list[str], level: str | None = None,
                  as_of: str | dt.date | None = None, engine: str = "duckdb",
                  parquet: str | None = None, **filters: Any) -> pd.DataFrame:
    """`ws.metrics_table(["mau", "seat_utilization", "nrr"], level="account")`: one row per
    entity, the metrics' columns side by side, computed as one query (metrics/table.py)."""
    from accountlens.metrics.registry import normalize_filters
    from accountlens.metrics.table import run_table

    return run_table(ws.engine(engine, parquet), ws.config.metrics, ws.config.analysis, names,
                     level, as_date(as_of),
                     normalize_filters({k: v for k, v in filters.items() if v is not None}))
