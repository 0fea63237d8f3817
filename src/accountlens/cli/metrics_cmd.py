"""`accountlens metrics [NAME...]` and `accountlens explain METRIC`, generated from the metric registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from accountlens.cli.common import DirOption, FormatOption, fail, open_workspace
from accountlens.cli.formats import OutputFormat, emit, emit_result
from accountlens.model import entities

AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="Last day included, YYYY-MM-DD (default: the latest active event day, "
                    "never after today).")]
LevelOption = Annotated[str | None, typer.Option(
    "--level", "-l", help=f"{', '.join(entities.USER_LEVELS)}, account, an account slice "
                          f"({', '.join(entities.SLICES)}) or all; default: the metric's first level.")]
FilterOption = Annotated[list[str] | None, typer.Option(
    "--filter", help=f"KEY=VALUE keeping only matching accounts ({', '.join(entities.FILTERS)}); "
                     "repeat to combine.")]
ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="KEY=VALUE metric parameter, e.g. period=month for retention.")]
EngineOption = Annotated[str, typer.Option(
    "--engine", "-e", help="duckdb (the workspace) or spark (its Parquet export, docs/spark.md).")]
ParquetOption = Annotated[str | None, typer.Option(
    "--parquet", help="Parquet export the engine reads (default: [spark] parquet_dir).")]


def _pairs(values: list[str] | None, option: str) -> dict[str, list[str]]:

    out: dict[str, list[str]] = {}
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            fail(f"{option} takes KEY=VALUE, got {value!r}")
        out.setdefault(key.strip(), []).append(text.strip())
    return out


def metrics(
    names: Annotated[list[str] | None, typer.Argument(
        help="Metrics to compute; none lists the registered metrics.")] = None,
    directory: DirOption = Path("."),
    as_of: AsOfOption = None,
    level: LevelOption = None,
    filters: FilterOption = None,
    params: ParamOption = None,
    fmt: FormatOption = OutputFormat.table,
    engine: EngineOption = "duckdb",
    parquet: ParquetOption = None,
    wide: Annotated[bool, typer.Option(
        "--wide", help="One table, one row per entity with every metric's columns, computed as "
                       "one query (metrics with one row per entity only).")] = False,
) -> None:
    """Compute metrics (SPEC §5) at a level, as of a day, for filtered accounts."""
    from accountlens.metrics.registry import MetricError, available, available_levels
    from accountlens.store.base import StoreError

    with open_workspace(directory) as ws:
        model = ws.config.analysis.model
        if not names:
            emit([{"metric": m.name, "family": m.family,
                   "levels": ", ".join(available_levels(m, model)), "definition": m.definition}
                  for m in available(model)], fmt, title=f"metrics ({model} analysis model)")
            return
        chosen = _pairs(filters, "--filter")
        values = {k: v[-1] for k, v in _pairs(params, "--param").items()}
        if wide and values:
            fail("--wide takes no --param: ask for a metric with parameters on its own")
        try:
            if wide:
                results = [ws.metrics_table_result(list(names), level, as_of, engine, parquet,
                                                   filters=chosen)]
            else:
                results = [ws.metric_result(name, level, as_of, engine, parquet, filters=chosen,
                                            params=values) for name in names]
        except (MetricError, StoreError) as exc:
            fail(str(exc))
    if len(results) == 1 or fmt is OutputFormat.table:
        for result in results:
            emit_result(result, fmt)
        return
    # several metrics as one list with stable keys: the metric name first
    outputs = [(result.name, result.records()) for result in results]
    keys = list(dict.fromkeys(["metric", *(k for _, rows in outputs for r in rows for k in r)]))
    emit([{k: {"metric": name, **row}.get(k) for k in keys}
          for name, rows in outputs for row in rows], fmt)
    for result in results:
        sys.stderr.write(result.describe() + "\n")


def explain(
    name: Annotated[str, typer.Argument(help="Metric name (see `accountlens metrics`).")],
    directory: DirOption = Path("."),
    as_of: AsOfOption = None,
    level: LevelOption = None,
    filters: FilterOption = None,
    params: ParamOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Print a metric's definition, inputs and the SQL it runs (data lineage)."""
    from accountlens.config import Config
    from accountlens.metrics.registry import MetricError, metric_request
    from accountlens.metrics.registry import explain as explain_metric

    ws = open_workspace(directory) if (directory / "accountlens.toml").exists() else None
    config = ws.config if ws else Config()
    try:
        req = metric_request(name, level, as_of, _pairs(filters, "--filter"),
                             {k: v[-1] for k, v in _pairs(params, "--param").items()})
        info = explain_metric(ws.store if ws else None, config.metrics, config.analysis, req)
    except MetricError as exc:
        fail(str(exc))
    finally:
        if ws:
            ws.close()
    if fmt is OutputFormat.table:
        typer.echo(f"{info['name']} ({info['family']})\n\n{info['definition']}\n")
        typer.echo("inputs: " + ", ".join(info["inputs"]))
        typer.echo("levels: " + ", ".join(info["levels"]))
        typer.echo(f"\nSQL at level {info['level']}, as of {info['as_of']}:\n\n{info['sql']}")
    else:
        flat = fmt is OutputFormat.csv
        emit([{**info, "inputs": ", ".join(info["inputs"]) if flat else info["inputs"],
               "levels": ", ".join(info["levels"]) if flat else info["levels"]}], fmt)


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics)
    app.command("explain")(explain)
