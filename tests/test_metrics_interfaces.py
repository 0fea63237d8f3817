"""Metrics through every interface — CLI, REST (FastAPI app in process) and Python — agree."""

from __future__ import annotations

import json

import httpx
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from accountlens.api.app import create_app
from accountlens.cli.main import app as cli
from accountlens.serve.live import LiveWorkspace
from tests.test_metrics_fixture import AS_OF, build_fixture


def test_cli_rest_python_agree_and_explain(tmp_path) -> None:
    ws = build_fixture(tmp_path)
    root = ws.root
    python_rows = ws.metric("seat_utilization", level="account", as_of=AS_OF, industry="retail")
    ws.close()
    runner = CliRunner()
    out = runner.invoke(cli, ["metrics", "seat_utilization", "--dir", str(root), "--as-of", AS_OF,
                              "--level", "account", "--filter", "industry=retail", "--format", "json"])
    assert out.exit_code == 0, out.output
    cli_rows = json.loads(out.stdout)
    assert [r["account_id"] for r in cli_rows] == list(python_rows.account_id) == ["acme", "botco"]
    assert cli_rows[0] == {"account_id": "acme", "account_name": "Acme", "mau": 3, "seats": 10,
                           "seat_utilization": 0.3}
    both = runner.invoke(cli, ["metrics", "dau", "mau", "--dir", str(root), "--as-of", AS_OF,
                               "--format", "csv"])
    assert both.exit_code == 0 and both.stdout.splitlines()[0] == "metric,account_id,account_name,dau,mau"
    listing = runner.invoke(cli, ["metrics", "--dir", str(root), "--format", "json"])
    assert {"mau", "funnel", "retention", "nrr"} <= {m["metric"] for m in json.loads(listing.stdout)}
    bad = runner.invoke(cli, ["metrics", "mau", "--dir", str(root), "--level", "user"])
    assert bad.exit_code == 1 and "supports level" in bad.output
    bad = runner.invoke(cli, ["metrics", "mau", "--dir", str(root), "--filter", "colour=red"])
    assert bad.exit_code == 1 and "unknown filter" in bad.output
    explained = runner.invoke(cli, ["explain", "seat_utilization", "--dir", str(root)])
    assert explained.exit_code == 0
    assert "seats of its subscriptions" in explained.stdout and "SELECT" in explained.stdout
    assert "subscriptions" in explained.stdout

    live = LiveWorkspace(workspace=__import__("accountlens").open(root), log=None, loader=None)
    try:
        client = TestClient(create_app([live]))
        names = {m["name"] for m in client.get("/api/v1/metrics").json()}
        assert "seat_utilization" in names
        body = client.get("/api/v1/metrics/seat_utilization",
                          params={"as_of": AS_OF, "level": "account", "industry": "retail"}).json()
        assert body["rows"] == cli_rows and body["engine"] == "duckdb"
        monthly = client.get("/api/v1/metrics/retention",
                             params={"as_of": AS_OF, "level": "user", "period": "month"}).json()
        assert {r["cohort"][:10] for r in monthly["rows"]} == {"2024-02-01", "2024-03-01"}
        assert client.get("/api/v1/metrics/mau", params={"level": "user"}).status_code == 422
        assert client.get("/api/v1/metrics/mau", params={"bogus": 1}).status_code == 422
        assert client.get("/api/v1/metrics/mau", params={"engine": "presto"}).status_code == 422
        no_export = client.get("/api/v1/metrics/mau", params={"engine": "spark"})
        assert no_export.status_code == 409  # checked before any JVM starts
        assert "not an accountlens Parquet export" in no_export.json()["error"]
        lineage = client.get("/api/v1/metrics/mau/explain", params={"level": "role"}).json()
        assert lineage["level"] == "role" and "daily_activity" in lineage["sql"]
        assert "/api/v1/metrics/funnel" in client.get("/openapi.json").json()["paths"]
    finally:
        live.workspace.close()


def test_metrics_table_is_the_metrics_side_by_side(tmp_path, server_factory) -> None:
    """`ws.metrics_table` / `accountlens metrics --wide`: one query, the same values as each
    metric on its own, at account level and at a slice with a filter."""
    import pytest

    from accountlens.metrics.registry import MetricError, key_column, load_all

    ws = build_fixture(tmp_path)
    try:
        tabular = [m.name for m in load_all().values() if m.tabular and "account" in m.levels]
        for level, filters in (("account", {}), ("industry", {"region": ["emea", "amer"]})):
            names = [n for n in tabular if level in load_all()[n].levels]
            key = key_column(level)
            table = ws.metrics_table(names, level=level, as_of=AS_OF, **filters).set_index(key)
            seen: set[str] = set()
            for name in names:
                alone = ws.metric(name, level=level, as_of=AS_OF, **filters).set_index(key)
                assert set(alone.index) <= set(table.index)  # the table: every metric's rows
                rest = table.index.difference(alone.index)
                for column in alone.columns:
                    mine = table.loc[alone.index, column]
                    assert mine.fillna(-1).tolist() == alone[column].fillna(-1).tolist(), \
                        (level, name, column)
                    if column not in seen:  # from this metric: empty where it has no row
                        assert table.loc[rest, column].isna().all(), (level, name, column)
                seen.update(alone.columns)
        with pytest.raises(MetricError, match="several rows per"):
            ws.metrics_table(["mau", "funnel"], level="account")
        with pytest.raises(MetricError, match="supports level"):
            ws.metrics_table(["mau", "dau"], level="user")
        with pytest.raises(MetricError, match="unknown filter"):
            ws.metrics_table(["mau"], colour="red")
        mixed = ws.metrics_table(["dau", "breadth"], as_of=AS_OF)  # the first level both offer
        assert "account_id" in mixed.columns
    finally:
        ws.close()
    runner = CliRunner()
    out = runner.invoke(cli, ["metrics", "mau", "seat_utilization", "nrr", "--wide",
                              "--dir", str(tmp_path / "ws"), "--as-of", AS_OF, "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert {"account_id", "account_name", "mau", "seats", "seat_utilization", "nrr"} <= set(rows[0])
    bad = runner.invoke(cli, ["metrics", "mau", "retention", "--wide", "--dir", str(tmp_path / "ws")])
    assert bad.exit_code == 1 and "several rows per" in bad.output
    bad = runner.invoke(cli, ["metrics", "mau", "nrr", "--wide", "--param", "period=month",
                              "--dir", str(tmp_path / "ws")])
    assert bad.exit_code == 1 and "--wide takes no --param" in bad.output

    # REST, on the real server: GET /api/v1/metrics/table is the same table.
    expected = ws_table(tmp_path, ["mau", "breadth"], "industry", region=["emea", "amer"])
    server = server_factory(tmp_path / "ws")
    url = server.url + "/api/v1/metrics/table"
    body = httpx.get(url, params={"names": ["mau", "seat_utilization", "nrr"], "as_of": AS_OF},
                     timeout=60).json()
    assert body["rows"] == rows and body["name"] == "mau, seat_utilization, nrr"
    assert body["kind"] == "metrics_table" and body["as_of"] == AS_OF
    sliced = httpx.get(url, params={"names": ["mau", "breadth"], "level": "industry",
                                    "region": ["emea", "amer"], "as_of": AS_OF}, timeout=60)
    assert sliced.status_code == 200 and sliced.json()["rows"] == expected
    no_level = httpx.get(url, params={"names": ["mau", "arr"], "level": "user"}, timeout=60)
    assert no_level.status_code == 409 and "supports level" in no_level.json()["error"]
    for bad in ({"names": ["funnel"]}, {"names": ["mau"], "colour": "red"}, {}):
        assert httpx.get(url, params=bad, timeout=60).status_code == 422, bad


def ws_table(tmp_path, names, level, **filters) -> list[dict]:
    """The Python API's table as JSON records (how REST sends it)."""
    ws = __import__("accountlens").open(tmp_path / "ws", read_only=True)
    try:
        return ws.metrics_table_result(names, level=level, as_of=AS_OF, **filters).records()
    finally:
        ws.close()
