"""A third-party package adds a metric and an analysis through entry points (registry.py):
installed beside accountlens, they appear in the CLI, REST and Python without any change here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from accountlens.metrics.registry import MetricError, get
from tests.test_metrics_fixture import AS_OF, build_fixture

PLUGIN = '''
from typing import Literal

from pydantic import Field

from accountlens.analysis.registry import Analysis, AnalysisRequest, register as add_analysis
from accountlens.metrics.registry import Metric, register as add_metric


def build(ctx):
    rows = ctx.recent(30)
    return ctx.complete(rows.group_by("entity").aggregate(events_30d=rows.events.sum()),
                        events_30d=0)


add_metric(Metric(name="events_30d", family="plugin", levels=("account",),
                  definition="Human active events in the last 30 days.",
                  inputs=("daily_activity",), build=build))


class EventNamesRequest(AnalysisRequest):
    level: Literal["account"] = Field(default="account", description="per account")


def run(store, settings, request):
    return store.df("SELECT account_id, count(DISTINCT name) AS event_names FROM events "
                    "WHERE account_id IS NOT NULL AND CAST(timestamp AS DATE) <= ? "
                    "GROUP BY 1 ORDER BY 1", [request.as_of])


add_analysis(Analysis(name="event_names", summary="Distinct event names per account.",
                      request=EventNamesRequest, run=run))
'''


@pytest.fixture
def plugin_path(tmp_path):
    site = tmp_path / "site"
    (site / "al_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "al_plugin.py").write_text(PLUGIN)
    (site / "al_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: al-plugin\nVersion: 0.1\n")
    (site / "al_plugin-0.1.dist-info" / "entry_points.txt").write_text(textwrap.dedent("""\
        [accountlens.metrics]
        events_30d = al_plugin

        [accountlens.analyses]
        event_names = al_plugin
        """))
    return site


def _cli(root, site, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run([sys.executable, "-m", "accountlens", *args, "--dir", str(root)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_plugin_adds_a_metric_and_an_analysis(tmp_path, plugin_path) -> None:
    ws = build_fixture(tmp_path)
    expected = dict(ws.store.df(
        "SELECT account_id, count(*) AS n FROM events WHERE actor_kind = 'human' "
        "AND user_id IS NOT NULL AND type IN ('track', 'page', 'screen') "
        "AND timestamp > TIMESTAMPTZ '2024-03-01 23:59:59.999999+00' "
        "AND timestamp < TIMESTAMPTZ '2024-04-01 00:00:00+00' GROUP BY 1").itertuples(index=False))
    root = ws.root
    ws.close()
    with pytest.raises(MetricError, match="unknown metric 'events_30d'"):
        get("events_30d")  # not installed in this process
    listing = _cli(root, plugin_path, "metrics", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    assert "events_30d" in {m["metric"] for m in json.loads(listing.stdout)}
    out = _cli(root, plugin_path, "metrics", "events_30d", "--as-of", AS_OF, "--format", "json")
    assert out.returncode == 0, out.stderr
    got = {r["account_id"]: r["events_30d"] for r in json.loads(out.stdout)}
    assert {k: v for k, v in got.items() if v} == expected
    analysis = _cli(root, plugin_path, "event_names", "--as-of", AS_OF, "--format", "json")
    assert analysis.returncode == 0, analysis.stderr
    assert {r["account_id"] for r in json.loads(analysis.stdout)} >= set(expected)
