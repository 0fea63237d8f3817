"""The daily activity rollup that metrics read instead of raw events, and its incremental upkeep.

One row per (day, account, user, unit, role, event name, product, actor kind) of active events
(track/page/screen) with the count and first/last timestamps. The load pipeline refreshes the
days a batch touched (new events and events re-attributed in the same load); CRM imports that
re-attribute history mark the rollup stale and the next metric query rebuilds it.

Beside it, `account_firsts` keeps each account's first active moment (and its day), kept current
with the rollup: every metric needs the accounts known on its day, and reading that from 5,000
rows instead of the whole rollup saves a scan per query. `account_user_firsts` keeps each
(account, user, event name)'s first human moment: activation, time-to-value and adoption
velocity ask when users first did something in an account, and read those (~5× fewer rows than
the rollup on the benchmark's data) instead of grouping the whole rollup. `account_days` keeps
each account's active events per day (count, first and last moment, and how many human users
acted) for what asks only whether and when an account was active (the funnel's any-event
stages, account retention cohorts) or how many users it had each day (stickiness's mean DAU at
account level): one row per account and day instead of one per user, event name and so on.
`referral_invites` keeps the invite events (`metrics.referral_event`) with the invitee's e-mail read out of their
JSON properties (`metrics.referral_email_property`) — reading those properties was half of
`referrals`. It is built for the settings recorded in `referral_invites_source` and rebuilt
when they change.

Retention (docs/retention.md) removes raw events; the rollup keeps them. Days before the
retention horizon (model/retention_horizon.py: the first day whose raw active events are all
kept) are frozen: neither a rebuild nor a day refresh deletes or recomputes the rows of these
tables there, since the events they were made of may be gone. So a later CRM import that
re-attributes history changes the days from the horizon on, not the frozen days, whose rows
keep the attribution they had; neither a change of the referral settings nor events loaded
late, dated before the horizon, reach them.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from accountlens.model.entities import ACTIVE_EVENT_TYPES, REATTRIBUTING
from accountlens.model.retention_horizon import horizon
from accountlens.store.base import Store, WritableStore
from accountlens.store.catalog import (
    ACCOUNT_DAYS,
    FIRSTS,
    INVITES,
    INVITES_SOURCE,
    ROLLUP,
    STATE,
    TS,
    USER_FIRSTS,
    columns,
    table,
)

if TYPE_CHECKING:  # ibis is imported lazily: the load pipeline must stay light
    import ibis.expr.types as ir


def rollup_expression(events: ir.Table) -> ir.Table:
    """The rollup as an expression over raw events (materialized, or inline when read-only)."""
    active = events.filter(events.type.isin(ACTIVE_EVENT_TYPES))
    return active.group_by(
        day=active.timestamp.date(), account_id=active.account_id, user_id=active.user_id,
        unit_id=active.unit_id, role=active.role, name=active.name, product=active.product,
        actor_kind=active.actor_kind,
    ).aggregate(
        events=active.count(), first_at=active.timestamp.min(), last_at=active.timestamp.max()
    )


# what the materialized path reads
MATERIALIZED = (ROLLUP, FIRSTS, USER_FIRSTS, ACCOUNT_DAYS, INVITES, INVITES_SOURCE)


def invites_expression(events: ir.Table, event: str, email_property: str) -> ir.Table:
    """Invite events with the invitee's e-mail (lower case), as stored in `referral_invites`."""
    rows = events.filter(events.type == "track", events.name == event)
    return rows.select(day=rows.timestamp.date(), message_id=rows.message_id,
                       account_id=rows.account_id, user_id=rows.user_id, unit_id=rows.unit_id,
                       role=rows.role, timestamp=rows.timestamp, actor_kind=rows.actor_kind,
                       invitee_email=rows.properties[email_property].str.lower())


def invites_source(store: Store) -> tuple[str, str] | None:
    """(referral event, e-mail property) `referral_invites` was built for, if it was."""
    if not store.has_table(INVITES_SOURCE):
        return None
    rows = store.arrow(f"SELECT event, property FROM {INVITES_SOURCE}").to_pylist()
    return (rows[0]["event"], rows[0]["property"]) if rows else None


def _attributed(activity: ir.Table) -> ir.Table:
    return activity.filter(activity.account_id.notnull())


def _human_attributed(activity: ir.Table) -> ir.Table:
    return activity.filter(activity.account_id.notnull(), activity.user_id.notnull(),
                           activity.actor_kind == "human")


def firsts_expression(activity: ir.Table) -> ir.Table:
    """`account_firsts` as an expression over rollup rows (materialized, or inline)."""
    attributed = _attributed(activity)
    return attributed.group_by("account_id").aggregate(first_day=attributed.day.min(),
                                                       first_at=attributed.first_at.min())


def user_firsts_expression(activity: ir.Table) -> ir.Table:
    """`account_user_firsts` as an expression over rollup rows (materialized, or inline)."""
    human = _human_attributed(activity)
    return human.group_by("account_id", "user_id", "name").aggregate(
        first_day=human.day.min(), first_at=human.first_at.min())


def account_days_expression(activity: ir.Table) -> ir.Table:
    """`account_days` as an expression over rollup rows (materialized, or inline)."""
    attributed = _attributed(activity)
    return attributed.group_by("day", "account_id").aggregate(
        events=attributed.events.sum(), first_at=attributed.first_at.min(),
        last_at=attributed.last_at.max(),
        users=attributed.user_id.nunique(where=attributed.actor_kind == "human"))


def derived(name: str, activity: ir.Table, inline: bool) -> ir.Table:
    """A table kept with the rollup (`account_firsts`, `account_user_firsts`, `account_days`):
    the stored one, or (`inline`) its expression over the rollup rows `activity`."""
    if not inline:
        return table(name)
    return {FIRSTS: firsts_expression, USER_FIRSTS: user_firsts_expression,
            ACCOUNT_DAYS: account_days_expression}[name](activity)


def _events_from(day: dt.date) -> ir.Table:
    """The raw events of `day` and later."""
    import ibis

    events = table("events")
    return events if day == _NO_HORIZON else events.filter(events.timestamp >= ibis.date(day).cast(TS))


def _reattribution_mark(store: Store) -> int:
    return int(store.scalar(
        "SELECT coalesce(max(import_id), 0) FROM imports WHERE list_contains(?, kind)",
        [list(REATTRIBUTING)],
    ) or 0)


def _list_days(store: WritableStore, days_sql: str, params: list | None = None) -> None:
    """`_rollup_days`: the distinct days `days_sql` (a one-column `day` query) lists, but for
    the frozen days before the retention horizon."""
    store.execute("SET TimeZone = 'UTC'")
    store.execute(f"CREATE OR REPLACE TEMP TABLE _rollup_days AS SELECT DISTINCT day FROM ({days_sql}) "
                  "WHERE day >= ?", [*(params or []), horizon(store) or _NO_HORIZON])


def _refresh_days(store: WritableStore, days_sql: str, params: list | None = None) -> None:
    """Recompute the rollup rows of the days listed by `days_sql` (a one-column `day` query)."""
    _list_days(store, days_sql, params)
    _refresh_listed_days(store)


def _refresh_listed_days(store: WritableStore, appended: str | None = None) -> None:
    """Recompute the rollup rows of the days in `_rollup_days`, and drop that table.

    `appended`: a table of the `message_id` and `timestamp` of events a load added to those
    days, the only change they had since their rollup rows were current. Their rows are then
    merged into the stored ones (counts added, first and last moments extended) rather than
    recomputed from every event of the day: a live load costs what it adds, not what the day
    already holds (at a steady 10,000 events/s, each load of the day's last second re-read the
    whole day's events)."""
    if not store.scalar("SELECT count(*) FROM _rollup_days"):
        store.execute("DROP TABLE _rollup_days")
        return
    import ibis

    events = table("events")
    if appended is None:
        bounds = store.arrow("SELECT min(day) AS lo, max(day) AS hi FROM _rollup_days").to_pylist()[0]
        scoped = events.filter(
            events.timestamp >= ibis.date(bounds["lo"]).cast(TS),
            events.timestamp < (ibis.date(bounds["hi"]) + ibis.interval(days=1)).cast(TS),
        )
        _replace_days(store, ROLLUP, rollup_expression(scoped))
    else:
        # the appended events only (their time range first: the events are read by zone maps)
        bounds = store.arrow(f"SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM {appended}"
                             ).to_pylist()[0]
        scoped = events.filter(events.timestamp >= ibis.literal(bounds["lo"]).cast(TS),
                               events.timestamp <= ibis.literal(bounds["hi"]).cast(TS))
        scoped = scoped.semi_join(ibis.table({"message_id": "string"}, name=appended), "message_id")
        _merge_days(store, rollup_expression(scoped))
    for name, keys, counted in _FIRSTS_OF:
        _refresh_firsts(store, name, keys, counted)
    # from the rollup rows of the refreshed days' range only: over every row (and the days
    # kept afterwards) this took 5-6 s per load at 10M stored events
    activity = table(ROLLUP)
    activity = activity.filter(activity.day >= ibis.date(bounds["lo"]),
                               activity.day <= ibis.date(bounds["hi"]))
    _replace_days(store, ACCOUNT_DAYS, account_days_expression(activity))
    source = invites_source(store)
    if source is not None and appended is None:
        _replace_days(store, INVITES, invites_expression(scoped, *source))
    elif source is not None:
        _insert(store, INVITES, invites_expression(scoped, *source), _IN_DAYS)
    store.execute("DROP TABLE _rollup_days")


_ROLLUP_KEY = ("day", "account_id", "user_id", "unit_id", "role", "name", "product", "actor_kind")


def _merge_days(store: WritableStore, rows: ir.Table) -> None:
    """Add the rollup `rows` of appended events (days in `_rollup_days`) to the stored rows:
    a row with the same key gains their count and widens its first and last moments; a new
    key is inserted."""
    import ibis

    same = " AND ".join(f"d.{c} IS NOT DISTINCT FROM n.{c}" for c in _ROLLUP_KEY)
    store.execute(f"CREATE OR REPLACE TEMP TABLE _rollup_new AS SELECT * FROM "
                  f"({ibis.to_sql(rows, dialect='duckdb')}) r WHERE {_IN_DAYS}")
    store.execute(f"""UPDATE {ROLLUP} d SET events = d.events + n.events,
                          first_at = least(d.first_at, n.first_at), last_at = greatest(d.last_at, n.last_at)
                      FROM _rollup_new n WHERE {same}""")
    names = ", ".join(columns(ROLLUP))
    store.execute(f"""INSERT INTO {ROLLUP} ({names}) SELECT {names} FROM _rollup_new n
                      WHERE NOT EXISTS (SELECT 1 FROM {ROLLUP} d WHERE {same})""")
    store.execute("DROP TABLE _rollup_new")


_IN_DAYS = "day IN (SELECT day FROM _rollup_days)"
_NO_HORIZON = dt.date.min  # every day can be recomputed


def _insert(store: WritableStore, name: str, rows: ir.Table, where: str = "TRUE") -> None:
    """Add the `rows` (an expression with the table's columns) matching `where` to `name`."""
    import ibis

    names = ", ".join(columns(name))
    store.execute(f"INSERT INTO {name} ({names}) SELECT {names} "
                  f"FROM ({ibis.to_sql(rows, dialect='duckdb')}) r WHERE {where}")


def _replace_days(store: WritableStore, name: str, rows: ir.Table) -> None:
    """Replace the rows of the days in `_rollup_days` of the table `name` by those of `rows`."""
    store.execute(f"DELETE FROM {name} WHERE {_IN_DAYS}")
    _insert(store, name, rows, _IN_DAYS)


# (table, key columns, the rollup rows that count) of the first-moment tables kept with the rollup
_FIRSTS_OF = (
    (FIRSTS, ("account_id",), _attributed),
    (USER_FIRSTS, ("account_id", "user_id", "name"), _human_attributed),
)


def _refresh_firsts(store: WritableStore, name: str, keys: tuple[str, ...], counted) -> None:
    """Bring a first-moment table (`account_firsts`, `account_user_firsts`) up to date after the
    rollup rows of `_rollup_days` were replaced.

    Rows of other days are unchanged, and no key has rows before its stored first day. So a key
    whose first day was not refreshed keeps it unless the refreshed days hold an earlier moment;
    one whose first day was refreshed (its rows there may have moved to another account) is
    looked up again from that day on; a new key takes its refreshed rows' first. `counted`
    keeps the rollup rows the table is made of (as its expression does).
    """
    import ibis

    rows = ibis.to_sql(counted(table(ROLLUP)), dialect="duckdb")
    k = ", ".join(keys)
    on = " AND ".join(f"t.{c} = f.{c}" for c in keys)
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE _firsts AS
        WITH refreshed AS (
            SELECT {k}, min(day) AS first_day, min(first_at) AS first_at FROM ({rows}) r
            WHERE {_IN_DAYS} GROUP BY ALL),
        lost AS (SELECT {k}, first_day FROM {name} WHERE first_day IN (SELECT day FROM _rollup_days)),
        relooked AS (
            SELECT {k}, min(r.day) AS first_day, min(r.first_at) AS first_at
            FROM ({rows}) r JOIN lost l USING ({k})
            WHERE r.day >= l.first_day
              AND r.day >= (SELECT coalesce(min(first_day), DATE '9999-12-31') FROM lost)
            GROUP BY ALL),
        kept AS (SELECT {k}, first_day, first_at FROM {name}
                 SEMI JOIN refreshed USING ({k}) ANTI JOIN lost USING ({k}))
        SELECT {k}, min(first_day) AS first_day, min(first_at) AS first_at
        FROM (SELECT * FROM refreshed UNION ALL BY NAME SELECT * FROM relooked
              UNION ALL BY NAME SELECT * FROM kept)
        GROUP BY ALL""")
    store.execute(f"""DELETE FROM {name} t WHERE first_day IN (SELECT day FROM _rollup_days)
                      OR EXISTS (SELECT 1 FROM _firsts f WHERE {on})""")
    store.execute(f"INSERT INTO {name} ({k}, first_day, first_at) "
                  f"SELECT {k}, first_day, first_at FROM _firsts")
    store.execute("DROP TABLE _firsts")


def rebuild(store: WritableStore, settings=None) -> None:
    """Recompute the whole rollup (first use, or after CRM imports re-attributed history), and
    the invites for `settings` (a MetricsSection; else for the settings recorded, if any);
    from the retention horizon on (the frozen days before it are kept as they are)."""
    with store.transaction():
        if settings is not None:
            _record_invites_source(store, settings)
        since = horizon(store) or _NO_HORIZON
        for name in MATERIALIZED:
            if name != INVITES_SOURCE:  # (the settings the invites are built for)
                # a first-moment table keeps the keys first seen on a frozen day (their first
                # stays there); the refresh below finds the others' first from the horizon on
                day = "first_day" if name in (FIRSTS, USER_FIRSTS) else "day"
                store.execute(f"DELETE FROM {name} WHERE {day} >= ?", [since])
        _refresh_days(store, "SELECT CAST(timestamp AS DATE) AS day FROM events")
        store.execute(
            f"INSERT OR REPLACE INTO {STATE} VALUES ('reattribution_mark', ?)",
            [_reattribution_mark(store)],
        )
        store.execute(f"DELETE FROM {STATE} WHERE key = '{_DEFERRED}'")


def _record_invites_source(store: WritableStore, settings) -> None:
    store.execute(f"DELETE FROM {INVITES_SOURCE}")
    store.execute(f"INSERT INTO {INVITES_SOURCE} VALUES (?, ?)",
                  [settings.referral_event, settings.referral_email_property])


def _invites_current(store: Store, settings) -> bool:
    return settings is None or invites_source(store) == (settings.referral_event,
                                                         settings.referral_email_property)


def _rollup_fresh(store: Store) -> bool:
    if not isinstance(store, WritableStore):  # a Parquet export: made current when it was written
        return all(store.has_table(name) for name in MATERIALIZED)
    mark = store.scalar(f"SELECT value FROM {STATE} WHERE key = 'reattribution_mark'")
    return mark is not None and int(mark) >= _reattribution_mark(store)


def is_fresh(store: Store, settings=None) -> bool:
    """Whether queries can read the materialized tables: the rollup is current and the invites
    were built for `settings` (a MetricsSection; None: any)."""
    return _rollup_fresh(store) and _invites_current(store, settings)


def ensure_fresh(store: Store, read_only: bool = False, settings=None) -> bool:
    """Make the materialized tables current (the invites for `settings`, when given); False
    when they cannot be (read-only: query inline)."""
    store = getattr(store, "base", store)  # a book-scoped store reads its base's tables
    if is_fresh(store, settings):
        return True
    if read_only or not isinstance(store, WritableStore):
        return False
    if _rollup_fresh(store):  # only the referral settings changed: rebuild the invites alone
        with store.transaction():
            _record_invites_source(store, settings)
            since = horizon(store) or _NO_HORIZON  # (frozen before it)
            store.execute(f"DELETE FROM {INVITES} WHERE day >= ?", [since])
            store.execute("SET TimeZone = 'UTC'")
            _insert(store, INVITES, invites_expression(
                _events_from(since), settings.referral_event, settings.referral_email_property))
        return True
    rebuild(store, settings)
    return True


# A load whose days hold more than this share of a large rollup (a backfill of history) does not
# refresh them one by one: day by day, deleting and recomputing rollup rows costs several times
# what a rebuild does per row (10M events: a month, a sixth of the rollup, 14 s; every day
# 33.6 s; a rebuild 24.6 s), and a backfill comes in many batches. It marks the rollup for one
# rebuild after the load's last batch instead (`rebuild_deferred`).
DEFER_SHARE = 0.25
DEFER_MIN_ROWS = 1_000_000
_DEFERRED = "deferred_refresh"


def refresh_after_load(store: WritableStore, reattributed: str, appended: str) -> None:
    """After a load: recompute from their events the days of the stored events it attributed
    again (`reattributed`, a table with a `timestamp` column, from model/attribution.py).
    `appended`: the load's new events (`message_id`, `timestamp`), whose days, if nothing else
    changed in them, get the new events' rows merged into their stored rows instead."""
    if not _rollup_fresh(store):
        return  # built whole on the next metric query (or after this load): nothing to keep current
    recompute = f"SELECT CAST(timestamp AS DATE) AS day FROM {reattributed}"
    _list_days(store, f"{recompute} UNION SELECT CAST(timestamp AS DATE) FROM {appended}")
    total = store.scalar(f"SELECT count(*) FROM {ROLLUP}")
    if total >= DEFER_MIN_ROWS and store.scalar(
            f"SELECT count(*) FROM {ROLLUP} WHERE {_IN_DAYS}") > DEFER_SHARE * total:
        store.execute("DROP TABLE _rollup_days")
        store.execute(f"DELETE FROM {STATE} WHERE key = 'reattribution_mark'")  # not fresh
        store.execute(f"INSERT OR REPLACE INTO {STATE} VALUES ('{_DEFERRED}', 1)")
        return
    store.execute(f"""CREATE OR REPLACE TEMP TABLE _rollup_merge_days AS
                      SELECT day FROM _rollup_days EXCEPT SELECT day FROM ({recompute})""")
    _list_days(store, recompute)
    _refresh_listed_days(store)  # the days with re-attributed events: from their events
    store.execute("CREATE TEMP TABLE _rollup_days AS SELECT day FROM _rollup_merge_days")
    store.execute("DROP TABLE _rollup_merge_days")
    _refresh_listed_days(store, appended)  # the days that only gained the new events


def rebuild_deferred(store: WritableStore) -> bool:
    """After a load (all its batches): rebuild the rollup if a batch deferred its refresh."""
    if not store.has_table(STATE) or not store.scalar(
            f"SELECT count(*) FROM {STATE} WHERE key = '{_DEFERRED}'"):
        return False
    rebuild(store)
    return True
