"""One CLI command per registered analysis, generated from its typed request model."""

from __future__ import annotations

import datetime as dt
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError

from accountlens.cli.common import fail, open_workspace
from accountlens.cli.formats import OutputFormat, emit_result

if TYPE_CHECKING:
    from accountlens.analysis.registry import Analysis


def _option_type(annotation: Any) -> tuple[type, bool]:
    """(CLI type, optional?) of a pydantic field annotation."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)
    if optional and len(args) == 1:
        annotation, origin = args[0], typing.get_origin(args[0])
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0]), optional
    if annotation is dt.date:
        return str, optional
    return (annotation if annotation in (int, float, str, bool) else str), optional


def _command(name: str, analysis: Analysis) -> Callable[..., None]:
    fields = analysis.request.model_fields

    def command(**kwargs: Any) -> None:
        from accountlens.analysis.registry import AnalysisError

        directory, fmt = kwargs.pop("directory"), kwargs.pop("fmt")
        params = {k: v for k, v in kwargs.items() if v is not None}
        with open_workspace(directory) as ws:
            try:
                result = ws.analysis_result(name, **params)
            except ValidationError as exc:
                fail("; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                                for e in exc.errors()))
            except AnalysisError as exc:
                fail(str(exc))
        emit_result(result, fmt)

    parameters = [
        inspect.Parameter("directory", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Option(Path("."), "--dir", "-d", help="Workspace folder.")),
        inspect.Parameter("fmt", inspect.Parameter.KEYWORD_ONLY, annotation=OutputFormat,
                          default=typer.Option(OutputFormat.table, "--format", "-f", help="Output format.")),
    ]
    for field_name, field in fields.items():
        cli_type, _ = _option_type(field.annotation)
        flag = "--" + field_name.replace("_", "-")
        help_text = field.description or ""
        if typing.get_origin(field.annotation) is typing.Literal:
            help_text += " (one of " + ", ".join(map(str, typing.get_args(field.annotation))) + ")"
        parameters.append(inspect.Parameter(
            field_name, inspect.Parameter.KEYWORD_ONLY, annotation=cli_type | None,
            default=typer.Option(None, flag, help=help_text + (
                "; required" if field.is_required() else
                f"; default {field.default}" if field.default is not None else "")),
        ))
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # typer reads it
    command.__doc__ = analysis.summary
    command.__name__ = name
    return command


def analysis_command(name: str) -> Callable[..., None]:
    """The generated command of analysis `name`, for a command group to add under its own name
    (an analysis whose `command` is "GROUP SUB")."""
    from accountlens.analysis.registry import REGISTRY

    return _command(name, REGISTRY.get(name))


def register(app: typer.Typer) -> None:
    """`accountlens NAME` for every analysis not placed in a command group."""
    from accountlens.analysis.registry import load_all

    for name, analysis in load_all().items():
        if analysis.command is None or " " not in analysis.command:
            app.command(analysis.command or name)(_command(name, analysis))
