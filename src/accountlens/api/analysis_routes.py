"""`/api/v1/analyses/...`: one typed, documented GET endpoint per registered analysis.

No `from __future__ import annotations` here: FastAPI must see the real request models."""


from collections.abc import Callable
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field, create_model

from accountlens.analysis.registry import Analysis, AnalysisError, EngineUnavailable, load_all
from accountlens.api.models import WORKSPACE_FIELD, ResultResponse
from accountlens.store.base import ENGINES


def analysis_router(live_workspace: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/api/v1/analyses", tags=["analyses"])

    @router.get("", responses=errors)
    def list_analyses(live=Depends(live_workspace)) -> list[dict[str, Any]]:
        return [{"name": a.name, "summary": a.summary, "levels": list(a.levels),
                 "engines": list(a.engines)} for a in load_all().values()]

    engine_missing: dict[int | str, dict[str, Any]] = {409: {**errors[400], "description": (
        "the engine asked for cannot run here (no Parquet export at [spark] parquet_dir, "
        "no Java), or the analysis does not run on it yet (the error says why)")}}
    for name, analysis in load_all().items():
        router.add_api_route(
            f"/{name}", _endpoint(name, analysis, live_workspace), methods=["GET"],
            summary=analysis.summary, response_model=ResultResponse,
            responses={**errors, **engine_missing},
            name=f"analysis_{name}",
        )
    return router


def _endpoint(name: str, analysis: Analysis, live_workspace: Callable) -> Callable:
    # the analysis's own request with the served workspace's name; every engine is accepted, one
    # the analysis does not run on yet is a 409 saying why (analysis/registry.py, SPARK_PENDING)
    engines: Any = Literal[ENGINES]
    query_model: type[BaseModel] = create_model(
        f"{analysis.request.__name__}Query", __base__=analysis.request, **WORKSPACE_FIELD,
        engine=(engines, Field(default="duckdb", description=(
            f"the engine to run on (this analysis: {', '.join(analysis.engines)})"))))

    def endpoint(params: Annotated[query_model, Query()],  # type: ignore[valid-type]
                 live=Depends(live_workspace)):
        try:
            values = cast(BaseModel, params).model_dump(exclude={"workspace"})
            result = live.workspace.analysis_result(name, **values)
        except EngineUnavailable as exc:
            raise HTTPException(409, str(exc)) from exc
        except AnalysisError as exc:  # a LookupError: what it names is not in the workspace
            raise HTTPException(404 if isinstance(exc, LookupError) else 400, str(exc)) from exc
        return result.to_dict()

    endpoint.__name__ = f"analysis_{name}"
    return endpoint
