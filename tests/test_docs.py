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


def test_the_import_csv_table_matches_the_entity_table() -> None:
    """docs/data-model.md's CSV table says what model/entities.py declares: the kinds, their
    columns (required in bold) and keys."""
    import re

    from accountlens.model.entities import ENTITIES, OUTCOME_KINDS, UNIT_KINDS

    text = (DOCS / "data-model.md").read_text()
    section = text.split("## CSV columns for `accountlens import KIND FILE`")[1].split("\n## ")[0]
    documented = {}
    for kind, columns, key in re.findall(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", section, re.M):
        names = [c.strip() for c in columns.split(";")[0].split(",")]
        documented[kind] = (
            [re.sub(r"\*\*|\s*\(.*\)", "", n) for n in names],
            [re.sub(r"\*\*|\s*\(.*\)", "", n) for n in names if n.startswith("**")],
            tuple(k.strip() for k in key.split(",")),
        )
    assert documented == {
        kind: ([c.name for c in spec.columns], [c.name for c in spec.columns if c.required], spec.key)
        for kind, spec in ENTITIES.items()
    }
    for table, kinds in (("org_units", UNIT_KINDS), ("outcomes", OUTCOME_KINDS)):
        listed = re.search(rf"^\| `{table}` \|.*?`kind` \(([^)]*)\)", text, re.M)[1]
        assert re.findall(r"`(\w+)`", listed) == list(kinds), table
