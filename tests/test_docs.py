"""Docs stay complete: every CLI command and every config key appears in docs/."""

from __future__ import annotations

from pathlib import Path

import typer.main
from pydantic import BaseModel

from accountlens.cli.main import app
from accountlens.config import Config

DOCS = Path(__file__).resolve().parent.parent / "docs"


def all_docs() -> str:
    return "\n".join(p.read_text() for p in DOCS.glob("*.md"))


def command_paths(group, prefix: str = "accountlens") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):
            paths += command_paths(command, path)
        else:
            paths.append(path)
    return paths


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += config_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_cli_command_is_documented() -> None:
    docs = all_docs()
    commands = command_paths(typer.main.get_command(app))
    assert len(commands) >= 10
    missing = [c for c in commands if f"`{c}" not in docs]
    assert not missing, f"undocumented commands: {missing}"


def test_every_config_key_is_documented() -> None:
    docs = all_docs()
    keys = config_keys(Config)
    missing = [k for k in keys if f"`{k}`" not in docs]
    assert not missing, f"undocumented config keys: {missing}"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text().splitlines()
    block = "\n".join(readme[:6])
    assert "make demo" in block and "make test" in block
    ci = (DOCS.parent / ".ci" / "run").read_text()
    assert "make test" in ci
