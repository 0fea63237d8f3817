"""The benchmark suite runs end to end on a tiny dataset and writes its markdown report."""

from __future__ import annotations

import json

import duckdb

from accountlens.bench.__main__ import main
from accountlens.bench.datagen import generate
from accountlens.bench.registry import select


def test_registry_selects_baselines_of_the_chosen_benchmarks() -> None:
    names = [b.name for b in select(["bulk_import"])]
    assert names == ["datagen", "baseline", "bulk_import"]
    assert {"datagen", "baseline", "bulk_import", "http_ingest"} <= {b.name for b in select(None)}


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
