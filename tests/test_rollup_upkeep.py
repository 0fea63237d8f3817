"""The rollup and the tables kept with it (`account_firsts`, `account_user_firsts`,
`account_days`), kept current at load time, equal a rebuild from the events.

Real DuckDB workspaces; events go through the load pipeline (`import_events`), or are moved
between accounts in the events table and their day refreshed, as a re-attribution does.
"""

from __future__ import annotations

import json
import re

import ibis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accountlens.config import MetricsSection
from accountlens.model import rollup
from accountlens.store import catalog
from accountlens.workspace import Workspace
from tests.test_metrics_fixture import track

RECOMPUTED_FIRSTS = """
    SELECT account_id, min(CAST(timestamp AS DATE)) AS first_day, min(timestamp) AS first_at
    FROM events WHERE type IN ('track', 'page', 'screen') AND account_id IS NOT NULL GROUP BY 1"""
RECOMPUTED_USER_FIRSTS = """
    SELECT account_id, user_id, name, min(CAST(timestamp AS DATE)) AS first_day,
           min(timestamp) AS first_at
    FROM events WHERE type IN ('track', 'page', 'screen') AND account_id IS NOT NULL
      AND user_id IS NOT NULL AND actor_kind = 'human' GROUP BY ALL"""
RECOMPUTED_ACCOUNT_DAYS = """
    SELECT CAST(timestamp AS DATE) AS day, account_id, count(*) AS events,
           min(timestamp) AS first_at, max(timestamp) AS last_at,
           count(DISTINCT user_id) FILTER (WHERE actor_kind = 'human') AS users
    FROM events WHERE type IN ('track', 'page', 'screen') AND account_id IS NOT NULL GROUP BY ALL"""
ROLLUP_KEY = "day, account_id, user_id, unit_id, role, name, product, actor_kind"


def rows(ws: Workspace, sql: str) -> list[tuple]:
    return sorted((tuple(r.values()) for r in ws.store.arrow(sql).to_pylist()), key=repr)


def assert_current(ws: Workspace) -> None:
    assert rows(ws, f"SELECT * FROM {rollup.FIRSTS}") == rows(ws, RECOMPUTED_FIRSTS)
    assert (rows(ws, f"SELECT * FROM {rollup.USER_FIRSTS}")
            == rows(ws, RECOMPUTED_USER_FIRSTS))
    assert rows(ws, f"SELECT * FROM {rollup.ACCOUNT_DAYS}") == rows(ws, RECOMPUTED_ACCOUNT_DAYS)
    stored = f"SELECT {ROLLUP_KEY}, events, first_at, last_at FROM {rollup.ROLLUP}"
    again = """SELECT CAST(timestamp AS DATE), account_id, user_id, unit_id, role, name, product,
                       actor_kind, count(*), min(timestamp), max(timestamp)
                FROM events WHERE type IN ('track', 'page', 'screen') GROUP BY ALL"""
    assert rows(ws, stored) == rows(ws, again)
    source = rollup.invites_source(ws.store)
    if source is not None:  # the invites kept at load time equal reading them from the events
        columns = ", ".join(catalog.columns(rollup.INVITES))
        read = ibis.to_sql(rollup.invites_expression(rollup.table("events"), *source), dialect="duckdb")
        assert rows(ws, f"SELECT {columns} FROM {rollup.INVITES}") == rows(ws, read)


def load(ws: Workspace, folder, events: list[dict], n: int) -> None:
    path = folder / f"batch{n}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(path)


def test_firsts_follow_events_moved_to_another_account(tmp_path) -> None:
    ws = Workspace.init(tmp_path / "ws", name="upkeep")
    try:
        load(ws, tmp_path, [
            track("a1", "ann", "Report Created", "2024-03-01T09:00:00Z", account="acme"),
            track("a2", "ann", "Report Created", "2024-03-02T09:00:00Z", account="acme"),
            track("b1", "bob", "Report Created", "2024-03-02T08:00:00Z", account="globex"),
            track("c1", "cat", "Report Created", "2024-03-01T10:00:00Z", account="initech"),
        ], 1)
        rollup.rebuild(ws.store)
        assert_current(ws)
        # acme's first day moves to globex; initech loses its only events.
        with ws.store.transaction():
            ws.store.execute("UPDATE events SET account_id = 'globex' "
                             "WHERE message_id IN ('a1', 'c1')")
            rollup._refresh_days(ws.store, "SELECT DATE '2024-03-01' AS day")
        assert_current(ws)
        firsts = {r[0]: str(r[1]) for r in rows(ws, f"SELECT * FROM {rollup.FIRSTS}")}
        assert firsts == {"acme": "2024-03-02", "globex": "2024-03-01"}
        # A later batch: an earlier moment for acme, a new account.
        load(ws, tmp_path, [
            track("a0", "ann", "Report Created", "2024-02-28T09:00:00Z", account="acme"),
            track("d1", "dan", "Report Created", "2024-03-03T09:00:00Z", account="hooli"),
        ], 2)
        assert_current(ws)
    finally:
        ws.close()


USERS = ("ann", "bob", "cat")
ACCOUNTS = (None, "acme", "globex")
EVENT = st.tuples(st.sampled_from(USERS + (None,)), st.sampled_from(ACCOUNTS),
                  st.integers(1, 6), st.integers(0, 23), st.sampled_from(("track", "group")))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=st.lists(st.lists(EVENT, min_size=1, max_size=6), min_size=1, max_size=3))
def test_incremental_upkeep_equals_a_rebuild(tmp_path_factory, batches) -> None:
    """Random batches of tracks (with or without an account, some without a user: automation)
    and group calls (memberships that re-attribute a user's events), loaded one by one."""
    folder = tmp_path_factory.mktemp("upkeep")
    ws = Workspace.init(folder / "ws", name="upkeep")
    try:
        load(ws, folder, [track("seed", "ann", "Seen", "2024-03-01T00:00:00Z", account="acme")], 0)
        rollup.rebuild(ws.store, MetricsSection())  # as the first metric query does
        serial = 0
        for n, batch in enumerate(batches, start=1):
            events = []
            for user, account, day, hour, kind in batch:
                serial += 1
                ts = f"2024-03-{day:02d}T{hour:02d}:00:00Z"
                if kind == "group" and user and account:
                    events.append({"type": "group", "messageId": f"m{serial}", "userId": user,
                                   "groupId": account, "timestamp": ts})
                elif hour % 3 == 0:  # an invite, of a user's e-mail (or none)
                    email = {"invitee_email": f"{user or 'x'}@Acme.com"} if hour % 2 else {}
                    events.append(track(f"m{serial}", user, "User Invited", ts, account=account,
                                        **email))
                else:
                    events.append(track(f"m{serial}", user, "Report Created", ts, account=account))
            load(ws, folder, events, n)
            if rollup.is_fresh(ws.store):
                assert_current(ws)
    finally:
        ws.close()


def test_invites_follow_the_referral_settings(tmp_path) -> None:
    """Changing `metrics.referral_event` / `referral_email_property` rebuilds the stored
    invites on the next query; a read-only workspace with stale invites reads the events."""
    ws = Workspace.init(tmp_path / "ws", name="invites")
    try:
        load(ws, tmp_path, [
            track("i1", "ann", "User Invited", "2024-03-01T09:00:00Z", account="acme",
                  invitee_email="Bob@Globex.com", email="cat@acme.com"),
            track("i2", "ann", "Teammate Added", "2024-03-02T09:00:00Z", account="acme",
                  email="dan@hooli.com"),
            track("i3", "ann", "Teammate Added", "2024-03-03T09:00:00Z", account="acme",
                  email="eve@hooli.com"),
        ], 1)
        first = ws.metric("referrals", level="account")
        assert first[["account_id", "invites", "external"]].values.tolist() == [["acme", 1, 1]]
        assert rollup.invites_source(ws.store) == ("User Invited", "invitee_email")
        ws.config.metrics.referral_event, ws.config.metrics.referral_email_property = (
            "Teammate Added", "email")
        again = ws.metric("referrals", level="account")
        assert again[["account_id", "invites", "external"]].values.tolist() == [["acme", 2, 2]]
        assert rollup.invites_source(ws.store) == ("Teammate Added", "email")
        assert rows(ws, f"SELECT message_id, invitee_email FROM {rollup.INVITES}") == [
            ("i2", "dan@hooli.com"), ("i3", "eve@hooli.com")]
        ws.config.metrics.referral_email_property = "invitee_email"
        assert not rollup.is_fresh(ws.store, ws.config.metrics)
    finally:
        ws.close()
    # read-only: the stored invites (for `email`) are stale for these settings; events are read
    ro = Workspace.open(tmp_path / "ws", read_only=True)
    try:
        ro.config.metrics.referral_event = "User Invited"
        inline = ro.metric("referrals", level="account")
        assert inline[["account_id", "invites", "external"]].values.tolist() == [["acme", 1, 1]]
        assert rollup.invites_source(ro.store) == ("Teammate Added", "email")
    finally:
        ro.close()


def test_a_workspace_from_schema_1_gets_the_rollup_tables_anew(tmp_path) -> None:
    """Before schema 2 the tables kept with the rollup were made on first use, some in older
    shapes (no `account_user_firsts`; an `account_days` without its users column). Opening such
    a workspace read-only is refused (it needs the upgrade); opening it migrates: the tables are
    made anew in today's shape, and the first query fills them — the same numbers as before."""
    from accountlens.store.base import StoreError
    from accountlens.store.schema import MIGRATIONS, SCHEMA_VERSION
    from tests.test_metrics_fixture import AS_OF, build_fixture

    ws = build_fixture(tmp_path)
    names = ["activation", "time_to_value", "adoption_velocity", "stickiness", "active_accounts"]
    expected = ws.metrics_table(names, level="account", as_of=AS_OF)
    ws.store.execute(f"DROP TABLE {rollup.USER_FIRSTS}")
    ws.store.execute(f"ALTER TABLE {rollup.ACCOUNT_DAYS} DROP COLUMN users")
    # what the migrations after 2 made is gone too: the workspace is as schema 1 left it
    for _, statements in MIGRATIONS[2:]:
        for statement in statements:
            added = re.match(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+)", statement)
            if added:
                ws.store.execute(f"ALTER TABLE {added.group(1)} DROP COLUMN {added.group(2)}")
            made = re.match(r"\s*CREATE (?:TABLE|SEQUENCE) (\w+)", statement)
            if made:
                kind = "SEQUENCE" if "SEQUENCE" in statement.split("(")[0] else "TABLE"
                ws.store.execute(f"DROP {kind} IF EXISTS {made.group(1)}")
    ws.store.execute("DELETE FROM schema_version WHERE version >= 2")
    root = ws.root
    ws.close()
    with pytest.raises(StoreError, match="schema upgrade"):
        Workspace.open(root, read_only=True)
    with Workspace.open(root) as writable:
        assert writable.store.schema_version() == SCHEMA_VERSION
        assert not rollup.is_fresh(writable.store)
        assert writable.metrics_table(names, level="account", as_of=AS_OF).equals(expected)
        assert rollup.is_fresh(writable.store)
        assert_current(writable)
    assert expected["mean_dau"].sum() > 0


def test_a_load_of_most_of_history_rebuilds_the_rollup_once_instead_of_day_by_day(
        tmp_path, monkeypatch) -> None:
    """A load whose days hold most of a (large) rollup defers its refresh and rebuilds the
    rollup whole after its last batch; a load of a few days refreshes just those days. Either
    way the rollup equals a rebuild from the events afterwards."""
    monkeypatch.setattr(rollup, "DEFER_MIN_ROWS", 0)  # (the fixture's rollup is small)
    refreshed: list[tuple[int, str]] = []  # how many days each refresh recomputed or merged
    real = rollup._refresh_listed_days

    def counted(store, appended=None) -> None:
        days = store.scalar("SELECT count(*) FROM _rollup_days")
        if days:
            refreshed.append((days, "merged" if appended else "recomputed"))
        real(store, appended)

    monkeypatch.setattr(rollup, "_refresh_listed_days", counted)
    ws = Workspace.init(tmp_path / "ws", name="deferred")
    try:
        load(ws, tmp_path, [track(f"h{d}", "ann", "Report Created", f"2024-03-{d:02d}T09:00:00Z",
                                  account="acme") for d in range(1, 11)], 1)
        rollup.rebuild(ws.store)
        refreshed.clear()
        # history again for 8 of the 10 days (another user): deferred, then one rebuild of
        # every day (not a refresh of the 8)
        load(ws, tmp_path, [track(f"b{d}", "bob", "Report Shared", f"2024-03-{d:02d}T10:00:00Z",
                                  account="acme") for d in range(1, 9)], 2)
        assert refreshed == [(10, "recomputed")]
        assert rollup.is_fresh(ws.store)
        assert_current(ws)
        refreshed.clear()
        # a late event of one day: its rollup row merged into that day's, nothing rebuilt
        load(ws, tmp_path, [track("late", "cat", "Report Created", "2024-03-05T11:00:00Z",
                                  account="acme")], 3)
        assert refreshed == [(1, "merged")]
        assert_current(ws)
        refreshed.clear()
        # cat's group call moves her stored event of 5 March to globex: that day is recomputed
        # from its events; the days of the new events (the call's, 11 March) are merged
        load(ws, tmp_path, [
            {"type": "group", "messageId": "g1", "userId": "cat", "groupId": "globex",
             "timestamp": "2024-02-01T00:00:00Z"},
            track("new", "ann", "Report Created", "2024-03-11T09:00:00Z", account="acme")], 4)
        assert refreshed == [(1, "recomputed"), (2, "merged")]
        assert_current(ws)
    finally:
        ws.close()
