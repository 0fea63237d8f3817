"""Retention policies (docs/retention.md) on a real DuckDB workspace with hand-computed counts:
exactly the expired rows go (checked in DuckDB and in the audit log), everything else stays,
and the metrics read from the daily rollup keep their values for the days before the horizon,
rebuilt or not, saying so in their notes.

The clock is `NOW` (2024-04-01 12:00 UTC) except where the CLI or the server schedule run
against the real one. The events (hand-made, UTC):

    j1 ann  Report Created    01-10 (w1)     m1 ann  Report Created    03-10 (w2)
    j2 bob  Workflow Approved 01-11 (w1)     m2 bob  Workflow Approved 03-11 (w2)
    j3 cat  Page Viewed       01-12          m3 dan  Page Viewed       03-15
    j4 dan  Page Viewed       01-15          m4 cat  Report Created    03-20
    j5 dan  Report Created    01-16          f1 cat  Page Viewed       02-20
    i1 ann  identify          01-05          i2 cat  identify          03-05

ann and bob are members of acme (editor, approver), cat of globex; dan (initech.com) of no
account, so his events are unattributed until a CRM import makes him a globex member.
Quarantine: q1 and q2 (no user), quarantined (as the test sets) on 01-01 and 03-30.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from accountlens.cli.retention_cmd import register
from accountlens.config import Config, RetentionSection
from accountlens.governance.audit import Actor, AuditLog
from accountlens.governance.retention import NO_RULES, apply_retention, retention_plan
from accountlens.model import rollup
from accountlens.model.retention_horizon import horizon
from accountlens.serve.retention_schedule import RetentionSchedule
from accountlens.store.catalog import TABLES
from accountlens.workspace import Workspace
from tests.small_workspace import build
from tests.test_metrics_fixture import track

NOW = dt.datetime(2024, 4, 1, 12, 0, tzinfo=dt.UTC)
ACTOR = Actor("cli:test", "admin", "test")
CSVS = {
    "accounts": "account_id,name,domain\nacme,Acme,acme.com\nglobex,Globex,globex.com\n",
    "users": "user_id,email,name\nann,ann@acme.com,Ann\nbob,bob@acme.com,Bob\n"
             "cat,cat@globex.com,Cat\ndan,dan@initech.com,Dan\n",
    "memberships": "user_id,account_id,unit_id,role,valid_from,valid_to\n"
                   "ann,acme,,editor,2023-12-01,\nbob,acme,,approver,2023-12-01,\n"
                   "cat,globex,,editor,2023-12-01,\n",
}
DAN_JOINS_GLOBEX = "user_id,account_id,unit_id,role,valid_from,valid_to\ndan,globex,,editor,2023-12-01,\n"


def identify(mid: str, user: str, ts: str) -> dict:
    return {"type": "identify", "messageId": mid, "userId": user, "timestamp": ts,
            "traits": {"plan_seen": "trial"}}


EVENTS = [
    track("j1", "ann", "Report Created", "2024-01-10T09:00:00Z", object_id="w1"),
    track("j2", "bob", "Workflow Approved", "2024-01-11T09:00:00Z", object_id="w1"),
    track("j3", "cat", "Page Viewed", "2024-01-12T09:00:00Z"),
    track("j4", "dan", "Page Viewed", "2024-01-15T09:00:00Z"),
    track("j5", "dan", "Report Created", "2024-01-16T09:00:00Z"),
    identify("i1", "ann", "2024-01-05T09:00:00Z"),
    track("f1", "cat", "Page Viewed", "2024-02-20T09:00:00Z"),
    identify("i2", "cat", "2024-03-05T09:00:00Z"),
    track("m1", "ann", "Report Created", "2024-03-10T09:00:00Z", object_id="w2"),
    track("m2", "bob", "Workflow Approved", "2024-03-11T09:00:00Z", object_id="w2"),
    track("m3", "dan", "Page Viewed", "2024-03-15T09:00:00Z"),
    track("m4", "cat", "Report Created", "2024-03-20T09:00:00Z"),
    {"type": "track", "messageId": "q1", "event": "Orphan", "timestamp": "2024-01-01T09:00:00Z"},
    {"type": "track", "messageId": "q2", "event": "Orphan", "timestamp": "2024-03-30T09:00:00Z"},
]
# events_days 45, identify_days 60, quarantine_days 30 as of NOW: the cut-offs
ALL_RULES = RetentionSection(events_days=45, identify_days=60, quarantine_days=30)
EVENTS_CUTOFF = "2024-02-16"  # 2024-04-01 − 45 days
METRIC_NOTE = ("raw events before 2024-02-16 have expired under the retention policy; this "
               "metric is computed from the daily rollup, which keeps them")


@pytest.fixture
def ws(tmp_path):
    workspace = build(tmp_path, "retention", CSVS, EVENTS)
    store = workspace.store
    store.execute("UPDATE quarantine SET quarantined_at = ? WHERE message_id = 'q1'",
                  [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)])
    store.execute("UPDATE quarantine SET quarantined_at = ? WHERE message_id = 'q2'",
                  [dt.datetime(2024, 3, 30, tzinfo=dt.UTC)])
    for message_id in ("j1", "m1"):  # a corrected timestamp each: j1's expires, m1's stays
        store.execute("INSERT INTO ingest_warnings VALUES (?, 'timestamp in the future', "
                      "'2099-01-01', 'test', 'test', now(), now())", [message_id])
    yield workspace
    workspace.close()


def configured(ws: Workspace, retention: RetentionSection) -> Config:
    ws.config = ws.config.model_copy(update={"retention": retention})
    return ws.config


def apply(ws: Workspace, retention: RetentionSection, dry_run: bool = False) -> dict:
    return apply_retention(ws.store, configured(ws, retention), ws.root, ACTOR, dry_run=dry_run,
                           now=NOW)


def ids(ws: Workspace, table: str = "events") -> set[str]:
    return {r["message_id"] for r in ws.store.rows(f"SELECT message_id FROM {table}")}


def counts(ws: Workspace) -> dict[str, int]:
    return {name: ws.store.scalar(f"SELECT count(*) FROM {name}") for name in TABLES}


def table_rows(ws: Workspace, name: str, where: str = "TRUE") -> list[tuple]:
    return sorted((tuple(r.values()) for r in ws.store.rows(f"SELECT * FROM {name} WHERE {where}")),
                  key=repr)


def mau(ws: Workspace, as_of: str) -> dict[str, int]:
    frame = ws.metric("mau", level="account", as_of=as_of)
    return dict(zip(frame.account_id, frame.mau))


def retention_entries(ws: Workspace) -> list[dict]:
    return AuditLog(ws.root).entries(action="retention")


def test_the_fixture_is_as_described(ws) -> None:
    assert ids(ws) == {"j1", "j2", "j3", "j4", "j5", "i1", "i2", "f1", "m1", "m2", "m3", "m4"}
    assert ids(ws, "quarantine") == {"q1", "q2"}
    attributed = {r["message_id"]: r["account_id"] for r in ws.store.rows(
        "SELECT message_id, account_id FROM events WHERE type = 'track'")}
    assert {m for m, a in attributed.items() if a is None} == {"j4", "j5", "m3"}  # dan's


def test_each_rule_removes_exactly_its_expired_rows(ws) -> None:
    mau(ws, "2024-03-31")  # the rollup is built
    before = counts(ws)
    others = {name: table_rows(ws, name) for name in TABLES
              if name not in ("events", "ingest_warnings", "quarantine", "metrics_state")}
    result = apply(ws, ALL_RULES)
    # events_days: the active events before 02-16; identify_days (cut-off 02-01): i1
    assert ids(ws) == {"f1", "i2", "m1", "m2", "m3", "m4"}
    assert ids(ws, "ingest_warnings") == {"m1"}  # j1's warning went with it
    assert ids(ws, "quarantine") == {"q2"}  # cut-off 03-02
    assert [(r["rule"], r["table"], r["days"], r["cutoff"], r["rows"]) for r in result["rules"]] == [
        ("events_days", "events", 45, "2024-02-16T00:00:00Z", 5),
        ("identify_days", "events", 60, "2024-02-01T00:00:00Z", 1),
        ("quarantine_days", "quarantine", 30, "2024-03-02T00:00:00Z", 1),
    ]
    assert result["removed"] == {"events": 6, "ingest_warnings": 1, "quarantine": 1}
    assert before == {"events": 12, "ingest_warnings": 2, "quarantine": 2} | {
        k: v for k, v in before.items() if k not in ("events", "ingest_warnings", "quarantine")}
    assert result["kept"] == {"events": 6, "ingest_warnings": 1, "quarantine": 1}
    assert {k: v for k, v in counts(ws).items() if k in result["kept"]} == result["kept"]
    assert (result["dry_run"], result["rollup_horizon"], result["note"]) == (False, EVENTS_CUTOFF, None)
    assert result["ran_at"] == "2024-04-01T12:00:00Z"
    assert horizon(ws.store) == dt.date(2024, 2, 16)
    # everything else as it was: accounts, users, memberships, identities, the rollup, …
    assert {name: table_rows(ws, name) for name in others} == others


def test_a_rule_per_event_name_overrides_events_days(ws) -> None:
    retention = RetentionSection(events_days=10, event_days={"Report Created": 400, "Page Viewed": 45})
    result = apply(ws, retention)
    assert [(r["rule"], r["cutoff"][:10], r["rows"]) for r in result["rules"]] == [
        ("events_days", "2024-03-22", 2),  # j2, m2: neither Report Created nor Page Viewed
        ("event_days:Page Viewed", "2024-02-16", 2),  # j3, j4 (f1, m3 are later)
        ("event_days:Report Created", "2023-02-26", 0),  # 2024-04-01 − 400 days
    ]
    assert ids(ws) == {"j1", "j5", "m1", "m4", "f1", "m3", "i1", "i2"}
    assert result["rollup_horizon"] == "2024-03-22"  # the latest cut-off that removed events
    # the horizon never moves back: a later run with a longer rule keeps it
    later = apply(ws, RetentionSection(events_days=100))
    assert later["rollup_horizon"] == "2024-03-22" and horizon(ws.store) == dt.date(2024, 3, 22)


def test_identify_rule_alone_keeps_active_events_and_the_horizon(ws) -> None:
    result = apply(ws, RetentionSection(identify_days=30))  # cut-off 03-02: i1 only
    assert ids(ws) == {"j1", "j2", "j3", "j4", "j5", "f1", "i2", "m1", "m2", "m3", "m4"}
    assert result["removed"] == {"events": 1, "ingest_warnings": 0, "quarantine": 0}
    assert result["rollup_horizon"] is None and horizon(ws.store) is None


def test_a_dry_run_removes_nothing_and_counts_the_same(ws) -> None:
    before = counts(ws)
    plan = retention_plan(ws.store, configured(ws, ALL_RULES), now=NOW)
    dry = apply(ws, ALL_RULES, dry_run=True)
    assert counts(ws) == before and horizon(ws.store) is None
    assert len(retention_entries(ws)) == 1  # the dry run's; the plan records nothing
    applied = apply(ws, ALL_RULES)
    for key in ("rules", "removed", "kept", "rollup_horizon"):
        assert dry[key] == applied[key] == plan[key], key
    assert (dry["dry_run"], applied["dry_run"]) == (True, False)


def test_no_rules_says_so_and_is_recorded(ws) -> None:
    before = counts(ws)
    result = apply(ws, RetentionSection())
    assert (result["rules"], result["note"], result["rollup_horizon"]) == ([], NO_RULES, None)
    assert result["removed"] == {"events": 0, "ingest_warnings": 0, "quarantine": 0}
    assert result["kept"] == {k: before[k] for k in result["kept"]} and counts(ws) == before
    assert [e["details"]["note"] for e in retention_entries(ws)] == [NO_RULES]


def test_every_run_is_one_audit_entry(ws) -> None:
    apply(ws, ALL_RULES, dry_run=True)
    apply(ws, ALL_RULES)
    apply(ws, ALL_RULES)  # nothing left to remove: still a run
    entries = retention_entries(ws)
    assert [e["action"] for e in entries] == ["retention.dry_run", "retention.apply", "retention.apply"]
    assert [e["details"]["removed"]["events"] for e in entries] == [6, 6, 0]
    assert entries[1]["actor"] == "cli:test" and entries[1]["target"] == ""
    assert set(entries[1]["details"]) == {"rules", "removed", "rollup_horizon", "note"}
    assert [r["rule"] for r in entries[1]["details"]["rules"]] == [
        "events_days", "identify_days", "quarantine_days"]
    assert AuditLog(ws.root).verify()["ok"]


def test_rollup_metrics_outlive_the_raw_events_and_say_so(ws) -> None:
    """Never built before the run: retention builds the rollup before the events go."""
    result = apply(ws, ALL_RULES)
    assert result["removed"]["events"] == 6
    frozen_before = table_rows(ws, rollup.ROLLUP, f"day < DATE '{EVENTS_CUTOFF}'")
    assert len(frozen_before) == 5  # ann 01-10, bob 01-11, cat 01-12; dan's two, unattributed
    # MAU as of 01-31: acme ann and bob, globex cat — from the rollup, the events are gone
    assert mau(ws, "2024-01-31") == {"acme": 2, "globex": 1}
    assert mau(ws, "2024-03-31") == {"acme": 2, "globex": 1}  # (03-02, 03-31]: ann, bob; cat
    result_notes = ws.metric_result("mau", level="account", as_of="2024-01-31").notes
    assert METRIC_NOTE in result_notes
    table = ws.metrics_table_result(["mau", "wau"], level="account", as_of="2024-01-31")
    assert METRIC_NOTE.replace("this metric", "this metrics table") in table.notes


def test_frozen_days_survive_a_rebuild_and_keep_their_attribution(ws) -> None:
    """Page Viewed expires (horizon 02-16); dan's 01-16 Report Created stays raw. A CRM import
    makes dan a globex member: the rollup is rebuilt, his 03-15 event counts for globex from the
    horizon on, the frozen days keep what they had (his January event stays unattributed)."""
    as_of_january = mau(ws, "2024-01-31")
    assert as_of_january == {"acme": 2, "globex": 1}
    apply(ws, RetentionSection(event_days={"Page Viewed": 45}))
    frozen = table_rows(ws, rollup.ROLLUP, f"day < DATE '{EVENTS_CUTOFF}'")
    frozen_firsts = table_rows(ws, rollup.FIRSTS)
    (ws.root.parent / "dan.csv").write_text(DAN_JOINS_GLOBEX)
    ws.import_entities("memberships", ws.root.parent / "dan.csv")
    assert not rollup.is_fresh(ws.store)
    assert mau(ws, "2024-01-31") == as_of_january  # rebuilt: frozen days kept
    assert mau(ws, "2024-03-31") == {"acme": 2, "globex": 2}  # cat, and dan from 03-15
    assert rollup.is_fresh(ws.store)
    assert table_rows(ws, rollup.ROLLUP, f"day < DATE '{EVENTS_CUTOFF}'") == frozen
    assert ws.store.scalar("SELECT account_id FROM events WHERE message_id = 'j5'") == "globex"
    assert table_rows(ws, rollup.FIRSTS) == frozen_firsts  # acme 01-10, globex 01-12
    # from the horizon on, the rollup is what the events make it
    recomputed = """SELECT CAST(timestamp AS DATE), account_id, user_id, unit_id, role, name, product,
                           actor_kind, count(*), min(timestamp), max(timestamp)
                    FROM events WHERE type IN ('track', 'page', 'screen')
                      AND timestamp >= TIMESTAMPTZ '2024-02-16 00:00:00+00' GROUP BY ALL"""
    stored = [tuple(r.values()) for r in ws.store.rows(
        f"SELECT * FROM {rollup.ROLLUP} WHERE day >= DATE '{EVENTS_CUTOFF}'")]
    assert sorted(stored, key=repr) == sorted(
        (tuple(r.values()) for r in ws.store.rows(recomputed)), key=repr)
    rollup.rebuild(ws.store)  # rebuilt again: the same
    assert table_rows(ws, rollup.ROLLUP, f"day < DATE '{EVENTS_CUTOFF}'") == frozen


def test_raw_event_analyses_see_the_retained_events_and_say_so(ws) -> None:
    def editor_to_approver(frame) -> int:
        rows = frame[(frame.from_actor == "editor") & (frame.to_actor == "approver")]
        return int(rows.handoffs.sum())

    before = ws.analysis_result("handoffs", as_of=dt.date(2024, 3, 31))
    assert editor_to_approver(before.frame) == 2  # w1 (January) and w2 (March)
    assert not any("retention" in note for note in before.notes)
    apply(ws, ALL_RULES)
    after = ws.analysis_result("handoffs", as_of=dt.date(2024, 3, 31))
    assert editor_to_approver(after.frame) == 1  # w2 alone: w1's events have expired
    assert ("raw events before 2024-02-16 have expired under the retention policy; this "
            "analysis sees only events from 2024-02-16 on") in after.notes


def test_the_schedule_applies_the_rules_in_serve(ws) -> None:
    """Against the real clock: a rule that keeps the days from 2024-02-16 on."""
    keep = (dt.datetime.now(dt.UTC).date() - dt.date(2024, 2, 16)).days
    configured(ws, RetentionSection(events_days=keep))
    schedule = RetentionSchedule(SimpleNamespace(workspace=ws), interval_seconds=0.2,
                                 first_run_seconds=0.01)
    schedule.start()
    try:
        deadline = time.monotonic() + 30
        while schedule.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        schedule.stop()
    assert schedule.runs >= 1
    assert ids(ws) == {"f1", "i1", "i2", "m1", "m2", "m3", "m4"}
    entries = retention_entries(ws)
    assert len(entries) == schedule.runs
    assert {(e["actor"], e["action"]) for e in entries} == {("server:retention", "retention.apply")}
    assert entries[0]["details"]["removed"]["events"] == 5


def test_the_schedule_does_nothing_without_rules_or_interval(ws) -> None:
    idle = RetentionSchedule(SimpleNamespace(workspace=ws), interval_seconds=0.05,
                             first_run_seconds=0.01)
    idle.run_once()  # no rules set: no run, no entry
    assert idle.runs == 0 and retention_entries(ws) == []
    configured(ws, ALL_RULES)
    never = RetentionSchedule(SimpleNamespace(workspace=ws), interval_seconds=0)
    never.start()
    never.stop()
    assert not never.enabled and never.runs == 0


def cli(*args: str):
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # (a group, as accountlens's own app is)
        """accountlens"""

    return CliRunner().invoke(app, list(args))


def test_cli_dry_run_and_show(ws) -> None:
    root: Path = ws.root
    keep = (dt.datetime.now(dt.UTC).date() - dt.date(2024, 2, 16)).days
    ws.close()
    config = root / "accountlens.toml"
    config.write_text(config.read_text().replace("# events_days = 400", f"events_days = {keep}"))
    dry = cli("retention", "apply", "--dry-run", "--dir", str(root), "--format", "json")
    assert dry.exit_code == 0, dry.output
    rows = json.loads(dry.stdout)
    assert rows == [{"rule": "events_days", "table": "events", "days": keep,
                     "cutoff": "2024-02-16T00:00:00Z", "rows": 5}]
    shown = cli("retention", "show", "--dir", str(root))
    assert shown.exit_code == 0, shown.output
    assert "events_days" in shown.stdout and "rollup horizon once applied: 2024-02-16" in shown.stdout
    applied = cli("retention", "apply", "--dir", str(root), "--format", "csv")
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.splitlines()[1] == f"events_days,events,{keep},2024-02-16T00:00:00Z,5"
    reopened = Workspace.open(root)
    try:
        assert ids(reopened) == {"f1", "i1", "i2", "m1", "m2", "m3", "m4"}
        assert [e["action"] for e in retention_entries(reopened)] == [
            "retention.dry_run", "retention.apply"]
    finally:
        reopened.close()
