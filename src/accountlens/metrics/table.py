"""Several metrics as one table — one row per entity of the level, their columns side by side —
computed as one query, so the engine shares what they have in common (the accounts known on the
day, the windows of the rollup) instead of computing it once per metric. An engine that plans
such a query as one deep pipeline (Spark: `SparkStore.table_in_parts`) computes each metric's
part as its own query instead and joins the small per-entity results.

Only metrics that give one row per entity can be columns (`Metric.tabular`); a column reported by
several metrics (e.g. `mau` by `mau` and `seat_utilization`) appears once, from the first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir

from accountlens.config import AnalysisSection, MetricsSection
from accountlens.metrics.registry import (
    Metric,
    MetricError,
    MetricRequest,
    available_levels,
    build_expression,
    compiled,
    fetch,
    get,
    key_column,
    metric_notes,
    prepare,
    result,
)
from accountlens.model.retention_horizon import horizon_notes
from accountlens.results import Result
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd


def needs_params(metric: Metric) -> bool:
    """Whether the metric has parameters without defaults (it cannot run as a column)."""
    return any(f.is_required() for f in metric.params.model_fields.values())


def columnable(metric: Metric) -> bool:
    """Whether the metric can be a column of a metrics table."""
    return metric.tabular and not needs_params(metric)


_PARTS = itertools.count()  # names the parts a table registers (threads may share a session)


def _parts(names: list[str], request: MetricRequest, settings: MetricsSection, model: str,
           as_of, inline: bool) -> tuple[list[ir.Table], str]:
    """Each metric's expression, and the key column they share."""
    parts, key = [], ""
    for name in names:
        part, level = build_expression(get(name), dataclasses.replace(request, name=name),
                                       settings, model, as_of, inline=inline)
        key = key_column(level)
        parts.append(part)
    return parts, key


def _joined(parts: list[ir.Table], key: str) -> ir.Table:
    """One row per key of any part, each part's new columns left-joined on."""
    keys = parts[0].select(key)
    for part in parts[1:]:
        keys = keys.union(part.select(key), distinct=True)
    table, seen = keys, {key}
    for part in parts:
        fresh = [c for c in part.columns if c not in seen]
        if not fresh:  # every column already there from an earlier metric
            continue
        seen.update(fresh)
        table = table.left_join(part.select(key, *fresh), key).select(
            ~ibis.selectors.endswith("_right"))
    return table


def run_table(store: Store, settings: MetricsSection, analysis: AnalysisSection,
              names: list[str], level: str | None = None, as_of=None,
              filters: Mapping[str, list[str]] | None = None,
              read_only: bool = False) -> Result:
    """`names` at `level` (default: the first level all of them offer) as one table."""
    if not names:
        raise MetricError("name at least one metric for the table")
    names = list(dict.fromkeys(names))
    model = analysis.model
    for name in names:
        metric = get(name)
        if not metric.tabular:
            raise MetricError(f"{name} gives several rows per {level or 'entity'}; ask for it on its "
                              "own (`accountlens metrics " + name + "`)")
        if needs_params(metric):
            raise MetricError(f"{name} needs parameters; ask for it on its own")
    if level is None:
        common = [lv for lv in available_levels(get(names[0]), model)
                  if all(lv in available_levels(get(n), model) for n in names[1:])]
        if not common:
            raise MetricError(f"{', '.join(names)} share no level under the {model!r} model")
        level = common[0]
    request = MetricRequest(name=names[0], level=level, as_of=as_of, filters=dict(filters or {}))
    day, inline = prepare(store, request, settings, read_only)
    kept = (repr(request), day, inline, model, settings.model_dump_json())
    if store.table_in_parts:
        frame = _in_parts(store, names, request, settings, model, day, inline, kept)
    else:
        frame = fetch(store, *compiled(store, ("table", tuple(names), *kept), lambda: _joined(
            *_parts(names, request, settings, model, day, inline))))
    # Columns sharing a notes expression (activation, time_to_value, …) run it once.
    noting = {get(name).notes: name for name in reversed(names) if get(name).notes is not None}
    notes = [note for name in names if name in noting.values()
             for note in metric_notes(store, get(name), dataclasses.replace(request, name=name),
                                      settings, model, day, inline)]
    notes += horizon_notes(store, "metrics table", from_rollup=not inline)  # raw events expired
    return result(store, "metrics_table", ", ".join(names), level, day, frame,
                  list(dict.fromkeys(notes)))


def _in_parts(store: Store, names: list[str], request: MetricRequest, settings: MetricsSection,
              model: str, day, inline: bool, kept: tuple) -> pd.DataFrame:
    """The table as `_joined` gives it, each metric's part run as its own query first: its
    rows (one per entity, never raw events) registered, then joined by a query of small tables."""
    parts, key = _parts(names, request, settings, model, day, inline)
    with contextlib.ExitStack() as registered:
        tables = []
        for name, part in zip(names, parts):
            # (compiled calls the builder at once: `part` is this iteration's)
            sql, schema = compiled(store, ("table part", name, *kept), lambda: part)  # noqa: B023
            view = registered.enter_context(store.registered(
                f"_metrics_table_part_{next(_PARTS)}", store.run_compiled(sql, schema)))
            tables.append(ibis.table(schema, name=view))
        joined = _joined(tables, key).as_table()
        return fetch(store, store.compile(joined), joined.schema())
