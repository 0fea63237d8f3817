"""Users, accounts and anonymous→user identities learned from identify, group and alias calls."""

from __future__ import annotations

from accountlens.store.base import Store


def apply_new_events(store: Store, new: str) -> None:
    """Upsert profiles from the batch in table `new` (latest call wins).

    Leaves `_changed_users(user_id)` — stored users whose email or account domain changed —
    and `_new_identities(anonymous_id)`, whose earlier events must be attributed again.
    """
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _changed_users AS
        SELECT DISTINCT u.user_id FROM {new} n JOIN users u ON u.user_id = n.sent_user_id
        WHERE n.type = 'identify' AND n.traits->>'email' IS NOT NULL
          AND u.email IS DISTINCT FROM n.traits->>'email'
        UNION
        SELECT u.user_id FROM users u JOIN (
            SELECT lower(coalesce(traits->>'domain', traits->>'website')) AS domain
            FROM {new} WHERE type = 'group'
        ) d ON lower(split_part(u.email, '@', 2)) = d.domain
        """
    )
    store.execute(
        f"""
        INSERT INTO users (user_id, email, name, created_at, traits, updated_at, source)
        SELECT sent_user_id, traits->>'email', traits->>'name',
               coalesce(TRY_CAST(traits->>'createdAt' AS TIMESTAMPTZ), timestamp),
               traits, timestamp, 'sdk'
        FROM {new} WHERE sent_user_id IS NOT NULL AND type <> 'alias'
        QUALIFY row_number() OVER (PARTITION BY sent_user_id
                                   ORDER BY (type = 'identify') DESC, timestamp DESC) = 1
        ON CONFLICT (user_id) DO UPDATE SET
            email = coalesce(excluded.email, users.email),
            name = coalesce(excluded.name, users.name),
            created_at = least(users.created_at, excluded.created_at),
            traits = CASE WHEN excluded.updated_at >= coalesce(users.updated_at, excluded.updated_at)
                          THEN json_merge_patch(coalesce(users.traits, '{{}}'),
                                                coalesce(excluded.traits, '{{}}'))
                          ELSE json_merge_patch(coalesce(excluded.traits, '{{}}'),
                                                coalesce(users.traits, '{{}}')) END,
            updated_at = greatest(users.updated_at, excluded.updated_at)
        """
    )
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _identity_candidates AS
        SELECT anon, user_id, first_seen FROM (
            SELECT anonymous_id AS anon, sent_user_id AS user_id, timestamp AS first_seen
            FROM {new} WHERE type = 'identify' AND anonymous_id IS NOT NULL
                         AND sent_user_id IS NOT NULL
            UNION ALL
            SELECT previous_id, sent_user_id, timestamp FROM {new} WHERE type = 'alias'
        )
        WHERE anon NOT IN (SELECT anonymous_id FROM identities)
        QUALIFY row_number() OVER (PARTITION BY anon ORDER BY first_seen) = 1
        """
    )
    store.execute("INSERT INTO identities SELECT * FROM _identity_candidates")
    store.execute(
        "CREATE OR REPLACE TEMP TABLE _new_identities AS SELECT anon AS anonymous_id "
        "FROM _identity_candidates"
    )
    store.execute("DROP TABLE _identity_candidates")
    store.execute(
        f"""
        INSERT INTO account_traits_history
        SELECT group_id, traits, timestamp, 'sdk', message_id
        FROM {new} WHERE type = 'group' AND traits IS NOT NULL
        """
    )
    store.execute(
        f"""
        INSERT INTO accounts (account_id, name, domain, industry, region, employees, plan,
                              parent_account_id, created_at, traits, updated_at, source)
        SELECT group_id,
               traits->>'name',
               lower(regexp_replace(coalesce(traits->>'domain', traits->>'website'),
                                    '^(https?://)?(www\\.)?([^/]+).*$', '\\3')),
               traits->>'industry', traits->>'region',
               TRY_CAST(traits->>'employees' AS BIGINT), traits->>'plan',
               coalesce(traits->>'parent_account_id', traits->>'parentId'),
               coalesce(TRY_CAST(traits->>'createdAt' AS TIMESTAMPTZ), first_ts),
               traits, timestamp, 'sdk'
        FROM (
            SELECT group_id, CASE WHEN type = 'group' THEN traits END AS traits, timestamp,
                   min(timestamp) OVER (PARTITION BY group_id) AS first_ts,
                   (type = 'group') AS is_group
            FROM {new} WHERE group_id IS NOT NULL
        )
        QUALIFY row_number() OVER (PARTITION BY group_id ORDER BY is_group DESC, timestamp DESC) = 1
        ON CONFLICT (account_id) DO UPDATE SET
            name = coalesce(excluded.name, accounts.name),
            domain = coalesce(excluded.domain, accounts.domain),
            industry = coalesce(excluded.industry, accounts.industry),
            region = coalesce(excluded.region, accounts.region),
            employees = coalesce(excluded.employees, accounts.employees),
            plan = coalesce(excluded.plan, accounts.plan),
            parent_account_id = coalesce(excluded.parent_account_id, accounts.parent_account_id),
            created_at = least(accounts.created_at, excluded.created_at),
            traits = json_merge_patch(coalesce(accounts.traits, '{{}}'),
                                      coalesce(excluded.traits, '{{}}')),
            updated_at = greatest(accounts.updated_at, excluded.updated_at)
        """
    )
