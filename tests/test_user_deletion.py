"""Deleting a person (docs/privacy.md): only their rows go, verified in DuckDB table by table;
the tables kept with the daily rollup equal a recomputation; the suppression list refuses their
events at import and from the collector's log; the audit entry has counts and no personal
data; Parquet exports are flagged and refused.

The workspace (hand-computed): ann, bob (acme) and dan (globex) from CSV; ann's device
`anon-ann` is tied to her by an identify call; eve (no CSV row) sends one event from ann's
device. ann's rows: 7 events (her own 6, of which a page sent anonymously from `anon-ann`, and
eve's event from `anon-ann`), 1 ingestion warning, 1 identity, 1 membership, her user row, 4
quarantined events (by userId, by anonymousId, by traits.email, by context.traits.email), her
invite. bob invites ann (his invite stays, without her e-mail).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from accountlens.governance.audit import AuditLog
from accountlens.governance.deletion import PersonNotFound
from accountlens.model import rollup
from accountlens.store import parquet
from accountlens.store.base import StoreError, open_parquet_engine
from accountlens.workspace import Workspace
from tests.small_workspace import build
from tests.test_rollup_upkeep import assert_current

CSVS = {
    "accounts": "account_id,name,domain\nacme,Acme,acme.com\nglobex,Globex,globex.com\n",
    "users": "user_id,email,name\nann,ann@acme.com,Ann\nbob,bob@acme.com,Bob\ndan,dan@globex.com,Dan\n",
    "memberships": ("user_id,account_id,unit_id,role,valid_from,valid_to\n"
                    "ann,acme,,editor,2024-01-01,\nbob,acme,,viewer,2024-01-01,\n"
                    "dan,globex,,admin,2024-01-01,\n"),
    # an experiment's exposures, imported with the person who saw the variant
    "exposures": ("account_id,experiment,variant,exposed_at,user_id\n"
                  "acme,pricing,A,2024-03-01T10:00:00Z,ann\nacme,pricing,A,2024-03-01T11:00:00Z,bob\n"),
}


def track(mid: str, ts: str, name: str | None = "Report Created", **fields) -> dict:
    event = {"type": "track", "messageId": mid, "timestamp": ts, **fields}
    if name is not None:
        event["event"] = name
    return event


EVENTS = [
    {"type": "page", "messageId": "p0", "anonymousId": "anon-ann", "name": "Home",
     "timestamp": "2024-03-01T08:00:00Z"},
    {"type": "identify", "messageId": "i1", "userId": "ann", "anonymousId": "anon-ann",
     "traits": {"email": "ann@acme.com"}, "timestamp": "2024-03-01T09:00:00Z"},
    track("a1", "2024-03-01T10:00:00Z", userId="ann"),
    track("a2", "2024-03-02T10:00:00Z", userId="ann"),
    track("a3", "2024-03-02T11:00:00Z", "User Invited", userId="ann",
          properties={"invitee_email": "zed@globex.com"}),
    # more than 23 h after it was received: stored at receivedAt, with an ingestion warning
    track("a4", "2024-03-10T00:00:00Z", userId="ann", receivedAt="2024-03-04T00:00:00Z"),
    track("b1", "2024-03-01T11:00:00Z", userId="bob"),
    track("b2", "2024-03-02T12:00:00Z", "User Invited", userId="bob",
          properties={"invitee_email": "Ann@Acme.com"}),
    track("e1", "2024-03-01T12:00:00Z", userId="eve", anonymousId="anon-ann",
          context={"groupId": "acme"}),
    track("e2", "2024-03-03T09:00:00Z", "Report Viewed", userId="eve", context={"groupId": "acme"}),
    track("d1", "2024-03-01T09:00:00Z", userId="dan"),
    track("d2", "2024-03-10T00:00:00Z", userId="dan", receivedAt="2024-03-04T00:00:00Z"),
    # quarantined
    track("qa1", "2024-03-01T10:00:00Z", None, userId="ann"),
    track("qa2", "2024-03-01T10:00:00Z", None, anonymousId="anon-ann"),
    {"type": "identify", "messageId": "qa3", "traits": {"email": "ANN@acme.com"},
     "timestamp": "2024-03-01T10:00:00Z"},
    track("qa4", "2024-03-01T10:00:00Z", context={"traits": {"email": "ann@acme.com"}}),
    track("qd1", "2024-03-01T10:00:00Z", None, userId="dan"),
]
ANNS = {"p0", "i1", "a1", "a2", "a3", "a4", "e1"}
REMOVED = {"events": 7, "ingest_warnings": 1, "identities": 1, "memberships": 1,
           "membership_states": 1, "users": 1,
           "quarantine": 4, "referral_invites": 1, "daily_activity": 6, "account_user_firsts": 4,
           "account_days": 1, "account_firsts": 0}
# rows rewritten: bob's invite loses ann's e-mail; the derived rows of the keys touched
CORRECTED = {"events": 1, "referral_invites": 1, "account_user_firsts": 0, "account_days": 2,
             "account_firsts": 1, "experiment_exposures": 1}
TABLES = ("events", "ingest_warnings", "identities", "memberships", "membership_states", "users",
          "quarantine", "accounts", "account_traits_history", "org_units", "subscriptions", "outcomes",
          "experiment_exposures",
          *(name for name in rollup.MATERIALIZED), "suppressed_users")


@pytest.fixture
def world(tmp_path: Path):
    ws = build(tmp_path, "deletion", CSVS, EVENTS)
    rollup.rebuild(ws.store, ws.config.metrics)  # as the first metric query does
    yield ws
    ws.close()


def counts(ws: Workspace) -> dict[str, int]:
    return {table: ws.store.scalar(f"SELECT count(*) FROM {table}") for table in TABLES}


def table_rows(ws: Workspace, sql: str) -> list[tuple]:
    return sorted((tuple(r.values()) for r in ws.store.arrow(sql).to_pylist()), key=repr)


def salted(ws: Workspace, value: str) -> str:
    salt = ws.store.scalar("SELECT value FROM workspace_secrets WHERE name = 'salt'")
    return hashlib.sha256((salt + value).encode()).hexdigest()


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_the_fixture_is_as_assumed(world: Workspace) -> None:
    got = {r["message_id"]: (r["user_id"], r["account_id"]) for r in
           world.store.rows("SELECT message_id, user_id, account_id FROM events")}
    assert got["p0"] == ("ann", "acme") and got["e1"] == ("eve", "acme")
    assert set(got) == ANNS | {"b1", "b2", "e2", "d1", "d2"}
    assert world.store.scalar("SELECT count(*) FROM quarantine") == 5
    assert world.store.scalar("SELECT count(*) FROM ingest_warnings") == 2
    day = world.store.rows("SELECT events, users FROM account_days "
                           "WHERE day = DATE '2024-03-01' AND account_id = 'acme'")
    assert day == [{"events": 4, "users": 3}]  # ann (2 events), bob, eve


def test_deleting_a_user_removes_their_rows_and_nothing_else(world: Workspace) -> None:
    before = counts(world)
    others_sql = ("SELECT * EXCLUDE (properties) FROM events WHERE message_id NOT IN "
                  "('p0', 'i1', 'a1', 'a2', 'a3', 'a4', 'e1')")
    others = table_rows(world, others_sql)
    kept_quarantine = table_rows(world, "SELECT * FROM quarantine WHERE message_id = 'qd1'")
    result = world.delete_user("ann")

    assert result["users"] == 1 and result["removed"] == REMOVED
    assert result["corrected"] == CORRECTED
    assert result["subject"] == salted(world, "ann")
    after = counts(world)
    for table, removed in REMOVED.items():
        assert after[table] == before[table] - removed, table
    untouched = set(TABLES) - set(REMOVED) - {"suppressed_users"}
    assert {t: after[t] for t in untouched} == {t: before[t] for t in untouched}
    # only the user's rows went: the others are as they were (bob's invite lost ann's e-mail)
    assert table_rows(world, others_sql) == others
    assert table_rows(world, "SELECT * FROM quarantine") == kept_quarantine
    assert world.store.scalar("SELECT properties FROM events WHERE message_id = 'b2'") == "{}"
    assert world.store.rows("SELECT user_id, invitee_email FROM referral_invites") == [
        {"user_id": "bob", "invitee_email": None}]
    # the account's exposure stays, without her
    assert table_rows(world, "SELECT account_id, user_id FROM experiment_exposures") == [
        ("acme", "bob"), ("acme", None)]
    assert not world.store.scalar("SELECT count(*) FROM users WHERE user_id = 'ann' "
                                  "OR lower(email) = 'ann@acme.com'")
    assert not world.store.scalar("SELECT count(*) FROM identities WHERE anonymous_id = 'anon-ann'")
    # suppression: her id, her anonymous id, her e-mail
    kinds = dict(table_rows(world, "SELECT subject_hash, kind FROM suppressed_users"))
    assert kinds[salted(world, "ann")] == "user_id"
    assert kinds[salted(world, "anon-ann")] == "anonymous_id"
    assert kinds[salted(world, "ann@acme.com")] == "email"
    assert result["suppressed"] == len(kinds) == 3
    # the derived tables equal a recomputation from the remaining events
    assert_current(world)
    days = {(str(r["day"]), r["account_id"]): (r["events"], r["users"])
            for r in world.store.rows("SELECT * FROM account_days")}
    assert days == {("2024-03-01", "acme"): (1, 1), ("2024-03-02", "acme"): (1, 1),
                    ("2024-03-03", "acme"): (1, 1), ("2024-03-01", "globex"): (1, 1),
                    ("2024-03-04", "globex"): (1, 1)}
    firsts = dict(table_rows(world, "SELECT account_id, strftime(first_at, '%H:%M') FROM account_firsts"))
    assert firsts == {"acme": "11:00", "globex": "09:00"}  # acme's first moment is now bob's


def test_corrections_keep_rollup_rows_whose_raw_events_expired(world: Workspace) -> None:
    """Retention may have removed other people's raw events while the rollup keeps them: the
    deletion corrects the rollup in place, it does not rebuild it from what is left."""
    with world.store.transaction():  # bob's raw events expired
        world.store.execute("DELETE FROM events WHERE user_id = 'bob'")
    world.delete_user("ann")
    assert world.store.rows(
        "SELECT day, events, users FROM account_days WHERE account_id = 'acme' ORDER BY day"
    )[:2] == [{"day": dt.date(2024, 3, 1), "events": 1, "users": 1},
              {"day": dt.date(2024, 3, 2), "events": 1, "users": 1}]
    assert world.store.scalar("SELECT count(*) FROM daily_activity WHERE user_id = 'bob'") == 2
    assert world.store.scalar(
        "SELECT count(*) FROM account_user_firsts WHERE user_id = 'bob'") == 2


def test_the_audit_entry_has_counts_and_no_personal_data(world: Workspace) -> None:
    result = world.delete_user(email="ANN@acme.com")
    entry = AuditLog(world.root).entries(action="user.delete")[-1]
    assert entry["target"] == result["subject"] == salted(world, "ann@acme.com")
    assert entry["details"]["removed"] == REMOVED
    assert entry["details"]["suppressed"] == 3 and entry["details"]["parquet_flagged"] is False
    text = (world.root / "audit.jsonl").read_text()
    for personal in ('"ann"', "ann@acme.com", "ANN@acme.com", "anon-ann", "zed@globex.com"):
        assert personal not in text
    assert AuditLog(world.root).verify()["ok"]


def test_by_email_every_user_with_that_address_goes(tmp_path: Path) -> None:
    csvs = dict(CSVS, users=CSVS["users"] + "ann2,ANN@Acme.com,Ann again\n")
    with build(tmp_path, "email", csvs, EVENTS) as ws:
        result = ws.delete_user(email="Ann@ACME.com")
        assert result["users"] == 2
        assert sorted(r["user_id"] for r in ws.store.rows("SELECT user_id FROM users")) == \
            ["bob", "dan", "eve"]


def test_an_unknown_user_is_a_clear_error_and_changes_nothing(world: Workspace) -> None:
    before = counts(world)
    with pytest.raises(PersonNotFound, match="no user 'nobody' in this workspace"):
        world.delete_user("nobody")
    with pytest.raises(LookupError, match="no user with the e-mail address 'x@y.z'"):
        world.delete_user(email="x@y.z")
    with pytest.raises(ValueError, match="either a user id or an e-mail"):
        world.delete_user()
    assert counts(world) == before
    assert not AuditLog(world.root).entries(action="user.delete")


def test_reingesting_a_deleted_users_events_is_refused_and_counted(world: Workspace,
                                                                   tmp_path: Path) -> None:
    world.delete_user("ann")
    before = counts(world)
    again = world.import_events(write_jsonl(tmp_path / "again.jsonl", EVENTS))
    # ann's 7 events and 4 quarantined ones: refused; the others are duplicates (qd1: quarantine)
    assert (again.received, again.suppressed, again.inserted, again.duplicates,
            again.quarantined) == (17, 11, 0, 5, 1)
    new = [
        track("n1", "2024-03-05T10:00:00Z", userId="ann"),
        track("n2", "2024-03-05T10:00:00Z", anonymousId="anon-ann"),
        {"type": "identify", "messageId": "n3", "userId": "ann-new",
         "traits": {"email": "ANN@ACME.COM"}, "timestamp": "2024-03-05T10:00:00Z"},
        {"type": "alias", "messageId": "n4", "previousId": "anon-ann", "userId": "someone",
         "timestamp": "2024-03-05T10:00:00Z"},
        track("n5", "2024-03-05T10:00:00Z", None, userId="ann"),  # invalid, not quarantined
        track("n6", "2024-03-05T10:00:00Z", userId="bob"),
        track("n7", "2024-03-05T10:00:00Z", userId="frank", context={"groupId": "acme"}),
        track("n8", "2024-03-05T10:00:00Z", userId="ann-again", traits={"plan": "pro"},
              context={"traits": {"email": "ann@acme.com"}}),
    ]
    result = world.import_events(write_jsonl(tmp_path / "new.jsonl", new))
    assert (result.suppressed, result.inserted, result.quarantined) == (6, 2, 0)
    after = counts(world)
    assert after["events"] == before["events"] + 2 and after["quarantine"] == before["quarantine"]
    assert {r["message_id"] for r in world.store.rows(
        "SELECT message_id FROM events WHERE message_id LIKE 'n%'")} == {"n6", "n7"}
    assert not world.store.scalar("SELECT count(*) FROM users WHERE user_id IN ('ann', 'ann-new')")
    assert_current(world)

    # the collector's log: the same refusal at load
    event_log = world.open_log()
    lines = [track("l1", "2024-03-06T10:00:00Z", userId="ann"),
             track("l2", "2024-03-06T10:00:00Z", userId="ann", anonymousId="anon-ann"),
             track("l3", "2024-03-06T10:00:00Z", userId="dan")]
    event_log.append(b"".join(json.dumps(e).encode() + b"\n" for e in lines)).result()
    event_log.close()
    loaded = world.load_log()
    assert (loaded.suppressed, loaded.inserted) == (2, 1)
    assert world.store.scalar("SELECT count(*) FROM events WHERE message_id LIKE 'l%'") == 1


def test_events_acknowledged_but_not_loaded_are_deleted_too(world: Workspace) -> None:
    """`Workspace.delete_user` loads the durable log first, so events the collector
    acknowledged before the request are deleted with the rest."""
    event_log = world.open_log()
    lines = [track("w1", "2024-03-06T10:00:00Z", userId="ann"),
             track("w2", "2024-03-06T10:00:00Z", userId="bob")]
    event_log.append(b"".join(json.dumps(e).encode() + b"\n" for e in lines)).result()
    event_log.close()
    result = world.delete_user("ann")
    assert result["removed"]["events"] == REMOVED["events"] + 1
    assert [r["message_id"] for r in world.store.rows(
        "SELECT message_id FROM events WHERE message_id LIKE 'w%'")] == ["w2"]
    assert world.status()["unloaded_log_bytes"] == 0


def test_parquet_exports_are_flagged_and_refused_until_written_again(world: Workspace,
                                                                     tmp_path: Path) -> None:
    configured = world.root / world.config.spark.parquet_dir
    lake = tmp_path / "lake"
    world.export_parquet(configured)
    world.export_parquet(lake)  # recorded in the audit log, so found too
    result = world.delete_user("ann")
    assert result["parquet_flagged"] is True
    for folder in (configured, lake):
        manifest = json.loads((folder / parquet.MANIFEST).read_text())
        assert manifest[parquet.STALE]["people_deleted"] == 1
        assert set(manifest[parquet.STALE]) == {"reason", "flagged_at", "people_deleted"}
        assert "ann" not in json.dumps(manifest[parquet.STALE])
        with pytest.raises(StoreError, match="contains data of deleted people.*--overwrite"):
            parquet.read_manifest(folder)
        # the Spark store checks the manifest before it starts a JVM
        with pytest.raises(StoreError, match="contains data of deleted people"):
            open_parquet_engine("spark", folder)
    world.delete_user("bob")  # a second deletion adds to the count
    assert json.loads((lake / parquet.MANIFEST).read_text())[parquet.STALE]["people_deleted"] == 2
    world.export_parquet(lake, overwrite=True)
    assert parquet.STALE not in parquet.read_manifest(lake)


def test_cli_users_delete(world: Workspace) -> None:
    from accountlens.cli import users_cmd

    app = typer.Typer()
    users_cmd.register(app)
    app.command("noop")(lambda: None)  # a group of one command would be the app itself
    root = str(world.root)
    world.close()
    runner = CliRunner()
    refused = runner.invoke(app, ["users", "delete", "ann", "--dir", root], input="n\n")
    assert refused.exit_code == 1 and "nothing was deleted" in refused.output
    unknown = runner.invoke(app, ["users", "delete", "nobody", "--dir", root, "--yes"])
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.output
    both = runner.invoke(app, ["users", "delete", "ann", "--email", "a@b.c", "--dir", root])
    assert both.exit_code == 1
    done = runner.invoke(app, ["users", "delete", "--email", "ann@acme.com", "--dir", root,
                               "--yes", "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)[0]["removed"] == REMOVED
    table = runner.invoke(app, ["users", "delete", "bob", "--dir", root], input="y\n")
    assert table.exit_code == 0 and "daily_activity" in table.output
    with Workspace.open(root) as ws:
        assert ws.store.scalar("SELECT count(*) FROM users WHERE user_id IN ('ann', 'bob')") == 0


def test_deleting_while_served_goes_through_the_server(world: Workspace, server_factory) -> None:
    """With `accountlens serve` holding the store, `accountlens users delete` asks the server
    (`POST /api/v1/admin/users/delete`), which loads what it acknowledged first; events of the
    person sent afterwards are refused at load and counted."""
    import httpx

    from accountlens.cli import users_cmd

    root = world.root
    world.close()
    server = server_factory(root)
    send = [track("s1", "2024-03-06T10:00:00Z", userId="ann"),
            track("s2", "2024-03-06T10:00:00Z", userId="dan")]
    answer = httpx.post(server.ingest_url + "/v1/batch", auth=(server.write_key, ""),
                        json={"batch": send}, timeout=10)
    assert answer.status_code == 200  # acknowledged: in the log, perhaps not loaded yet
    app = typer.Typer()
    users_cmd.register(app)
    app.command("noop")(lambda: None)
    done = CliRunner().invoke(app, ["users", "delete", "ann", "--dir", str(root), "--yes",
                                    "--format", "json"])
    assert done.exit_code == 0, done.output
    assert "deleting through the server" in done.output
    printed = done.output[done.output.index("["):]  # (after the note on stderr)
    assert json.loads(printed)[0]["removed"]["events"] == REMOVED["events"] + 1
    answer = httpx.post(server.ingest_url + "/v1/batch", auth=(server.write_key, ""),
                        json={"batch": [track("s3", "2024-03-07T10:00:00Z", userId="ann")]},
                        timeout=10)
    assert answer.status_code == 200
    assert server.flush()["suppressed"] == 1
    server.stop()
    with Workspace.open(root) as ws:
        assert {r["message_id"] for r in ws.store.rows(
            "SELECT message_id FROM events WHERE message_id LIKE 's%'")} == {"s2"}
        assert AuditLog(root).entries(action="user.delete")[-1]["actor"] == "local-admin"


def test_a_user_known_only_from_quarantine_can_be_deleted(world: Workspace, tmp_path: Path) -> None:
    world.import_events(write_jsonl(tmp_path / "ghost.jsonl", [
        track("g1", "2024-03-01T10:00:00Z", None, userId="ghost")]))
    result = world.delete_user("ghost")
    assert result["removed"]["quarantine"] == 1 and result["removed"]["users"] == 0
    assert world.store.scalar("SELECT count(*) FROM quarantine WHERE message_id = 'g1'") == 0
