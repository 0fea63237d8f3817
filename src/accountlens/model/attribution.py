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

from accountlens.store.base import Store

RULES = ("explicit", "membership", "domain", "unattributed")


def resolve(store: Store, source_sql: str) -> None:
    """Create `_attr_result(message_id, uid, account_id, attribution, unit_id, role)` for the
    rows of `source_sql` (columns message_id, sent_user_id, anonymous_id, group_id, timestamp)."""
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _attr_scope AS
        SELECT e.message_id, coalesce(e.sent_user_id, i.user_id) AS uid,
               e.group_id, e.timestamp
        FROM ({source_sql}) e LEFT JOIN identities i ON e.anonymous_id = i.anonymous_id
        """
    )
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _attr_result AS
        WITH by_membership AS (
            SELECT s.message_id, count(DISTINCT m.account_id) AS n,
                   min(m.account_id) AS account_id
            FROM _attr_scope s JOIN memberships m
              ON m.user_id = s.uid AND m.valid_from <= s.timestamp
             AND (m.valid_to IS NULL OR s.timestamp < m.valid_to)
            GROUP BY s.message_id
        ),
        domains AS (
            SELECT lower(domain) AS domain, count(*) AS n, min(account_id) AS account_id
            FROM accounts WHERE domain IS NOT NULL AND domain <> '' GROUP BY 1
        ),
        by_domain AS (
            SELECT u.user_id, d.account_id
            FROM users u JOIN domains d
              ON lower(split_part(u.email, '@', 2)) = d.domain AND d.n = 1
            WHERE u.user_id IN (SELECT uid FROM _attr_scope)
        ),
        resolved AS (
            SELECT s.message_id, s.uid, s.timestamp,
                   CASE WHEN s.group_id IS NOT NULL THEN s.group_id
                        WHEN bm.n = 1 THEN bm.account_id
                        ELSE bd.account_id END AS account_id,
                   CASE WHEN s.group_id IS NOT NULL THEN 'explicit'
                        WHEN bm.n = 1 THEN 'membership'
                        WHEN bd.account_id IS NOT NULL THEN 'domain'
                        ELSE 'unattributed' END AS attribution
            FROM _attr_scope s
            LEFT JOIN by_membership bm ON bm.message_id = s.message_id
            LEFT JOIN by_domain bd ON bd.user_id = s.uid
        )
        SELECT r.message_id, r.uid, r.account_id, r.attribution, m.unit_id, m.role
        FROM resolved r
        LEFT JOIN memberships m
          ON m.user_id = r.uid AND m.account_id = r.account_id
         AND m.valid_from <= r.timestamp AND (m.valid_to IS NULL OR r.timestamp < m.valid_to)
        QUALIFY row_number() OVER (PARTITION BY r.message_id
                                   ORDER BY m.valid_from DESC NULLS LAST, m.source) = 1
        """
    )
    store.execute("DROP TABLE _attr_scope")


def attribute(store: Store, where_sql: str = "TRUE", params: list | None = None) -> int:
    """(Re)attribute stored events matching `where_sql` (e.g. after CRM data changed)."""
    columns = "message_id, sent_user_id, anonymous_id, group_id, timestamp"
    store.execute(
        f"CREATE OR REPLACE TEMP TABLE _attr_source AS SELECT {columns} FROM events WHERE {where_sql}",
        params,
    )
    resolve(store, "SELECT * FROM _attr_source")
    # Only rows whose attribution actually changes are rewritten (updates are costly).
    store.execute(
        """
        UPDATE events SET user_id = r.uid, account_id = r.account_id,
               attribution = r.attribution, unit_id = r.unit_id, role = r.role
        FROM _attr_result r
        WHERE events.message_id = r.message_id
          AND (events.user_id IS DISTINCT FROM r.uid
               OR events.account_id IS DISTINCT FROM r.account_id
               OR events.attribution IS DISTINCT FROM r.attribution
               OR events.unit_id IS DISTINCT FROM r.unit_id
               OR events.role IS DISTINCT FROM r.role)
        """
    )
    count = store.scalar("SELECT count(*) FROM _attr_source")
    store.execute("DROP TABLE _attr_result")
    store.execute("DROP TABLE _attr_source")
    return count


def unattributed_summary(store: Store) -> list[dict]:
    """Counts of events per attribution rule, for `accountlens status` and the attribution report."""
    return store.arrow(
        "SELECT attribution AS rule, count(*) AS events FROM events GROUP BY 1 ORDER BY 2 DESC"
    ).to_pylist()
