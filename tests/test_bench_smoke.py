"""The benchmark suite runs end to end on a tiny dataset and writes its markdown report."""

from __future__ import annotations

import json

import duckdb

from benchmarks.__main__ import FULL_EVENTS, FULL_INGEST_EVENTS, main, parse
from benchmarks.datagen import generate
from benchmarks.registry import select


def test_registry_selects_baselines_of_the_chosen_benchmarks() -> None:
    names = [b.name for b in select(["bulk_import"])]
    assert names == ["datagen", "baseline", "bulk_import"]
    assert [b.name for b in select(["metrics"])] == ["workspace", "metrics"]
    assert {"datagen", "baseline", "bulk_import", "http_ingest", "workspace", "metrics",
            "analyses", "scaling", "dashboard"} <= {b.name for b in select(None)}


def test_generated_events_are_segment_shaped(tmp_path) -> None:
    data = generate(2_000, tmp_path)
    lines = data.jsonl.read_text().splitlines()
    assert len(lines) == 2_000
    events = [json.loads(line) for line in lines]
    assert {e["type"] for e in events} == {"track", "page", "identify", "group"}
    assert len({e["messageId"] for e in events}) == 2_000
    assert any("userId" not in e and e["properties"]["actor_kind"] == "automation" for e in events)
    assert any(e.get("context", {}).get("groupId") for e in events if "userId" in e)
    assert all(None not in e.values() for e in events)  # absent fields are left out, not null
    con = duckdb.connect()
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(data.parquet)]).fetchone() == (2_000,)


def test_small_run_writes_the_report(tmp_path) -> None:
    out = tmp_path / "benchmarks.md"
    code = main(["--events", "2000", "--quick", "--only", "bulk_import", "--out", str(out),
                 "--data-dir", str(tmp_path / "data")])
    assert code == 0
    text = out.read_text()
    for section in ("## Machine", "## Targets", "## Data generation",
                    "## Baseline: DuckDB reading the JSONL", "## Bulk import"):
        assert section in text
    for fact in ("CPU", "RAM", "DuckDB", "pyarrow", "accountlens", "shared 2-core machine",
                 "import_events(JSONL)", "of `baseline.limit`"):
        assert fact in text
    assert not (tmp_path / "data" / "run").exists()  # generated data is cleaned up


def test_cli_sizes_analytics_and_ingestion_separately() -> None:
    args = parse([])
    assert args.events is None and args.ingest_events is None
    assert (FULL_EVENTS, FULL_INGEST_EVENTS) == (10_000_000, 1_000_000)


def test_smaller_sample_keeps_the_population(tmp_path) -> None:
    full, sample = generate(4_000, tmp_path / "full"), generate(400, tmp_path / "s", population=4_000)
    assert (sample.accounts, sample.users) == (full.accounts, full.users)


def test_metrics_scaling_and_dashboard_run_end_to_end(tmp_path) -> None:
    """Each new benchmark on a tiny workspace: SQL and pandas must equal accountlens's numbers
    (the metrics benchmark asserts it), scaling compares two sizes, the dashboard renders in
    Chromium (skipped, not failed, when the browser is absent)."""
    out = tmp_path / "benchmarks.md"
    code = main(["--events", "3000", "--quick", "--only", "metrics", "scaling", "dashboard",
                 "--out", str(out), "--data-dir", str(tmp_path / "data")])
    text = out.read_text()
    assert code == 0, text
    for section in ("## Analytics workspace", "## Account metrics table and AARRR funnel",
                    "## Scaling: 10× the events", "## Web app page times"):
        assert section in text
    for fact in ("of `metrics.table_sql`", "of `metrics.funnel_sql`", "of `metrics.table`",
                 "values equal accountlens's for all", "peak RSS: pandas process",
                 "at 300 events", "at 3,000 events", "of `scaling.table.small`"):
        assert fact in text
    assert ("of `dashboard.page2.direct`" in text) or ("**Skipped:**" in text)
    assert "**Failed:**" not in text
