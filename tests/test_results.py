"""Every metric and every analysis gives the same typed rows through the CLI, REST and Python:
the same column names, the same values, a non-null as-of (the default one when none is asked),
and a note when `limit` cut the rows."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from accountlens.analysis.registry import load_all as all_analyses
from accountlens.api.app import create_app
from accountlens.cli.main import app as cli
from accountlens.metrics.registry import available, key_column
from accountlens.metrics.table import needs_params
from accountlens.serve.live import LiveWorkspace
from tests import fixtures_b2b
from tests.test_metrics_fixture import build_fixture

FIXTURE_LAST_ACTIVE_DAY = "2024-03-31"  # tests/test_metrics_fixture.py's last track/page event


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The metrics fixture with a late `group` call (not an active event), through REST."""
    root = tmp_path_factory.mktemp("results")
    ws = build_fixture(root, extra_events=[{
        "type": "group", "messageId": "g-late", "userId": "ann", "groupId": "acme",
        "traits": {"name": "Acme"}, "timestamp": "2024-04-20T10:00:00Z"}])
    live = LiveWorkspace(workspace=ws, log=None, loader=None)
    yield ws, TestClient(create_app([live]))
    ws.close()


def _cli(root, *args: str) -> tuple[list[dict], str]:
    out = CliRunner().invoke(cli, [*args, "--dir", str(root), "--format", "json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout), out.stderr


METRICS = [m.name for m in available("advanced") if not needs_params(m)]


@pytest.mark.parametrize("name", METRICS)
def test_every_metric_is_the_same_result_everywhere(served, name) -> None:
    ws, client = served
    result = ws.metric_result(name)
    assert result.as_of == dt.date.fromisoformat(FIXTURE_LAST_ACTIVE_DAY)  # the group call is not activity
    body = client.get(f"/api/v1/metrics/{name}").json()
    assert body["as_of"] == FIXTURE_LAST_ACTIVE_DAY and body["kind"] == "metric"
    assert body["level"] == result.level and body["engine"] == "duckdb"
    assert [c["name"] for c in body["columns"]] == list(result.frame.columns)
    assert body["rows"] == result.records()
    cli_rows, stderr = _cli(ws.root, "metrics", name)
    assert cli_rows == body["rows"]
    assert f"as of {FIXTURE_LAST_ACTIVE_DAY}" in stderr
    if name not in ("funnel", "retention"):  # those two: one table of stages, of cohorts
        assert key_column(result.level) in result.frame.columns


# Analyses a request without parameters can run (experiments needs its experiment: its own
# tests compare the CLI, REST and Python rows).
DEFAULTS_ONLY = sorted(name for name, analysis in all_analyses().items()
                       if not any(f.is_required() for f in analysis.request.model_fields.values()))


@pytest.mark.parametrize("name", DEFAULTS_ONLY)
def test_every_analysis_is_the_same_result_everywhere(tmp_path_factory, name) -> None:
    ws = _b2b(tmp_path_factory)
    result = ws.analysis_result(name)
    assert isinstance(result.as_of, dt.date)
    live = LiveWorkspace(workspace=ws, log=None, loader=None)
    body = TestClient(create_app([live])).get(f"/api/v1/analyses/{name}").json()
    assert body["as_of"] == result.as_of.isoformat() and body["kind"] == "analysis"
    assert [c["name"] for c in body["columns"]] == list(result.frame.columns)
    assert body["rows"] == result.records()
    cli_rows, stderr = _cli(ws.root, *(all_analyses()[name].command or name).split())
    assert cli_rows == body["rows"]
    assert f"as of {result.as_of.isoformat()}" in stderr


_B2B: dict = {}


def _b2b(tmp_path_factory):
    if "ws" not in _B2B:
        _B2B["ws"] = fixtures_b2b.build(tmp_path_factory.mktemp("b2b"))
    return _B2B["ws"]


def test_names_are_next_to_ids(served) -> None:
    ws, _ = served
    accounts = ws.metric("mau", level="account")
    assert list(accounts.columns[:2]) == ["account_id", "account_name"]
    assert accounts.set_index("account_id").loc["acme", "account_name"] == "Acme"
    users = ws.metric("depth", level="user")
    assert list(users.columns[:3]) == ["user_id", "user_email", "user_name"]
    assert users.set_index("user_id").loc["ann", "user_email"] == "ann@acme.com"
    teams = ws.metric("mau", level="team")
    assert list(teams.columns[:2]) == ["unit_id", "unit_name"]
    assert accounts.attrs["as_of"] == dt.date(2024, 3, 31) and accounts.attrs["level"] == "account"


def test_a_limit_says_how_many_rows_there_were(tmp_path_factory) -> None:
    ws = _b2b(tmp_path_factory)
    everything = ws.analysis_result("handoffs", view="chains", limit=100_000)
    assert len(everything.frame) > 2 and not everything.notes
    cut = ws.analysis_result("handoffs", view="chains", limit=2)
    assert len(cut.frame) == 2 and cut.total_rows == len(everything.frame)
    assert cut.notes[0] == f"showing 2 of {len(everything.frame)} rows (raise the limit to see more)"
    out = CliRunner().invoke(cli, ["handoffs", "--view", "chains", "--limit", "2",
                                   "--dir", str(ws.root)])
    assert out.exit_code == 0 and f"showing 2 of {len(everything.frame)}" in out.stdout


def test_the_default_as_of_never_passes_today(tmp_path) -> None:
    """An event dated next year (stored as it was, e.g. before ingestion checked timestamps)
    does not move the default day past today: it is the last active day up to today."""
    ws = build_fixture(tmp_path)
    ws.store.execute("INSERT INTO events SELECT * REPLACE ('future' AS message_id, "
                     "now() + INTERVAL 400 DAY AS timestamp) FROM events WHERE message_id = 'a1'")
    try:
        assert ws.metric_result("mau").as_of == dt.date(2024, 3, 31)
        assert ws.analysis_result("champions").as_of == dt.date(2024, 3, 31)
    finally:
        ws.close()


def test_rest_errors_have_one_shape(served) -> None:
    _, client = served
    invalid = client.get("/api/v1/metrics/mau", params={"level": "galaxy"})
    unknown_workspace = client.get("/api/v1/metrics/mau", params={"workspace": "nope"})
    bad_analysis = client.get("/api/v1/analyses/paths", params={"level": "account"})
    for response, status in ((invalid, 422), (unknown_workspace, 404), (bad_analysis, 422)):
        body = response.json()
        assert response.status_code == status, body
        assert body["success"] is False and isinstance(body["error"], str), body
        assert "--" not in body["error"], body  # API words, not CLI flags
    assert invalid.json()["problems"][0]["location"] == "query.level"


def test_an_analysis_names_the_engines_it_runs_on(tmp_path_factory) -> None:
    from accountlens.analysis.registry import AnalysisError

    ws = _b2b(tmp_path_factory)
    # backtest is not on Spark yet (analysis/registry.py's SPARK_PENDING says why)
    with pytest.raises(AnalysisError, match="backtest runs on duckdb, not 'spark' \\(not yet"):
        ws.analysis_result("backtest", engine="spark")
    out = CliRunner().invoke(cli, ["backtest", "--engine", "spark", "--dir", str(ws.root)])
    assert out.exit_code == 1 and "backtest runs on duckdb, not 'spark'" in out.output
    live = LiveWorkspace(workspace=ws, log=None, loader=None)
    client = TestClient(create_app([live]))
    refused = client.get("/api/v1/analyses/backtest", params={"engine": "spark"})
    assert refused.status_code == 409 and "not yet" in refused.json()["error"]
    listing = {a["name"]: a["engines"] for a in client.get("/api/v1/analyses").json()}
    assert listing["backtest"] == ["duckdb"] and listing["handoffs"] == ["duckdb", "spark"]
    # on Spark, but no export to read: the reason, before any JVM starts
    with pytest.raises(AnalysisError, match="export"):
        ws.analysis_result("handoffs", engine="spark")
