"""Imports never lose rows silently: a malformed file is refused whole with an error naming the
file and line, and the store is unchanged (counts of events, quarantined events and entities
before and after)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from accountlens.ingest.importers import ImportError_
from tests import fixtures_b2b
from tests.test_paths_champions import ws  # noqa: F401 - the fixture workspace of tests/fixtures_b2b.py


def counts(ws) -> dict:
    status = ws.status()
    return {k: status[k] for k in ("events", "quarantined", "accounts", "org_units", "users")}


def refused(ws, path, *expected: str, kind: str = "events") -> str:
    before = counts(ws)
    with pytest.raises(ImportError_) as caught:
        if kind == "events":
            ws.import_events(path)
        else:
            ws.import_entities(kind, path)
    text = str(caught.value)
    for part in expected:
        assert part in text, text
    assert counts(ws) == before  # nothing half-loaded
    return text


def test_a_ragged_events_csv_is_refused_with_its_line(ws, tmp_path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("type,messageId,userId,event,timestamp\n"
                    "track,m1,ann,Report Created,2024-03-20T09:00:00Z\n"
                    "track,m2,ann,Report Created,2024-03-20T09:00:00Z,surplus\n")
    refused(ws, path, f"{path}:3:", "Expected Number of Columns: 5 Found: 6")
    short = tmp_path / "short.csv"
    short.write_text("type,messageId,userId,event\ntrack,m1,ann,Report Created\ntrack,m2\n")
    refused(ws, short, f"{short}:3:")


def test_a_flattened_column_and_its_parent_cannot_both_be_given(ws, tmp_path) -> None:
    for header in ("type,messageId,userId,event,properties.x,properties",
                   "type,messageId,userId,event,properties,properties.x"):
        path = tmp_path / "both.csv"
        path.write_text(header + "\ntrack,m1,ann,Report Created,1,{}\n")
        refused(ws, path, "properties", "use one or the other")


def test_corrupt_and_truncated_gzip_files_are_refused_clearly(ws, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00 this is not deflate data at all" * 4)
    refused(ws, corrupt, str(corrupt))
    lines = "".join(json.dumps(fixtures_b2b.ev(f"t{i}", "ann", "Report Created",
                                               "2024-03-20T09:00:00Z")) + "\n" for i in range(2000))
    whole = gzip.compress(lines.encode())
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    refused(ws, truncated, str(truncated))
    csv_gz = tmp_path / "cut.csv.gz"
    csv_gz.write_bytes(gzip.compress(b"type,messageId,userId,event\n" + b"track,m,ann,A\n" * 500)[:60])
    refused(ws, csv_gz, str(csv_gz))
    root = ws.root
    ws.close()
    for path in (corrupt, truncated):
        out = subprocess.run([sys.executable, "-m", "accountlens", "import", "events", str(path),
                              "--dir", str(root)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 1 and str(path) in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "Aborted" not in out.stderr, out.stderr


def test_an_accounts_csv_with_an_unterminated_quote_is_refused(ws, tmp_path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text('account_id,name,domain\ninitech,"Initech,initech.com\nhooli,Hooli,hooli.xyz\n')
    refused(ws, path, f"{path}:2:", "unterminated quote", kind="accounts")
    ragged = tmp_path / "units.csv"
    ragged.write_text("unit_id,account_id,kind,name\nu1,acme,team,A,surplus\n")
    refused(ws, ragged, f"{ragged}:2:", kind="units")
    twice = tmp_path / "users.csv"
    twice.write_text("user_id,email,email\nu1,a@b.c,d@e.f\n")
    refused(ws, twice, "column 'email' appears twice", kind="users")


def test_every_bad_cell_is_counted(ws, tmp_path) -> None:
    path = tmp_path / "units.csv"
    rows = "".join(f"u{i},acme,squad,Unit {i}\n" for i in range(30))
    path.write_text("unit_id,account_id,kind,name\n" + rows)
    text = refused(ws, path, "30 problem(s)", "… and 10 more", kind="units")
    assert text.count("must be one of") == 20


def test_impossible_values_are_refused_whole_with_counts_unchanged(ws, tmp_path) -> None:
    """The fixture's accounts are stored: one impossible row refuses the file, even after good
    rows and even through the CLI, and the store keeps its counts (issue 20)."""
    subs = tmp_path / "subs.csv"
    subs.write_text("subscription_id,account_id,seats,arr,start,end\n"
                    "s1,acme,10,1200,2024-01-01,2025-01-01\n"
                    "s2,globex,5,500,2024-03-01,2024-01-01\n")
    refused(ws, subs, f"{subs}:3 column end: 2024-01-01 is before start 2024-03-01", kind="subscriptions")
    members = tmp_path / "members.csv"
    members.write_text("user_id,account_id,valid_from\nann,globex,2024-02-01\nann,initech,2024-02-01\n")
    refused(ws, members, f"{members}:3 column account_id: 'initech' names no account (import accounts first)",
            kind="memberships")
    assert ws.store.scalar("SELECT count(*) FROM subscriptions") == 0
    root = ws.root
    ws.close()
    out = subprocess.run([sys.executable, "-m", "accountlens", "import", "subscriptions", str(subs),
                          "--dir", str(root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert f"{subs}:3 column end: 2024-01-01 is before start 2024-03-01" in out.stderr
    assert "Traceback" not in out.stderr
