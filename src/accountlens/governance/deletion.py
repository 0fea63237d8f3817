"""Deletion of a person on request (docs/privacy.md): their events, identities, memberships,
profile and quarantined events removed in one transaction, the tables kept with the daily
rollup corrected in place, a suppression entry against re-ingestion, Parquet exports flagged,
and a proof in the audit log (counts, no personal data).

The rollup is corrected, not rebuilt: raw events of other people may have expired under the
retention policy (docs/retention.md) while the rollup keeps them, so every correction reads
only the deleted events and the remaining rollup rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from accountlens.analysis.account_detail import EntityNotFound
from accountlens.config import Config
from accountlens.governance.audit import Actor, AuditLog
from accountlens.ingest import privacy
from accountlens.ingest.pipeline import MESSAGE_ID_HASH
from accountlens.model import rollup, suppression
from accountlens.model.entities import ACTIVE_EVENT_TYPES
from accountlens.store import lake, parquet
from accountlens.store.base import WritableStore
from accountlens.store.catalog import columns

log = logging.getLogger(__name__)

ACTION = "user.delete"  # the audit log's action
# The rollup's key (model/rollup.py): one row per combination, of active events.
_KEY = ("day", "account_id", "user_id", "unit_id", "role", "name", "product", "actor_kind")
_ACTIVE = ", ".join(f"'{kind}'" for kind in ACTIVE_EVENT_TYPES)
# What identifies the person, as temp tables made by `_stage`.
_IDS = "(SELECT user_id FROM _del_users)"
_ANONS = "(SELECT anonymous_id FROM _del_anons)"
_ANY_ID = "(SELECT user_id FROM _del_users UNION SELECT anonymous_id FROM _del_anons)"
_EMAILS = "(SELECT email FROM _del_emails)"
_EVENTS = (f"user_id IN {_IDS} OR sent_user_id IN {_IDS} OR anonymous_id IN {_ANONS}")
_QUARANTINED = (f"raw->>'$.userId' IN {_ANY_ID} OR raw->>'$.anonymousId' IN {_ANY_ID} "
                f"OR raw->>'$.previousId' IN {_ANY_ID} OR lower(raw->>'$.traits.email') IN {_EMAILS} "
                f"OR lower(raw->>'$.context.traits.email') IN {_EMAILS}")
_TEMP = ("_del_users", "_del_anons", "_del_emails", "_del_events", "_del_pairs", "_del_groups")


class PersonNotFound(EntityNotFound):
    """No user with that id or e-mail in the workspace (REST: 404)."""


def delete_user(store: WritableStore, config: Config, root: Path, actor: Actor,
                user_id: str | None = None, email: str | None = None) -> dict[str, Any]:
    """Delete the user `user_id`, or every user whose e-mail is `email` (case-insensitive).

    Returns `{"subject", "users", "removed", "corrected", "suppressed", "parquet_flagged"}`:
    the salted hash the audit entry names instead of the person (of the user id, or of the
    lower-case e-mail), how many users, the rows removed per table, the rows rewritten per
    table (derived rows recomputed; others' invites of the person with the e-mail erased), the
    suppression-list entries and whether a Parquet export was flagged."""
    if (user_id is None) == (email is None):
        raise ValueError("give either a user id or an e-mail address")
    with store.transaction():
        store.execute("SET TimeZone = 'UTC'")
        users = _find(store, config, user_id, email)
        if not users:
            raise PersonNotFound(f"no user {user_id!r} in this workspace" if email is None
                                 else f"no user with the e-mail address {email!r} in this workspace")
        subject = suppression.subject_hash(store, str(user_id) if email is None else email.lower())
        _stage(store, config, users, email)
        removed, corrected = _remove(store, config)
        suppressed = suppression.suppress(store, """
            SELECT user_id AS value, 'user_id' AS kind FROM _del_users
            UNION ALL SELECT anonymous_id, 'anonymous_id' FROM _del_anons
            UNION ALL SELECT email, 'email' FROM _del_emails""")
        for name in _TEMP:
            store.execute(f"DROP TABLE IF EXISTS {name}")
    flagged = _flag_exports(config, root, len(users))
    AuditLog(root).record(actor, ACTION, target=subject, details={
        "users": len(users), "removed": removed, "corrected": corrected,
        "suppressed": suppressed, "parquet_flagged": flagged})
    return {"subject": subject, "users": len(users), "removed": removed, "corrected": corrected,
            "suppressed": suppressed, "parquet_flagged": flagged}


def _find(store: WritableStore, config: Config, user_id: str | None, email: str | None) -> list[str]:
    """The user ids to delete: `user_id` if anything of it is stored (also only quarantined
    events); the users with `email`."""
    if email is not None:
        forms = privacy.stored_forms(store, config.ingest.pii, "email", email)
        return [row["user_id"] for row in store.rows(
            "SELECT user_id FROM users WHERE list_contains(?, lower(email)) ORDER BY user_id",
            [forms])]
    known = store.scalar(
        """SELECT EXISTS (SELECT 1 FROM users WHERE user_id = $id)
               OR EXISTS (SELECT 1 FROM memberships WHERE user_id = $id)
               OR EXISTS (SELECT 1 FROM identities WHERE user_id = $id)
               OR EXISTS (SELECT 1 FROM events WHERE user_id = $id OR sent_user_id = $id)
               OR EXISTS (SELECT 1 FROM quarantine WHERE raw->>'$.userId' = $id)""",
        {"id": user_id})
    return [str(user_id)] if known else []


def _stage(store: WritableStore, config: Config, users: list[str], email: str | None) -> None:
    """Temp tables of what identifies the person and of their events."""
    store.execute("CREATE OR REPLACE TEMP TABLE _del_users AS SELECT unnest(?) AS user_id", [users])
    store.execute(f"CREATE OR REPLACE TEMP TABLE _del_anons AS SELECT anonymous_id FROM identities "
                  f"WHERE user_id IN {_IDS}")
    # e-mails as stored (lower case), and as given: as the importers keep it and as the
    # `ingest.pii` actions of the e-mail trait and of the invitee property make it
    given = [email] if email is not None else []
    stored = [row["email"] for row in store.rows(f"SELECT DISTINCT email FROM users WHERE user_id IN "
                                                 f"{_IDS} AND email IS NOT NULL")]
    pii = config.ingest.pii
    forms = {form for address in [*given, *stored]
             for key in ("email", config.metrics.referral_email_property)
             for form in privacy.stored_forms(store, pii, key, address)}
    store.execute("CREATE OR REPLACE TEMP TABLE _del_emails AS SELECT DISTINCT unnest(?) AS email",
                  [sorted(forms)])
    columns = ", ".join(c for c in _KEY if c != "day")
    store.execute(f"""CREATE OR REPLACE TEMP TABLE _del_events AS
                      SELECT message_id, type, CAST(timestamp AS DATE) AS day, {columns}, timestamp
                      FROM events WHERE {_EVENTS}""")


def _count(store: WritableStore, table: str, where: str) -> int:
    return int(store.scalar(f"SELECT count(*) FROM {table} WHERE {where}"))


def _delete(store: WritableStore, table: str, where: str) -> int:
    count = _count(store, table, where)
    if count:
        store.execute(f"DELETE FROM {table} WHERE {where}")
    return count


def _remove(store: WritableStore, config: Config) -> tuple[dict[str, int], dict[str, int]]:
    """Remove the person's rows; correct the derived tables. (rows removed, rows rewritten)
    per table."""
    events_lake = lake.of(store)
    removed = {
        "events": (events_lake.delete(store, _EVENTS) if events_lake  # files rewritten
                   else _delete(store, "events", _EVENTS)),
        "ingest_warnings": _delete(store, "ingest_warnings",
                                   "message_id IN (SELECT message_id FROM _del_events)"),
        "identities": _delete(store, "identities", f"user_id IN {_IDS} OR anonymous_id IN {_ANONS}"),
        "memberships": _delete(store, "memberships", f"user_id IN {_IDS}"),
        # where the replay of their identify/group calls stands (traits, accounts joined)
        "membership_states": _delete(store, "membership_states", f"user_id IN {_IDS}"),
        "users": _delete(store, "users", f"user_id IN {_IDS}"),
        "quarantine": _delete(store, "quarantine", _QUARANTINED),
    }
    removed[rollup.INVITES] = _delete(
        store, rollup.INVITES, f"message_id IN (SELECT message_id FROM _del_events) OR user_id IN {_IDS}")
    # The deduplication index follows the events (not reported: it holds nothing but their
    # ids). Events of the person sent again are refused by the suppression list instead.
    store.execute(f"""DELETE FROM event_ids
                      WHERE id_hash IN (SELECT {MESSAGE_ID_HASH} FROM _del_events)
                        AND message_id IN (SELECT message_id FROM _del_events)""")
    corrected = _erase_invitee_emails(store, config)
    # An imported exposure is the account's (it saw the variant): it stays, without the person.
    corrected["experiment_exposures"] = _count(store, "experiment_exposures", f"user_id IN {_IDS}")
    store.execute(f"UPDATE experiment_exposures SET user_id = NULL WHERE user_id IN {_IDS}")
    removed.update(_correct_rollup(store))
    corrected.update(_correct_derived(store, removed))
    return removed, corrected


def _erase_invitee_emails(store: WritableStore, config: Config) -> dict[str, int]:
    """Other people's invites of the person keep the invite (the inviter's activity) but lose
    the e-mail: in the invite event's properties and in `referral_invites` alike, so that a
    rollup rebuild gives what the correction gives. The rows changed per table."""
    settings = {(config.metrics.referral_event, config.metrics.referral_email_property)}
    recorded = rollup.invites_source(store)
    settings |= {recorded} if recorded else set()
    erased = 0
    for event, prop in sorted(settings):
        params = {"name": event, "ptr": privacy.pointer(prop)}
        where = ("type = 'track' AND name = $name AND lower(json_extract_string(properties, $ptr)) "
                 f"IN {_EMAILS}")
        found = int(store.scalar(f"SELECT count(*) FROM events WHERE {where}", params))
        erased += found
        erase = "json_merge_patch(properties, json_object($key, NULL))"
        events_lake = lake.of(store)
        if found and events_lake:  # the files holding them are rewritten (store/lake.py)
            events_lake.rewrite(
                store, where, f"SELECT * REPLACE (CASE WHEN {where} THEN {erase} ELSE properties "
                "END AS properties) FROM _lake_rows", params, {**params, "key": prop})
        elif found:
            store.execute(f"UPDATE events SET properties = {erase} WHERE {where}",
                          {**params, "key": prop})
    where = f"invitee_email IN {_EMAILS}"
    invites = _count(store, rollup.INVITES, where)
    store.execute(f"UPDATE {rollup.INVITES} SET invitee_email = NULL WHERE {where}")
    return {"events": erased, rollup.INVITES: invites}


def _correct_rollup(store: WritableStore) -> dict[str, int]:
    """`daily_activity`: the person's rows go (also of days whose raw events expired); rows of
    others that deleted events counted in (an event of another user id sent with one of the
    person's anonymous ids) lose them."""
    key = ", ".join(_KEY)
    # the (day, account) pairs whose account_days and account_firsts change
    store.execute(f"""CREATE OR REPLACE TEMP TABLE _del_pairs AS
        SELECT DISTINCT day, account_id FROM (
            SELECT day, account_id FROM {rollup.ROLLUP} WHERE user_id IN {_IDS}
            UNION ALL SELECT day, account_id FROM _del_events WHERE type IN ({_ACTIVE}))
        WHERE account_id IS NOT NULL""")
    store.execute(f"""CREATE OR REPLACE TEMP TABLE _del_groups AS
        SELECT {key}, count(*) AS events, min(timestamp) AS first_at, max(timestamp) AS last_at
        FROM _del_events
        WHERE type IN ({_ACTIVE}) AND (user_id IS NULL OR user_id NOT IN {_IDS})
        GROUP BY ALL""")
    gone = _delete(store, rollup.ROLLUP, f"user_id IN {_IDS}")
    if store.scalar("SELECT count(*) FROM _del_groups"):
        store.execute(f"""UPDATE {rollup.ROLLUP} d SET events = d.events - g.events
                          FROM _del_groups g WHERE {_same('d', 'g')}""")
        gone += _delete(store, rollup.ROLLUP, "events <= 0")
        # first and last moments from the events left (those of a day are kept together)
        store.execute(f"""UPDATE {rollup.ROLLUP} d SET first_at = r.first_at, last_at = r.last_at
            FROM (SELECT {', '.join(f'g.{c}' for c in _KEY)}, min(e.timestamp) AS first_at,
                         max(e.timestamp) AS last_at
                  FROM _del_groups g JOIN (SELECT *, CAST(timestamp AS DATE) AS day FROM events
                                           WHERE type IN ({_ACTIVE})) e ON {_same('e', 'g')}
                  GROUP BY ALL) r
            WHERE {_same('d', 'r')}""")
    return {rollup.ROLLUP: gone}


def _same(a: str, b: str) -> str:
    """SQL: rows `a` and `b` have the same rollup key (NULL equal to NULL)."""
    return " AND ".join(f"{a}.{c} IS NOT DISTINCT FROM {b}.{c}" for c in _KEY)


def _correct_derived(store: WritableStore, removed: dict[str, int]) -> dict[str, int]:
    """`account_user_firsts`, `account_days` and `account_firsts` from the remaining rollup
    rows, for the keys the deletion touched (their expressions in model/rollup.py)."""
    pairs = "(day, account_id) IN (SELECT (day, account_id) FROM _del_pairs)"
    accounts = "account_id IN (SELECT account_id FROM _del_pairs)"
    human = "account_id IS NOT NULL AND user_id IS NOT NULL AND actor_kind = 'human'"
    others = (f"(account_id, user_id, name) IN (SELECT (account_id, user_id, name) FROM _del_groups "
              f"WHERE {human})")
    removed[rollup.USER_FIRSTS] = _delete(store, rollup.USER_FIRSTS, f"user_id IN {_IDS}")
    corrected = {}
    for table, where, rows in (
        (rollup.USER_FIRSTS, others,
         f"SELECT account_id, user_id, name, min(day) AS first_day, min(first_at) AS first_at "
         f"FROM {rollup.ROLLUP} WHERE {human} AND {others} GROUP BY ALL"),
        (rollup.ACCOUNT_DAYS, pairs,
         f"SELECT day, account_id, sum(events) AS events, min(first_at) AS first_at, "
         f"max(last_at) AS last_at, count(DISTINCT user_id) FILTER (WHERE actor_kind = 'human') "
         f"AS users FROM {rollup.ROLLUP} WHERE {pairs} GROUP BY ALL"),
        (rollup.FIRSTS, accounts,
         f"SELECT account_id, min(day) AS first_day, min(first_at) AS first_at "
         f"FROM {rollup.ROLLUP} WHERE account_id IS NOT NULL AND {accounts} GROUP BY ALL"),
    ):
        before = _delete(store, table, where)
        names = ", ".join(columns(table))
        store.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM ({rows})")
        after = _count(store, table, where)
        removed[table] = removed.get(table, 0) + before - after
        corrected[table] = after
    return corrected


def _flag_exports(config: Config, root: Path, people: int) -> bool:
    """Flag the Parquet export of the workspace (`spark.parquet_dir`) and every local export
    the audit log records, if they exist: they hold the deleted people's data until written
    again."""
    folders = []
    if not parquet.is_uri(config.spark.parquet_dir):
        folders.append(root / config.spark.parquet_dir)
    else:
        log.warning("the Parquet export at %s cannot be flagged from here: export it again",
                    config.spark.parquet_dir)
    for entry in AuditLog(root).entries(action="export.parquet"):
        target = str(entry.get("target", ""))
        if target and not parquet.is_uri(target) and Path(target).is_absolute():
            folders.append(Path(target))
    flagged = False
    for folder in dict.fromkeys(path.resolve() for path in folders):
        try:
            flagged |= parquet.flag_stale(folder, "people were deleted from the workspace", people)
        except OSError as exc:
            log.warning("could not flag the Parquet export in %s (%s): export it again", folder, exc)
    return flagged
