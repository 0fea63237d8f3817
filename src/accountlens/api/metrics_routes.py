"""`/api/v1/metrics/...`: the metric registry over REST, one typed GET endpoint per metric.

No `from __future__ import annotations` here: FastAPI must see the real request models.
"""

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, create_model

from accountlens.api.models import WORKSPACE_FIELD, ResultResponse
from accountlens.metrics.levels import FILTERS
from accountlens.metrics.registry import (
    Metric,
    MetricError,
    available,
    available_levels,
    explain,
    load_all,
    metric_request,
)
from accountlens.metrics.table import columnable
from accountlens.store.base import ENGINES, StoreError

EngineName = Literal[ENGINES]  # type: ignore[valid-type]


class MetricInfo(BaseModel):
    name: str
    family: str
    levels: list[str]
    definition: str
    inputs: list[str]


class MetricExplanation(BaseModel):
    name: str
    family: str
    definition: str
    inputs: list[str]
    levels: list[str]
    level: str
    as_of: str
    sql: str


def _common_fields(levels: tuple[str, ...]) -> dict[str, Any]:
    """Query fields every metric request has: as_of, level, engine and the account filters."""
    fields: dict[str, Any] = {
        "as_of": (dt.date | None, Field(default=None, description="last day included")),
        "level": (Literal[levels] | None,
                  Field(default=None, description="grouping level")),
        "engine": (EngineName, Field(default="duckdb", description=(
            "duckdb: the workspace; spark: its Parquet export at [spark] parquet_dir "
            "(docs/spark.md)"))),
    }
    for key in FILTERS:
        fields[key] = (list[str] | None, Field(default=None, description=f"keep only {key} values"))
    fields.update(WORKSPACE_FIELD)
    return fields


def _query_model(metric: Metric) -> type[BaseModel]:
    """The typed query of one metric: as_of, level, account filters and the metric's params."""
    fields = _common_fields(metric.levels)
    for name, field in metric.params.model_fields.items():
        fields[name] = (field.annotation | None,  # type: ignore[operator]  # a real type here
                        Field(default=None, description=field.description))
    return create_model(f"{metric.name.title().replace('_', '')}Query",
                        __config__=ConfigDict(extra="forbid"), **fields)


def _table_query_model() -> type[BaseModel]:
    """The typed query of a metrics table: the metrics that can be columns, and the rest."""
    tabular = tuple(name for name, m in load_all().items() if columnable(m))
    levels = tuple(dict.fromkeys(lv for m in load_all().values() for lv in m.levels))
    fields = _common_fields(levels)
    fields["names"] = (list[Literal[tabular]], Field(  # type: ignore[valid-type]
        min_length=1, description="the metrics whose columns make the table, in order"))
    return create_model("MetricsTableQuery", __config__=ConfigDict(extra="forbid"), **fields)


def _split(query: BaseModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """A query's account filters and the rest of its values (as_of, level, engine, params)."""
    values = query.model_dump(exclude_none=True, exclude={"workspace"})
    return {k: values.pop(k) for k in FILTERS if k in values}, values


def metrics_router(live_workspace: Callable, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])

    @router.get("", response_model=list[MetricInfo], responses=errors)
    def list_metrics(live=Depends(live_workspace)) -> list[dict]:
        """Metrics offered by the workspace's analysis model, with their levels."""
        model = live.workspace.config.analysis.model
        return [{"name": m.name, "family": m.family, "levels": list(available_levels(m, model)),
                 "definition": m.definition, "inputs": list(m.inputs)} for m in available(model)]

    engine_missing: dict[int | str, dict[str, Any]] = {409: {**errors[400], "description": (
        "the engine asked for cannot run here (no Parquet export at [spark] parquet_dir, "
        "no Java)")}}
    table_query = _table_query_model()
    cannot_combine: dict[int | str, dict[str, Any]] = {409: {**errors[400], "description": (
        "the metrics named make no table at that level (one of them is not offered there, "
        "or not under the workspace's analysis model), or the engine cannot run here")}}

    @router.get("/table", response_model=ResultResponse, responses={**errors, **cannot_combine})
    def metrics_table(query: Annotated[table_query, Query()],  # type: ignore[valid-type]
                      live=Depends(live_workspace)) -> dict:
        """Several metrics as one table (one row per entity, their columns side by side),
        computed as one query: `accountlens metrics NAME... --wide` over REST."""
        filters, values = _split(query)
        try:
            result = live.workspace.metrics_table_result(
                values["names"], values.get("level"), values.get("as_of"), values["engine"],
                filters=filters)
        except (MetricError, StoreError) as exc:  # every name and level is valid on its own
            raise HTTPException(409, str(exc)) from exc
        return result.to_dict()

    for name, metric in load_all().items():
        if name == "table":  # pragma: no cover - guards the route above
            raise RuntimeError("a metric named `table` would hide /api/v1/metrics/table")
        query = _query_model(metric)
        router.add_api_route(f"/{name}", _endpoint(name, query, live_workspace), methods=["GET"],
                             summary=metric.definition.split(". ")[0], response_model=ResultResponse,
                             responses={**errors, **engine_missing}, name=f"metric_{name}")
        router.add_api_route(f"/{name}/explain", _explainer(name, metric, live_workspace),
                             methods=["GET"], summary=f"definition, inputs and SQL of {name}",
                             response_model=MetricExplanation, responses=errors,
                             name=f"explain_{name}")

    return router


def _endpoint(name: str, query_model: type[BaseModel], live_workspace: Callable) -> Callable:
    def endpoint(query: Annotated[query_model, Query()],  # type: ignore[valid-type]
                 live=Depends(live_workspace)) -> dict:
        filters, values = _split(query)
        level, as_of, engine = values.pop("level", None), values.pop("as_of", None), values.pop("engine")
        try:
            result = live.workspace.metric_result(name, level, as_of, engine, filters=filters,
                                                  params=values)
        except MetricError as exc:
            raise HTTPException(400, str(exc)) from exc
        except StoreError as exc:  # a valid request the workspace's state cannot serve
            raise HTTPException(409, str(exc)) from exc
        return result.to_dict()

    endpoint.__name__ = f"metric_{name}"
    return endpoint


def _explainer(name: str, metric: Metric, live_workspace: Callable) -> Callable:
    def endpoint(
        live=Depends(live_workspace),
        as_of: dt.date | None = Query(default=None, description="last day included"),
        level: Literal[metric.levels] | None = Query(  # type: ignore[name-defined]
            default=None, description="grouping level"),
    ) -> dict:
        """Definition, inputs and the SQL the metric runs (data lineage)."""
        ws = live.workspace
        try:
            return explain(ws.store, ws.config.metrics, ws.config.analysis,
                           metric_request(name, level, as_of))
        except MetricError as exc:
            raise HTTPException(400, str(exc)) from exc

    endpoint.__name__ = f"explain_{name}"
    return endpoint
