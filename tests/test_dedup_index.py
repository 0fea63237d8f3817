"""The deduplication index `event_ids` (docs/ingestion.md, "Dedup"): every stored event's
message id once, with its hash; a message id sent again is not stored again — in the same
batch, in a later batch, through the collector's log, after a restart, and in a workspace made
before the index existed (its migration fills it). User deletion removes the person's ids with
their events (the suppression list refuses their events instead); retention keeps the ids of
expired events, so an expired event sent again is not stored again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from accountlens.config import RetentionSection
from accountlens.governance.audit import Actor
from accountlens.governance.retention import apply_retention
from accountlens.ingest.pipeline import MESSAGE_ID_HASH
from accountlens.store.schema import MIGRATIONS
from accountlens.workspace import Workspace

MIGRATION = "message id index for deduplication"
ACTOR = Actor("cli:test", "admin", "test")


def track(mid: str, user: str, ts: str, name: str = "Report Created") -> dict:
    return {"type": "track", "messageId": mid, "userId": user, "event": name, "timestamp": ts,
            "properties": {"object_id": "r1"}}


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def stored(ws: Workspace) -> list[str]:
    return sorted(r["message_id"] for r in ws.store.rows("SELECT message_id FROM events"))


def assert_index_matches_events(ws: Workspace, also: set[str] = frozenset()) -> None:
    """`event_ids` holds each stored event's id once (plus `also`: expired ones), each with
    the hash the pipeline computes."""
    rows = ws.store.rows(f"SELECT message_id, id_hash, {MESSAGE_ID_HASH} AS expected FROM event_ids")
    ids = [r["message_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(stored(ws)) | set(also)
    assert all(r["id_hash"] == r["expected"] for r in rows)


def test_a_message_id_is_stored_once_across_batches_and_restarts(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ws = Workspace.init(root)
    first = ws.import_events(write_jsonl(tmp_path / "a.jsonl", [
        track("m1", "ann", "2024-03-01T10:00:00Z"), track("m2", "bob", "2024-03-01T11:00:00Z"),
        track("m1", "ann", "2024-03-01T10:00:00Z")]))  # a retry inside the batch
    assert (first.inserted, first.duplicates) == (2, 1)
    again = ws.import_events(write_jsonl(tmp_path / "b.jsonl", [
        track("m2", "bob", "2024-03-01T11:00:00Z"), track("m3", "cat", "2024-03-02T09:00:00Z")]))
    assert (again.inserted, again.duplicates) == (1, 1)
    ws.close()

    ws = Workspace.open(root)  # a restart: the index is on disk with the events
    try:
        later = ws.import_events(write_jsonl(tmp_path / "c.jsonl", [
            track("m1", "ann", "2024-03-01T10:00:00Z"), track("m3", "cat", "2024-03-02T09:00:00Z"),
            track("m4", "ann", "2024-03-03T09:00:00Z")]))
        assert (later.inserted, later.duplicates) == (1, 2)
        assert stored(ws) == ["m1", "m2", "m3", "m4"]
        assert_index_matches_events(ws)
    finally:
        ws.close()


def test_the_collector_log_is_deduplicated_against_the_index(tmp_path: Path) -> None:
    """Retries the collector acknowledged twice (in two segments, loaded in separate loads)."""
    ws = Workspace.init(tmp_path / "ws")
    try:
        for events in ([track("m1", "ann", "2024-03-01T10:00:00Z")],
                       [track("m1", "ann", "2024-03-01T10:00:00Z"),
                        track("m2", "bob", "2024-03-01T11:00:00Z")]):
            event_log = ws.open_log()
            try:
                event_log.append("".join(json.dumps(e) + "\n" for e in events).encode()).result(10)
            finally:
                event_log.close()
            ws.load_log()
        assert stored(ws) == ["m1", "m2"]
        assert_index_matches_events(ws)
    finally:
        ws.close()


def test_a_hash_collision_never_drops_an_event(tmp_path: Path) -> None:
    """Two message ids with the same hash are both stored: the hash only finds candidates, the
    message id decides. (A real 64-bit collision cannot be written down here: the stored hash
    of m1 is set to m2's.)"""
    ws = Workspace.init(tmp_path / "ws")
    try:
        ws.import_events(write_jsonl(tmp_path / "a.jsonl", [track("m1", "ann", "2024-03-01T10:00:00Z")]))
        ws.store.execute("UPDATE event_ids SET id_hash = (SELECT CAST('0x' || left(md5('m2'), 16) "
                         "AS UBIGINT)) WHERE message_id = 'm1'")
        result = ws.import_events(write_jsonl(tmp_path / "b.jsonl", [
            track("m2", "bob", "2024-03-01T11:00:00Z")]))
        assert (result.inserted, result.duplicates) == (1, 0)
        assert stored(ws) == ["m1", "m2"]
    finally:
        ws.close()


def test_the_migration_fills_the_index_of_an_existing_workspace(tmp_path: Path) -> None:
    """A workspace from before the index: its events' ids are indexed by the migration, and
    an event it already holds is not stored again."""
    root = tmp_path / "ws"
    ws = Workspace.init(root)
    ws.import_events(write_jsonl(tmp_path / "a.jsonl", [
        track("m1", "ann", "2024-03-01T10:00:00Z"), track("m2", "bob", "2024-03-01T11:00:00Z")]))
    version = [description for description, _ in MIGRATIONS].index(MIGRATION) + 1
    # back to the schema before the index (the migrations after it, if any, stay applied)
    ws.store.execute("DROP TABLE event_ids")
    ws.store.execute("DELETE FROM schema_version WHERE version = ?", [version])
    with ws.store.transaction():
        for statement in MIGRATIONS[version - 1][1]:
            ws.store.execute(statement)
        ws.store.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, MIGRATION])
    ws.close()

    ws = Workspace.open(root)
    try:
        assert_index_matches_events(ws)
        result = ws.import_events(write_jsonl(tmp_path / "b.jsonl", [
            track("m2", "bob", "2024-03-01T11:00:00Z"), track("m3", "cat", "2024-03-02T09:00:00Z")]))
        assert (result.inserted, result.duplicates) == (1, 1)
        assert_index_matches_events(ws)
    finally:
        ws.close()


def test_a_fresh_migration_of_an_old_schema_fills_the_index(tmp_path: Path) -> None:
    """Through `migrate` itself: a store at the version before the index, with events."""
    root = tmp_path / "ws"
    ws = Workspace.init(root)
    ws.import_events(write_jsonl(tmp_path / "a.jsonl", [track("m1", "ann", "2024-03-01T10:00:00Z")]))
    version = [description for description, _ in MIGRATIONS].index(MIGRATION) + 1
    # back to the version before the index: its table and those of the later steps dropped
    for _, statements in MIGRATIONS[version - 1:]:
        for statement in statements:
            created = re.match(r"\s*CREATE TABLE (\w+)", statement)
            assert created or statement.lstrip().startswith("INSERT"), statement
            if created:
                ws.store.execute(f"DROP TABLE {created[1]}")
    ws.store.execute("DELETE FROM schema_version WHERE version >= ?", [version])
    ws.close()
    ws = Workspace.open(root)  # migrates
    try:
        assert ws.store.schema_version() == len(MIGRATIONS)
        assert_index_matches_events(ws)
    finally:
        ws.close()


def test_deleting_a_user_removes_their_ids_and_keeps_the_others(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    try:
        ws.import_events(write_jsonl(tmp_path / "a.jsonl", [
            track("a1", "ann", "2024-03-01T10:00:00Z"), track("a2", "ann", "2024-03-01T10:05:00Z"),
            track("b1", "bob", "2024-03-01T11:00:00Z")]))
        ws.delete_user("ann")
        assert stored(ws) == ["b1"]
        assert_index_matches_events(ws)
        # the person's events sent again are refused by the suppression list, bob's retry
        # is a duplicate, and a new event of bob is stored
        result = ws.import_events(write_jsonl(tmp_path / "b.jsonl", [
            track("a1", "ann", "2024-03-01T10:00:00Z"), track("b1", "bob", "2024-03-01T11:00:00Z"),
            track("b2", "bob", "2024-03-02T11:00:00Z")]))
        assert (result.suppressed, result.duplicates, result.inserted) == (1, 1, 1)
        assert stored(ws) == ["b1", "b2"]
        assert_index_matches_events(ws)
    finally:
        ws.close()


def test_retention_keeps_the_ids_of_expired_events(tmp_path: Path) -> None:
    """An event removed by retention and sent again is a duplicate, not a new event: it was
    counted once (the rollup keeps the days before the retention horizon)."""
    ws = Workspace.init(tmp_path / "ws")
    try:
        old, new = track("old", "ann", "2024-01-10T10:00:00Z"), track("new", "ann", "2024-03-30T10:00:00Z")
        ws.import_events(write_jsonl(tmp_path / "a.jsonl", [old, new]))
        config = ws.config.model_copy(update={"retention": RetentionSection(events_days=45)})
        now = dt.datetime(2024, 4, 1, 12, 0, tzinfo=dt.UTC)
        result = apply_retention(ws.store, config, ws.root, ACTOR, now=now)
        assert result["removed"]["events"] == 1
        assert stored(ws) == ["new"]
        assert_index_matches_events(ws, also={"old"})
        again = ws.import_events(write_jsonl(tmp_path / "b.jsonl", [old]))
        assert (again.inserted, again.duplicates) == (0, 1)
        assert stored(ws) == ["new"]
    finally:
        ws.close()


def test_a_failed_load_leaves_no_ids(tmp_path: Path) -> None:
    """The index is written in the load's transaction: a load that fails after writing it
    leaves neither events nor ids, and the same events load later."""
    from accountlens.ingest import pipeline

    ws = Workspace.init(tmp_path / "ws")
    events = write_jsonl(tmp_path / "a.jsonl", [track("m1", "ann", "2024-03-01T10:00:00Z")])

    def boom(store, cfg, batch) -> None:
        raise RuntimeError("crash after the write")

    original = pipeline.STEPS
    pipeline.STEPS = (*original, pipeline.Step(boom))
    try:
        with pytest.raises(RuntimeError, match="crash after the write"):
            ws.import_events(events)
    finally:
        pipeline.STEPS = original
    try:
        assert stored(ws) == [] and ws.store.scalar("SELECT count(*) FROM event_ids") == 0
        assert ws.import_events(events).inserted == 1
        assert_index_matches_events(ws)
    finally:
        ws.close()
