"""Events as a lake (docs/lake.md) on a real DuckDB file and real Parquet files: the same
answers as the DuckDB table, exactly-once loading through crashes, the writes that change
stored events (re-attribution, deletion, retention), moving a workspace in and out, and Spark
reading the lake without an export."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from accountlens.cli.main import app
from accountlens.config import CONFIG_FILE, load_config
from accountlens.governance.audit import Actor
from accountlens.governance.retention import apply_retention
from accountlens.metrics.registry import available_levels, load_all
from accountlens.store.base import StoreError
from accountlens.workspace import Workspace
from tests.test_metrics_contract import AS_OF, _crm, _events

ANALYSES = (("handoffs", {}), ("collaboration", {}), ("activity", {}), ("sequences", {}),
            ("paths", {}), ("champions", {}), ("accounts", {}), ("reconcile", {}))


def _workspace(root: Path, lake: bool, batches: int = 3) -> Workspace:
    """The metrics contract's generated workspace, its events imported in `batches` files
    (so that loads append to the lake's files), in lake mode when `lake`."""
    rng = random.Random(11)
    ws = Workspace.init(root / "ws", name="lake" if lake else "table")
    if lake:
        ws.enable_lake()
    for kind, rows in _crm(rng).items():
        (root / f"{kind}.csv").write_text("\n".join(rows) + "\n")
        ws.import_entities(kind, root / f"{kind}.csv")
    events = _events(rng)
    for part in range(batches):
        path = root / f"events-{part}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events[part::batches]))
        ws.import_events(path)
    return ws


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), ignore_index=True, key=lambda c: c.astype(str))


def _files(ws: Workspace) -> pd.DataFrame:
    """Every event row in the lake's files, read with pyarrow (not through DuckDB)."""
    paths = sorted((ws.root / "lake" / "events").glob("event_date=*/*.parquet"))
    return pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)


def _events_of(ws: Workspace, loaded_apart: bool = False) -> pd.DataFrame:
    """The stored events; `loaded_apart`: without the time they were loaded (two workspaces)."""
    columns = "* EXCLUDE (received_at)" if loaded_apart else "*"
    return _sorted(ws.store.df(f"SELECT {columns} FROM events"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    table = _workspace(tmp_path_factory.mktemp("table"), lake=False)
    lake = _workspace(tmp_path_factory.mktemp("lake"), lake=True)
    yield table, lake
    table.close()
    lake.close()


def test_the_lake_holds_the_same_events_with_the_tables_schema(pair) -> None:
    table, lake = pair
    assert lake.store.arrow("SELECT * FROM events LIMIT 0").schema == \
        table.store.arrow("SELECT * FROM events LIMIT 0").schema
    pd.testing.assert_frame_equal(_events_of(lake, True), _events_of(table, True))
    status = lake.lake_status()
    assert status["mode"] == "lake" and status["events"] == len(_files(lake)) > 0
    assert status["days"] == len(list((lake.root / "lake" / "events").glob("event_date=*")))
    assert status["pending_moves"] == 0 and not any((lake.root / "lake" / "staging").iterdir())
    # three loads appended to the same day files rather than adding a file per load
    assert status["files"] == status["days"]
    assert table.lake_status()["mode"] == "table"


def test_metrics_and_analyses_are_the_same_in_table_and_lake_mode(pair) -> None:
    table, lake = pair
    model = table.config.analysis.model
    compared = 0
    for metric in load_all().values():
        for level in available_levels(metric, model)[:2]:
            expected = table.metric(metric.name, level=level, as_of=AS_OF)
            got = lake.metric(metric.name, level=level, as_of=AS_OF)
            pd.testing.assert_frame_equal(_sorted(got), _sorted(expected), check_dtype=False)
            compared += 1
    assert compared >= len(load_all())
    for name, params in ANALYSES:
        expected = table.analysis(name, as_of=AS_OF, **params)
        got = lake.analysis(name, as_of=AS_OF, **params)
        pd.testing.assert_frame_equal(_sorted(got), _sorted(expected), check_dtype=False)


def test_loading_again_stores_nothing_twice(pair, tmp_path) -> None:
    _, lake = pair
    before = lake.lake_status()
    result = lake.import_events(lake.root.parent / "events-1.jsonl")
    assert result.inserted == 0 and result.duplicates == result.received > 0
    assert lake.lake_status()["events"] == before["events"] == len(_files(lake))
    assert _files(lake)["message_id"].is_unique


def _tiny(root: Path) -> Workspace:
    ws = Workspace.init(root / "ws")
    ws.enable_lake()
    (root / "accounts.csv").write_text("account_id,name,domain\nacme,Acme,acme.com\n"
                                       "globex,Globex,globex.com\n")
    ws.import_entities("accounts", root / "accounts.csv")
    (root / "memberships.csv").write_text(
        "user_id,account_id,unit_id,role,valid_from,valid_to\nann,acme,,editor,2024-01-01,\n")
    ws.import_entities("memberships", root / "memberships.csv")
    return ws


def _load(ws: Workspace, name: str, events: list[dict]) -> None:
    path = ws.root.parent / f"{name}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(path)


def test_a_late_identify_reattributes_the_events_in_the_files(tmp_path) -> None:
    ws = _tiny(tmp_path)
    _load(ws, "anonymous", [{"type": "track", "messageId": f"a{i}", "anonymousId": "anon-1",
                             "event": "Report Created", "timestamp": f"2024-02-0{1 + i}T10:00:00Z"}
                            for i in range(3)])
    files = _files(ws)
    assert set(files["attribution"]) == {"unattributed"} and files["account_id"].isna().all()
    ws.metric("mau", level="account", as_of="2024-02-10")  # the rollup made, then kept up
    _load(ws, "identify", [{"type": "identify", "messageId": "i1", "anonymousId": "anon-1",
                            "userId": "ann", "timestamp": "2024-02-05T10:00:00Z"}])
    files = _files(ws).set_index("message_id")
    assert list(files.loc[["a0", "a1", "a2"], "account_id"]) == ["acme"] * 3
    assert list(files.loc[["a0", "a1", "a2"], "user_id"]) == ["ann"] * 3
    assert len(files) == 4 and ws.lake_status()["files"] == 4  # rewritten, not added
    # the rollup followed (it reads the view within the load's transaction)
    assert ws.store.scalar("SELECT sum(events) FROM daily_activity WHERE account_id = 'acme'") == 3
    ws.close()


def test_deleting_a_person_removes_them_from_the_parquet_files(tmp_path) -> None:
    ws = _tiny(tmp_path)
    _load(ws, "events", [
        {"type": "track", "messageId": "b1", "userId": "bob", "event": "Clicked",
         "timestamp": "2024-02-01T10:00:00Z", "context": {"groupId": "acme"}},
        {"type": "track", "messageId": "b2", "userId": "bob", "event": "Clicked",
         "timestamp": "2024-02-02T10:00:00Z", "context": {"groupId": "acme"}},
        {"type": "track", "messageId": "n1", "userId": "ann", "event": "User Invited",
         "timestamp": "2024-02-01T11:00:00Z",
         "properties": {"invitee_email": "bob@acme.com", "seat": 2}},
        {"type": "identify", "messageId": "b3", "userId": "bob", "timestamp": "2024-02-01T09:00:00Z",
         "traits": {"email": "bob@acme.com"}},
    ])
    result = ws.delete_user(user_id="bob")
    assert result["removed"]["events"] == 3 and result["corrected"]["events"] == 1
    files = _files(ws)
    assert list(files["message_id"]) == ["n1"]  # the 2024-02-02 file went with its last row
    assert json.loads(files["properties"][0]) == {"seat": 2}  # the invitee's e-mail erased
    assert ws.store.scalar("SELECT count(*) FROM events") == 1
    assert not (ws.root / "lake" / "events" / "event_date=2024-02-02").exists()
    # the tables published for Spark were written again without the person
    manifest = json.loads((ws.root / "lake" / "accountlens-export.json").read_text())
    users = pq.read_table(ws.root / "lake" / manifest["tables"]["users"]["path"]).to_pandas()
    assert "bob" not in set(users["user_id"])
    ws.close()


def test_retention_drops_the_days_past_the_horizon(tmp_path) -> None:
    ws = _tiny(tmp_path)
    _load(ws, "events", [
        {"type": "track", "messageId": f"r{day}", "userId": "ann", "event": "Clicked",
         "timestamp": f"2024-03-{day:02d}T10:00:00Z"} for day in range(1, 11)]
        + [{"type": "identify", "messageId": "id9", "userId": "ann",
            "timestamp": "2024-03-09T12:00:00Z"}])
    config = ws.config.model_copy(deep=True)
    config.retention.events_days = 3
    result = apply_retention(ws.store, config, ws.root, Actor.cli(),
                             now=dt.datetime(2024, 3, 11, 12, tzinfo=dt.UTC))
    assert result["removed"]["events"] == 7  # 1-7 March; the identify call stays
    days = sorted(p.name for p in (ws.root / "lake" / "events").glob("event_date=*"))
    assert days == ["event_date=2024-03-08", "event_date=2024-03-09", "event_date=2024-03-10"]
    assert sorted(_files(ws)["message_id"]) == ["id9", "r10", "r8", "r9"]
    ws.close()


def test_enable_then_disable_keeps_every_event(tmp_path) -> None:
    ws = _workspace(tmp_path, lake=False, batches=1)
    before = _events_of(ws)
    moved = ws.enable_lake()
    assert moved["moved"] == len(before) and moved["mode"] == "lake"
    assert load_config(ws.root / CONFIG_FILE).workspace.events_storage == "lake"
    pd.testing.assert_frame_equal(_events_of(ws), before)
    assert len(_files(ws)) == len(before)
    back = ws.disable_lake()
    assert back["moved"] == len(before) and back["mode"] == "table"
    assert load_config(ws.root / CONFIG_FILE).workspace.events_storage == "table"
    pd.testing.assert_frame_equal(_events_of(ws), before)
    assert ws.store.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events'") == 1
    assert not (ws.root / "lake").exists()
    ws.close()
    # the CLI: status, and a workspace whose setting says lake while its events are a table
    runner = CliRunner()
    out = runner.invoke(app, ["lake", "status", "--dir", str(ws.root), "--format", "json"])
    assert out.exit_code == 0 and json.loads(out.stdout)[0]["mode"] == "table"
    text = (ws.root / CONFIG_FILE).read_text().replace('events_storage = "table"',
                                                      'events_storage = "lake"')
    (ws.root / CONFIG_FILE).write_text(text)
    with pytest.raises(StoreError, match="accountlens lake enable"):
        Workspace.open(ws.root)
    out = runner.invoke(app, ["lake", "enable", "--dir", str(ws.root), "--format", "json"])
    assert out.exit_code == 0, out.output
    with Workspace.open(ws.root) as again:
        pd.testing.assert_frame_equal(_events_of(again), before)


def test_a_moved_workspace_reads_its_lake_at_the_new_place(tmp_path) -> None:
    ws = _tiny(tmp_path / "a")
    _load(ws, "events", [{"type": "track", "messageId": "x", "userId": "ann", "event": "Clicked",
                          "timestamp": "2024-02-01T10:00:00Z"}])
    ws.close()
    shutil.move(tmp_path / "a", tmp_path / "b")
    with Workspace.open(tmp_path / "b" / "ws") as moved:
        assert moved.store.scalar("SELECT count(*) FROM events") == 1


# ---- crash safety: a real process killed (SIGKILL) at the two moments that matter ---------------
_CRASH = textwrap.dedent("""
    import os, signal, sys
    from accountlens.store import lake
    from accountlens.workspace import Workspace

    root, point, events = sys.argv[1], sys.argv[2], sys.argv[3]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before_commit":  # files staged and recorded, the transaction not committed
        write = lake.Lake._write
        def staged_then_die(self, *args, **kwargs):
            write(self, *args, **kwargs)
            die()
        lake.Lake._write = staged_then_die
    else:  # committed, the files not moved into the partition folders
        lake.Lake._after_commit = die
    ws = Workspace.open(root, check_storage=point != "enable")
    if point == "enable":
        ws.enable_lake()
    else:
        ws.import_events(events)
""")


def _crash(root: Path, point: str, events: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _CRASH, str(root), point, str(events)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_a_crash_during_a_load_loses_nothing_and_doubles_nothing(tmp_path, point: str) -> None:
    ws = _tiny(tmp_path)
    first = [{"type": "track", "messageId": f"f{i}", "userId": "ann", "event": "Clicked",
              "timestamp": f"2024-02-0{1 + i % 3}T10:00:00Z"} for i in range(6)]
    _load(ws, "first", first)
    ws.close()
    second = tmp_path / "second.jsonl"
    second.write_text("".join(json.dumps({**e, "messageId": "s" + e["messageId"]}) + "\n"
                              for e in first))
    _crash(tmp_path / "ws", point, second)
    staged = list((tmp_path / "ws" / "lake" / "staging").rglob("*.parquet"))
    assert staged  # the crash left staged files behind
    with Workspace.open(tmp_path / "ws") as ws:  # recovery on open
        expected = 12 if point == "after_commit" else 6
        assert ws.store.scalar("SELECT count(*) FROM events") == expected == len(_files(ws))
        assert not list((tmp_path / "ws" / "lake" / "staging").rglob("*.parquet"))
        assert ws.lake_status()["pending_moves"] == 0
        again = ws.import_events(second)  # a retry after the crash
        assert again.inserted == (0 if point == "after_commit" else 6)
        assert ws.store.scalar("SELECT count(*) FROM events") == 12 == len(_files(ws))
        assert _files(ws)["message_id"].is_unique


def test_a_crash_while_enabling_is_finished_by_enabling_again(tmp_path) -> None:
    ws = _workspace(tmp_path, lake=False, batches=1)
    before = _events_of(ws)
    ws.close()
    _crash(tmp_path / "ws", "enable", tmp_path)
    with pytest.raises(StoreError, match="accountlens lake enable"):
        Workspace.open(tmp_path / "ws")  # the events moved, the setting not yet
    out = CliRunner().invoke(app, ["lake", "enable", "--dir", str(tmp_path / "ws")])
    assert out.exit_code == 0, out.output
    with Workspace.open(tmp_path / "ws") as ws:
        pd.testing.assert_frame_equal(_events_of(ws), before)
        assert len(_files(ws)) == len(before)


# ---- Spark reads the lake: fresh after every load, no export ------------------------------------
def test_spark_sees_the_events_of_every_load_without_an_export(tmp_path, spark_session) -> None:
    ws = _tiny(tmp_path)  # its Spark engine reuses the running session (tests/conftest.py)

    def day(n: int, users: list[str]) -> list[dict]:
        return [{"type": "track", "messageId": f"d{n}-{u}", "userId": u, "event": "Clicked",
                 "timestamp": f"2024-02-{n:02d}T10:00:00Z", "context": {"groupId": "acme"}}
                for u in users]

    _load(ws, "one", day(1, ["ann", "u1"]))
    first = ws.metric("mau", level="account", as_of="2024-02-10", engine="spark")
    assert dict(zip(first["account_id"], first["mau"])) == {"acme": 2}
    spark = ws.engine("spark")
    assert spark.scalar("SELECT count(*) FROM events") == 2
    _load(ws, "two", day(2, ["ann", "u2", "u3"]) + day(1, ["u4"]))  # a new day, and an old one
    assert spark.scalar("SELECT count(*) FROM events") == 6
    second = ws.metric("mau", level="account", as_of="2024-02-10", engine="spark")
    assert dict(zip(second["account_id"], second["mau"])) == {"acme": 5}
    duck = ws.metric("mau", level="account", as_of="2024-02-10")
    assert dict(zip(duck["account_id"], duck["mau"])) == {"acme": 5}
    assert not (ws.root / "parquet").exists()  # no export was written
    ws.close()


def test_a_served_lake_workspace_loads_collected_events_and_reports_its_lake(
        tmp_path, server_factory) -> None:
    import httpx

    from tests.conftest import admin_headers

    _tiny(tmp_path).close()
    server = server_factory(tmp_path / "ws")
    batch = [{"type": "track", "messageId": f"c{i}", "userId": "ann", "event": "Clicked",
              "timestamp": f"2024-02-0{1 + i % 2}T10:00:00Z"} for i in range(10)]
    for _ in range(2):  # sent twice: stored once
        assert httpx.post(server.ingest_url + "/v1/batch", json={"batch": batch},
                          auth=(server.write_key, "")).status_code == 200
    server.flush()
    status = httpx.get(server.url + "/api/v1/lake", headers=admin_headers(server.root)).json()
    assert status["mode"] == "lake" and status["events"] == 10
    assert status["days"] == 2 and status["files"] == 2 and status["pending_moves"] == 0


def test_a_load_that_fails_after_writing_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    from accountlens.model import rollup

    ws = _tiny(tmp_path)
    _load(ws, "first", [{"type": "track", "messageId": "f1", "userId": "ann", "event": "Clicked",
                         "timestamp": "2024-02-01T10:00:00Z"}])
    before = sorted((ws.root / "lake" / "events").rglob("*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in before]

    def fail(*args, **kwargs):
        raise RuntimeError("the step after the write failed")

    monkeypatch.setattr(rollup, "refresh_after_load", fail)
    with pytest.raises(RuntimeError, match="after the write"):
        _load(ws, "second", [{"type": "track", "messageId": f"s{i}", "userId": "ann",
                              "event": "Clicked", "timestamp": f"2024-02-0{i}T10:00:00Z"}
                             for i in (1, 2)])
    assert sorted((ws.root / "lake" / "events").rglob("*.parquet")) == before
    assert [p.stat().st_mtime_ns for p in before] == stamps  # the appended file untouched
    assert not list((ws.root / "lake" / "staging").rglob("*.parquet"))
    assert ws.store.scalar("SELECT count(*) FROM events") == 1
    assert ws.store.scalar("SELECT count(*) FROM lake_moves") == 0
    monkeypatch.undo()
    _load(ws, "second", [{"type": "track", "messageId": "s1", "userId": "ann", "event": "Clicked",
                          "timestamp": "2024-02-01T10:00:00Z"}])
    assert ws.store.scalar("SELECT count(*) FROM events") == 2 == len(_files(ws))
    with pytest.raises(StoreError, match="inside store.transaction"):
        ws.store.lake.append(ws.store, "events")  # a write of the lake outside a transaction
    ws.close()
