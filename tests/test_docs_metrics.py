"""docs/metrics.md stays complete: every registered metric, its levels, the metric commands and
every `[metrics]` / `[analysis]` config key are documented."""

from __future__ import annotations

import re
from pathlib import Path

from accountlens.config import AnalysisSection, MetricsSection
from accountlens.metrics.registry import load_all

DOC = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()


def test_every_metric_has_a_section_with_its_levels() -> None:
    for name, metric in load_all().items():
        match = re.search(rf"^### `{name}` \(.*?\)\n(.*?)(?=^### |^## |\Z)", DOC, re.M | re.S)
        assert match, f"docs/metrics.md has no section for {name}"
        section = match.group(1)
        assert all(f"`{level}`" in section for level in metric.levels), name


def test_commands_and_config_keys_are_documented() -> None:
    for command in ("`accountlens metrics", "`accountlens explain", "/api/v1/metrics"):
        assert command in DOC
    keys = [f"metrics.{k}" for k in MetricsSection.model_fields]
    keys += [f"analysis.{k}" for k in AnalysisSection.model_fields]
    assert not [k for k in keys if f"`{k}`" not in DOC]
