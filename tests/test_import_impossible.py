"""Impossible values in CRM/billing imports are refused, each with `FILE:LINE column NAME: reason`
and nothing of the file loaded (issue 20): an interval ending before it starts, a negative count
or amount, an id naming no account, a key twice in one file. Memberships of users not seen yet
are kept with a warning (docs/data-model.md). Also: replaying a quarantine id that does not exist."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from accountlens.ingest.importers import ImportError_
from accountlens.model.entities import ENTITIES, ENTITY_TABLES
from accountlens.workspace import Workspace, WorkspaceError

ACCOUNTS = "account_id,name,parent_account_id\nacme,Acme,\nglobex,Globex,\n"
USERS = "user_id,email\nann,ann@acme.com\nbob,bob@globex.com\n"


def tables(ws: Workspace) -> dict[str, int]:
    names = (*ENTITY_TABLES, "subscription_sources", "imports")
    return {name: ws.store.scalar(f"SELECT count(*) FROM {name}") for name in names}


@pytest.fixture
def crm(ws: Workspace, tmp_path: Path) -> Workspace:
    for kind, text in (("accounts", ACCOUNTS), ("users", USERS)):
        (tmp_path / f"{kind}.csv").write_text(text)
        ws.import_entities(kind, tmp_path / f"{kind}.csv")
    return ws


def refused(ws: Workspace, path: Path, kind: str, text: str) -> list[str]:
    """Import `text` as `path`: refused, the store unchanged; the error lines (file name first)."""
    path.write_text(text)
    before = tables(ws)
    with pytest.raises(ImportError_) as caught:
        ws.import_entities(kind, path)
    assert tables(ws) == before  # nothing half-loaded, no import recorded
    return [line.strip().replace(str(path.parent) + "/", "") for line in caught.value.errors]


# ---- each impossible value, with its message ------------------------------------------------
SUBS = "subscription_id,account_id,seats,arr,start,end\n"


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("subscriptions", SUBS + "s1,acme,5,100,2024-01-01,\ns2,acme,5,100,2024-03-01,2024-03-02\n"
     "s3,acme,5,100,2024-03-01,2024-01-01\n",
     "x.csv:4 column end: 2024-01-01 is before start 2024-03-01"),
    ("subscriptions", SUBS + "s1,acme,5,100,2024-01-01,\ns2,acme,-5,100,2024-01-01,\n",
     "x.csv:3 column seats: -5 is negative"),
    ("subscriptions", SUBS + "s1,acme,5,-0.5,2024-01-01,\n", "x.csv:2 column arr: -0.5 is negative"),
    ("subscriptions", SUBS + "s1,acc-9,5,100,2024-01-01,\n",
     "x.csv:2 column account_id: 'acc-9' names no account (import accounts first)"),
    ("subscriptions", SUBS + "s9,acme,5,1,2024-01-01,\ns1,acme,5,1,2024-01-01,\ns2,acme,5,1,2024-01-01,\n"
     "s3,acme,5,1,2024-01-01,\ns4,acme,5,1,2024-01-01,\ns5,acme,5,1,2024-01-01,\ns1,acme,6,1,2024-01-01,\n",
     "x.csv:8 column subscription_id: 's1' appears again (first on line 3): one row per key in a file"),
    ("memberships", "user_id,account_id,valid_from,valid_to\nann,acme,2024-01-01,\n"
     "bob,globex,2024-02-01,2024-03-01\nbob,acme,2024-05-01,2024-04-30T23:59:59Z\n",
     "x.csv:4 column valid_to: 2024-04-30T23:59:59Z is before valid_from 2024-05-01"),
    ("memberships", "user_id,account_id,valid_from\nann,initech,2024-01-01\n",
     "x.csv:2 column account_id: 'initech' names no account (import accounts first)"),
    ("memberships", "user_id,account_id,valid_from\nann,acme,2024-01-01\nann,acme,2024-01-01T00:00:00Z\n",
     "x.csv:3 column user_id, account_id, valid_from: 'ann', 'acme', '2024-01-01T00:00:00Z' appears "
     "again (first on line 2): one row per key in a file"),
    ("outcomes", "account_id,kind,date,arr_delta\nacme,churn,2024-06-01,-1200\nhooli,renewal,2024-06-01,0\n",
     "x.csv:3 column account_id: 'hooli' names no account (import accounts first)"),
    ("outcomes", "account_id,kind,date\nacme,churn,2024-06-01\nacme,churn,2024-06-01\n",
     "x.csv:3 column account_id, kind, date: 'acme', 'churn', '2024-06-01' appears again "
     "(first on line 2): one row per key in a file"),
    ("units", "unit_id,account_id,kind\nu1,acme,team\nu2,umbrella,team\n",
     "x.csv:3 column account_id: 'umbrella' names no account (import accounts first)"),
    ("accounts", "account_id,parent_account_id\ninitech,\ninitech-eu,initech-group\n",
     "x.csv:3 column parent_account_id: 'initech-group' names no account (not stored, nor in this file)"),
    ("accounts", "account_id,employees\ninitech,-1\n", "x.csv:2 column employees: -1 is negative"),
    ("users", "user_id,email\nu1,a@b.c\nu1,d@e.f\n",
     "x.csv:3 column user_id: 'u1' appears again (first on line 2): one row per key in a file"),
])
def test_each_impossible_value_is_refused_with_its_message(crm, tmp_path, kind, text, message) -> None:
    assert refused(crm, tmp_path / "x.csv", kind, text) == [message]


def test_every_broken_rule_is_named_with_its_first_row_and_how_many_more(crm, tmp_path) -> None:
    errors = refused(crm, tmp_path / "x.csv", "subscriptions", SUBS
                     + "s1,acme,-1,100,2024-03-01,2024-01-01\ns2,nowhere,-2,100,2024-01-01,\n"
                       "s2,acme,-3,-1,2024-01-01,\n")
    assert errors == [
        "x.csv:2 column end: 2024-01-01 is before start 2024-03-01",
        "x.csv:2 column seats: -1 is negative (and 2 more row(s))",
        "x.csv:3 column account_id: 'nowhere' names no account (import accounts first)",
        "x.csv:4 column arr: -1 is negative",
        "x.csv:4 column subscription_id: 's2' appears again (first on line 3): one row per key in a file",
    ]


def test_type_errors_come_first_and_the_error_says_nothing_was_imported(crm, tmp_path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(SUBS + "s1,acme,ten,100,2024-01-01,\ns1,acme,-1,100,2024-01-01,\n")
    with pytest.raises(ImportError_, match="nothing imported") as caught:
        crm.import_entities("subscriptions", path)
    assert caught.value.errors == [f"{path}:2 column seats: not a valid bigint (got 'ten')"]


# ---- what is allowed -----------------------------------------------------------------------
def test_valid_files_load_and_reimport_is_idempotent(crm, tmp_path) -> None:
    files = {
        "accounts": "account_id,parent_account_id\nacme-eu,acme-group\nacme-group,\nacme,acme-group\n",
        "units": "unit_id,account_id,kind\nacme-sales,acme,department\n",
        "memberships": "user_id,account_id,unit_id,valid_from,valid_to\n"
                       "ann,acme,acme-sales,2024-01-01,2024-01-01\nann,globex,,2024-01-01,\n",
        "subscriptions": SUBS + "s1,acme,0,0,2024-01-01,2024-01-01\ns2,acme-eu,3,99.5,2024-01-01,\n",
        "outcomes": "account_id,kind,date,arr_delta\nacme,contraction,2024-06-01,-500\n",
    }
    for kind, text in files.items():  # a parent later in the same file; empty intervals; 0 seats
        (tmp_path / f"{kind}.csv").write_text(text)
        assert crm.import_entities(kind, tmp_path / f"{kind}.csv") == text.count("\n") - 1
    counts = tables(crm)
    for kind in files:
        crm.import_entities(kind, tmp_path / f"{kind}.csv")
    again = tables(crm)
    assert again.pop("imports") == counts.pop("imports") + len(files)
    # each subscriptions import is kept per source; the rest is replaced by key
    assert again.pop("subscription_sources") == counts.pop("subscription_sources") + 2
    assert again == counts


def test_memberships_of_users_not_seen_yet_are_kept_with_a_warning(crm, tmp_path, caplog) -> None:
    path = tmp_path / "m.csv"
    path.write_text("user_id,account_id,valid_from\nann,acme,2024-01-01\n"
                    "u-77,acme,2024-01-01\nu-78,globex,2024-01-01\n")
    with caplog.at_level(logging.WARNING, logger="accountlens.import"):
        assert crm.import_entities("memberships", path) == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:3 column user_id: 'u-77' names no user (import users first) (and 1 more row(s)) (kept)"
    ]
    assert crm.store.scalar("SELECT count(*) FROM memberships WHERE user_id LIKE 'u-7%'") == 2


def test_the_checks_cover_every_declared_column() -> None:
    """Every column a check names is an import column of its kind, and every reference names
    a kind: a typo in model/entities.py fails here, not on a user's file."""
    for kind, spec in ENTITIES.items():
        named = [*spec.non_negative, *(c for pair in spec.ordered for c in pair),
                 *spec.references, *spec.warn_references]
        assert all(spec.column(name) for name in named), kind
        assert set(spec.references.values()) | set(spec.warn_references.values()) <= set(ENTITIES), kind


# ---- the rules, against random values ------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seats=st.integers(-3, 3), arr=st.floats(-2, 2, allow_nan=False).map(lambda x: round(x, 2)),
       start=st.dates(dt.date(1990, 1, 1), dt.date(2100, 1, 1)), days=st.integers(-400, 400))
def test_negative_and_unordered_values_are_refused_exactly_as_the_rule_says(
        crm, tmp_path, seats, arr, start, days) -> None:
    end = start + dt.timedelta(days=days)
    path = tmp_path / "h.csv"
    path.write_text(SUBS + f"h1,acme,{seats},{arr},{start.isoformat()},{end.isoformat()}\n")
    before = tables(crm)
    expected = [f"{path}:2 column {name}: {text}" for name, text, broken in (
        ("end", f"{end.isoformat()} is before start {start.isoformat()}", end < start),
        ("seats", f"{seats} is negative", seats < 0),
        ("arr", f"{arr} is negative", arr < 0),
    ) if broken]
    try:
        crm.import_entities("subscriptions", path)
    except ImportError_ as exc:
        assert exc.errors and sorted(exc.errors) == sorted(expected)
        assert tables(crm) == before
    else:
        assert expected == []
        row = crm.store.arrow("SELECT seats, arr, end_date FROM subscriptions "
                              "WHERE subscription_id = 'h1'").to_pylist()[0]
        assert (row["seats"], row["arr"], row["end_date"]) == (seats, arr, end)


# ---- subscription sources ------------------------------------------------------------------
def test_every_subscriptions_import_is_kept_per_source(crm, tmp_path) -> None:
    crm_file, billing = tmp_path / "crm.csv", tmp_path / "billing.csv"
    crm_file.write_text(SUBS.strip() + ",source\ns1,acme,10,1200,2024-01-01,,crm\ns2,globex,5,500,2024-01-01,,\n")
    billing.write_text(SUBS + "s1,acme,12,1300,2024-01-01,\n")
    crm.import_entities("subscriptions", crm_file)
    crm.import_entities("subscriptions", billing)
    rows = crm.store.arrow(
        """SELECT s.source, s.subscription_id, s.seats, s.arr, i.kind, i.file, s.imported_at = i.imported_at AS same
           FROM subscription_sources s JOIN imports i USING (import_id)
           ORDER BY s.import_id, s.subscription_id""").to_pylist()
    assert [(r["source"], r["subscription_id"], r["seats"], r["file"]) for r in rows] == [
        ("crm", "s1", 10, str(crm_file)), ("import", "s2", 5, str(crm_file)),
        ("import", "s1", 12, str(billing)),
    ]
    assert all(r["kind"] == "subscriptions" and r["same"] for r in rows)
    current = crm.store.arrow("SELECT subscription_id, source, seats FROM subscriptions ORDER BY 1").to_pylist()
    assert current == [{"subscription_id": "s1", "source": "import", "seats": 12},
                       {"subscription_id": "s2", "source": "import", "seats": 5}]


def test_a_refused_subscriptions_file_records_no_source_rows(crm, tmp_path) -> None:
    refused(crm, tmp_path / "x.csv", "subscriptions", SUBS.strip() + ",source\ns1,acme,-1,1,2024-01-01,,billing\n")
    assert crm.store.scalar("SELECT count(*) FROM subscription_sources") == 0


# ---- quarantine replay of ids that are not there -------------------------------------------
def quarantined(ws: Workspace, tmp_path: Path) -> int:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"type": "track", "messageId": "q1", "userId": "ann",
                                "timestamp": "2024-01-01T00:00:00Z"}) + "\n")
    ws.import_events(path)
    return int(ws.store.scalar("SELECT max(quarantine_id) FROM quarantine"))


def test_replaying_an_unknown_or_replayed_id_is_an_error(ws, tmp_path) -> None:
    qid = quarantined(ws, tmp_path)
    with pytest.raises(WorkspaceError, match=r"no quarantined event with id 999 \(see `accountlens quarantine list`"):
        ws.replay_quarantine([999])
    with pytest.raises(WorkspaceError, match="no quarantined event with ids 998, 999"):
        ws.replay_quarantine([qid, 999, 998])
    with pytest.raises(WorkspaceError, match=f"no quarantined event with id {2**70}"):
        ws.replay_quarantine([qid, 2**70])  # beyond any stored id's type: said, not a crash
    assert ws.store.scalar("SELECT count(*) FROM events") == 0  # nothing replayed, not even qid
    assert ws.replay_quarantine([qid], {"event": "Fixed"}).inserted == 1
    with pytest.raises(WorkspaceError, match=f"already replayed: {qid} \\(at 20"):
        ws.replay_quarantine([qid])
    assert ws.replay_quarantine().received == 0  # "replay all" with nothing left is no error


def test_rest_replay_of_an_unknown_id_is_a_400(ws, tmp_path) -> None:
    from accountlens.api.app import create_app
    from accountlens.serve.live import LiveWorkspace

    quarantined(ws, tmp_path)
    token = ws.create_token("admin")["token"]
    client = TestClient(create_app([LiveWorkspace(workspace=ws, log=None, loader=None)]))
    response = client.post("/api/v1/quarantine/replay", json={"ids": [999]},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and "no quarantined event with id 999" in response.text


def test_cli_replay_of_an_unknown_id_is_a_clear_error(ws, tmp_path) -> None:
    from accountlens.cli.main import app

    quarantined(ws, tmp_path)
    root = ws.root
    ws.close()
    out = CliRunner().invoke(app, ["quarantine", "replay", "999", "--dir", str(root)])
    assert out.exit_code != 0
    assert "replayed 0" not in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert "no quarantined event with id 999" in out.output
