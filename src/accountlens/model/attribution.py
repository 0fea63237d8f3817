"""Account attribution of events (SPEC §3.1), resolved in one set-based update.

First rule that applies:
1. `explicit`   — `context.groupId` (Segment) or `$groups` (PostHog) on the event;
2. `membership` — the user's membership valid at the event timestamp, if exactly one account;
3. `domain`     — the user's email domain matches exactly one account's domain;
4. `unattributed` — counted and reported, never dropped.
Unit and role are those of the user's membership in the attributed account at event time.
Anonymous events are first resolved to a user through identify/alias identities.
"""

from __future__ import annotations

from accountlens.store import lake as store_lake
from accountlens.store.base import Store, WritableStore


def resolve(store: WritableStore, source_sql: str) -> None:
    """Create `_attr_result(key, uid, account_id, attribution, unit_id, role)` for the rows of
    `source_sql` (columns key BIGINT unique, sent_user_id, anonymous_id, group_id, timestamp).

    Rows are keyed by an integer, not the message id: hashing millions of strings is what made
    attribution slow on large loads."""
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _attr_scope AS
        SELECT e.key, coalesce(e.sent_user_id, i.user_id) AS uid, e.group_id, e.timestamp
        FROM ({source_sql}) e LEFT JOIN identities i ON e.anonymous_id = i.anonymous_id
        """
    )
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _attr_result AS
        WITH domains AS (
            SELECT lower(domain) AS domain, count(*) AS n, min(account_id) AS account_id
            FROM accounts WHERE domain IS NOT NULL AND domain <> '' GROUP BY 1
        ),
        by_domain AS (
            SELECT u.user_id, d.account_id
            FROM users u JOIN domains d
              ON lower(split_part(u.email, '@', 2)) = d.domain AND d.n = 1
            WHERE u.user_id IN (SELECT uid FROM _attr_scope)
        ),
        scope AS (
            SELECT s.*, bd.account_id AS domain_account
            FROM _attr_scope s LEFT JOIN by_domain bd ON bd.user_id = s.uid
        ),
        -- one pass over the memberships valid at each event: how many accounts, and the
        -- unit/role (latest row) in the explicit, the only, or the domain account
        valid AS (
            SELECT s.key, count(DISTINCT m.account_id) AS n, min(m.account_id) AS only_account,
                   arg_max(struct_pack(unit_id := m.unit_id, role := m.role),
                           struct_pack(valid_from := m.valid_from, source := m.source))
                       FILTER (WHERE m.account_id = s.group_id) AS in_explicit,
                   arg_max(struct_pack(unit_id := m.unit_id, role := m.role),
                           struct_pack(valid_from := m.valid_from, source := m.source)) AS in_only,
                   arg_max(struct_pack(unit_id := m.unit_id, role := m.role),
                           struct_pack(valid_from := m.valid_from, source := m.source))
                       FILTER (WHERE m.account_id = s.domain_account) AS in_domain
            FROM scope s JOIN memberships m
              ON m.user_id = s.uid AND m.valid_from <= s.timestamp
             AND (m.valid_to IS NULL OR s.timestamp < m.valid_to)
            GROUP BY s.key
        ),
        resolved AS (
            SELECT s.key, s.uid,
                   CASE WHEN s.group_id IS NOT NULL THEN 'explicit'
                        WHEN v.n = 1 THEN 'membership'
                        WHEN s.domain_account IS NOT NULL THEN 'domain'
                        ELSE 'unattributed' END AS attribution,
                   s.group_id, s.domain_account, v.only_account,
                   v.in_explicit, v.in_only, v.in_domain
            FROM scope s LEFT JOIN valid v USING (key)
        )
        SELECT key, uid, attribution,
               CASE attribution WHEN 'explicit' THEN group_id WHEN 'membership' THEN only_account
                                WHEN 'domain' THEN domain_account END AS account_id,
               (CASE attribution WHEN 'explicit' THEN in_explicit WHEN 'membership' THEN in_only
                                 WHEN 'domain' THEN in_domain END).unit_id AS unit_id,
               (CASE attribution WHEN 'explicit' THEN in_explicit WHEN 'membership' THEN in_only
                                 WHEN 'domain' THEN in_domain END).role AS role
        FROM resolved
        """
    )
    store.execute("DROP TABLE _attr_scope")


def changed_events(store: Store) -> list[tuple[str, list]]:
    """The stored events whose attribution a load may have changed, as conditions on `events`
    (each with its parameters; an event matching any of them): none when nothing changed.

    `_changed_users` rows say why: a membership history that changed from `since` on (events
    from then), or an e-mail or account domain that changed (`email_only`: events the domain
    rule attributed, or none did — the rules before it do not read e-mails). Events of
    `_new_identities` are all included. Each condition starts with a test DuckDB pushes into
    its scan of the events table — the earliest `since` as a constant (storage blocks of older
    events are skipped: a stream loaded in time order re-attributes its recent days), the
    attribution rule (a dictionary-coded column) — so the user columns are read only for the
    rows it keeps. One condition joined by OR (as before) was read whole, every column of
    every stored event: 1-1.7 s per load at 10M stored events."""
    def of_users(which: str) -> str:
        users = f"SELECT user_id FROM _changed_users WHERE {which}"
        return f"(user_id IN ({users}) OR sent_user_id IN ({users}))"

    counts = store.rows(
        """SELECT (SELECT count(*) FROM _changed_users WHERE email_only) AS emails,
                  (SELECT epoch_us(min(since)) FROM _changed_users WHERE NOT email_only) AS bound,
                  (SELECT count(*) FROM _new_identities) AS identities""")[0]
    parts: list[tuple[str, list]] = []
    if counts["bound"] is not None:
        parts.append((f"timestamp >= make_timestamptz(?) AND {of_users('NOT email_only')}",
                       [int(counts["bound"])]))
    if counts["emails"]:
        parts.append((f"attribution IN ('domain', 'unattributed') AND {of_users('email_only')}", []))
    if counts["identities"]:
        parts.append(("anonymous_id IN (SELECT anonymous_id FROM _new_identities)", []))
    return parts


_ATTRIBUTED_COLUMNS = "rowid AS key, sent_user_id, anonymous_id, group_id, timestamp"
# A lake's events (store/lake.py) have no row id: they are found again by message id (unique),
# and read with their attribution, so that only the files of events whose attribution changes
# are rewritten.
_LAKE_COLUMNS = ("message_id, sent_user_id, anonymous_id, group_id, timestamp, user_id, "
                 "account_id, attribution, unit_id, role")


def _columns(store: Store) -> str:
    return _LAKE_COLUMNS if store_lake.of(store) else _ATTRIBUTED_COLUMNS


def attribute(store: WritableStore, where_sql: str = "TRUE", params: list | None = None) -> int:
    """(Re)attribute stored events matching `where_sql` (e.g. after CRM data changed). Runs
    inside the caller's transaction (rows are addressed by row id)."""
    return _attribute_rows(store, f"SELECT {_columns(store)} FROM events WHERE {where_sql}",
                           params)


def reattribute_changed(store: WritableStore) -> int:
    """Attribute again the stored events a load may have changed (`changed_events`), before
    its new events are written; leaves `_reattributed(timestamp)`, one row per such event
    (empty when none), whose days the rollup refreshes."""
    parts = changed_events(store)
    if not parts:
        store.execute("CREATE OR REPLACE TEMP TABLE _reattributed (timestamp TIMESTAMPTZ)")
        return 0
    source = " UNION ".join(f"SELECT {_columns(store)} FROM events WHERE {where}"
                            for where, _ in parts)
    return _attribute_rows(store, source, [p for _, params in parts for p in params],
                           keep_as="_reattributed")


def _attribute_rows(store: WritableStore, source_sql: str, params: list | None,
                    keep_as: str | None = None) -> int:
    """Attribute the stored events of `source_sql` (columns key = their row id, sent_user_id,
    anonymous_id, group_id, timestamp) again; with `keep_as`, keep their timestamps as that
    table."""
    lake = store_lake.of(store)
    if lake:  # numbered here: `resolve` keys rows by an integer
        source_sql = f"SELECT row_number() OVER () AS key, * FROM ({source_sql})"
    store.execute(f"CREATE OR REPLACE TEMP TABLE _attr_source AS {source_sql}", params)
    resolve(store, "SELECT * FROM _attr_source")
    # Only rows whose attribution actually changes are rewritten (updates are costly). Rows
    # are found by row id, which stays put within the transaction: joining by message id read
    # every stored message id.
    changed = """(events.user_id IS DISTINCT FROM r.uid
                  OR events.account_id IS DISTINCT FROM r.account_id
                  OR events.attribution IS DISTINCT FROM r.attribution
                  OR events.unit_id IS DISTINCT FROM r.unit_id
                  OR events.role IS DISTINCT FROM r.role)"""
    if lake:
        _update_lake(store, lake, changed)
    else:
        store.execute(
            f"""
            UPDATE events SET user_id = r.uid, account_id = r.account_id,
                   attribution = r.attribution, unit_id = r.unit_id, role = r.role
            FROM _attr_result r
            WHERE events.rowid = r.key AND {changed}
            """
        )
    count = store.scalar("SELECT count(*) FROM _attr_source")
    store.execute("DROP TABLE _attr_result")
    if keep_as is not None:
        store.execute(f"CREATE OR REPLACE TEMP TABLE {keep_as} AS SELECT timestamp FROM _attr_source")
    store.execute("DROP TABLE _attr_source")
    return count


def _update_lake(store: WritableStore, lake: store_lake.Lake, changed: str) -> None:
    """The update of `_attribute_rows` in a lake: the files holding an event whose
    attribution changes are rewritten with the new attribution (store/lake.py)."""
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE _attr_changed AS
            SELECT events.message_id, events.timestamp, r.uid, r.account_id, r.attribution,
                   r.unit_id, r.role
            FROM _attr_result r JOIN _attr_source events USING (key)
            WHERE {changed}"""
    )
    bounds = store.rows("SELECT count(*) AS n, min(timestamp) AS lo, max(timestamp) AS hi "
                        "FROM _attr_changed")[0]
    if bounds["n"]:  # the time bounds let the scan skip the files of other days
        new = ", ".join(f"CASE WHEN c.message_id IS NULL THEN e.{column} ELSE c.{value} END "
                        f"AS {column}" for column, value in (
                            ("user_id", "uid"), ("account_id", "account_id"),
                            ("attribution", "attribution"), ("unit_id", "unit_id"),
                            ("role", "role")))
        lake.rewrite(store, "timestamp BETWEEN ? AND ? "
                     "AND message_id IN (SELECT message_id FROM _attr_changed)",
                     f"SELECT e.* REPLACE ({new}) FROM _lake_rows e "
                     "LEFT JOIN _attr_changed c ON c.message_id = e.message_id",
                     [bounds["lo"], bounds["hi"]])
    store.execute("DROP TABLE _attr_changed")


def unattributed_summary(store: Store) -> list[dict]:
    """Counts of events per attribution rule, for `accountlens status` and the attribution report."""
    return store.rows(
        "SELECT attribution AS rule, count(*) AS events FROM events GROUP BY 1 ORDER BY 2 DESC")
