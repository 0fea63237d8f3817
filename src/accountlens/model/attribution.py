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

ALL_EVENTS = "SELECT message_id FROM events"


def attribute(store: Store, scope_sql: str = ALL_EVENTS) -> None:
    """(Re)attribute the events whose message ids `scope_sql` returns."""
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _attr_scope AS
        SELECT e.message_id, coalesce(e.sent_user_id, i.user_id) AS uid,
               e.group_id, e.timestamp
        FROM events e LEFT JOIN identities i ON e.anonymous_id = i.anonymous_id
        WHERE e.message_id IN ({scope_sql})
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
    store.execute(
        """
        UPDATE events SET user_id = r.uid, account_id = r.account_id,
               attribution = r.attribution, unit_id = r.unit_id, role = r.role
        FROM _attr_result r WHERE events.message_id = r.message_id
        """
    )
    store.execute("DROP TABLE _attr_scope")
    store.execute("DROP TABLE _attr_result")


def unattributed_summary(store: Store) -> list[dict]:
    """Counts of events per attribution rule, for `accountlens status` and the attribution report."""
    return store.arrow(
        "SELECT attribution AS rule, count(*) AS events FROM events GROUP BY 1 ORDER BY 2 DESC"
    ).to_pylist()
