"""The versioned relational schema of a workspace (SPEC §3) and its ordered migrations."""

from __future__ import annotations

# Each migration moves the schema from version i to i+1. Never edit a released step: append one.
MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "initial data model",
        [
            """CREATE TABLE accounts (
                account_id VARCHAR PRIMARY KEY,
                name VARCHAR, domain VARCHAR, industry VARCHAR, region VARCHAR,
                employees BIGINT, plan VARCHAR, parent_account_id VARCHAR,
                created_at TIMESTAMPTZ, traits JSON, updated_at TIMESTAMPTZ, source VARCHAR)""",
            """CREATE TABLE account_traits_history (
                account_id VARCHAR NOT NULL, traits JSON, valid_from TIMESTAMPTZ NOT NULL,
                source VARCHAR, message_id VARCHAR)""",
            """CREATE TABLE org_units (
                unit_id VARCHAR PRIMARY KEY, account_id VARCHAR NOT NULL,
                kind VARCHAR NOT NULL CHECK (kind IN ('business_unit', 'department', 'team')),
                name VARCHAR, parent_unit_id VARCHAR, source VARCHAR)""",
            """CREATE TABLE users (
                user_id VARCHAR PRIMARY KEY, email VARCHAR, name VARCHAR,
                created_at TIMESTAMPTZ, traits JSON, updated_at TIMESTAMPTZ, source VARCHAR)""",
            """CREATE TABLE memberships (
                user_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL, unit_id VARCHAR,
                role VARCHAR, valid_from TIMESTAMPTZ NOT NULL, valid_to TIMESTAMPTZ,
                source VARCHAR NOT NULL)""",
            """CREATE TABLE subscriptions (
                subscription_id VARCHAR PRIMARY KEY, account_id VARCHAR NOT NULL,
                product VARCHAR, plan VARCHAR, seats BIGINT, arr DOUBLE,
                start_date DATE NOT NULL, end_date DATE, status VARCHAR, entitlements JSON)""",
            """CREATE TABLE outcomes (
                account_id VARCHAR NOT NULL,
                kind VARCHAR NOT NULL CHECK (kind IN
                    ('renewal', 'expansion', 'contraction', 'churn', 'conversion')),
                date DATE NOT NULL, arr_delta DOUBLE, source VARCHAR)""",
            """CREATE TABLE identities (
                anonymous_id VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL,
                first_seen TIMESTAMPTZ)""",
            # No PRIMARY KEY on message_id: the loader (one writer per workspace) deduplicates
            # with a hash anti-join, which is twice as fast to load as maintaining an index.
            """CREATE TABLE events (
                message_id VARCHAR NOT NULL,
                type VARCHAR NOT NULL, name VARCHAR,
                user_id VARCHAR, anonymous_id VARCHAR, sent_user_id VARCHAR,
                group_id VARCHAR,
                account_id VARCHAR, attribution VARCHAR NOT NULL, unit_id VARCHAR, role VARCHAR,
                product VARCHAR, object_id VARCHAR,
                actor_kind VARCHAR NOT NULL CHECK (actor_kind IN ('human', 'automation')),
                timestamp TIMESTAMPTZ NOT NULL, original_timestamp TIMESTAMPTZ,
                sent_at TIMESTAMPTZ, received_at TIMESTAMPTZ NOT NULL,
                properties JSON, traits JSON, context JSON, source VARCHAR)""",
            """CREATE TABLE quarantine (
                quarantine_id BIGINT PRIMARY KEY, message_id VARCHAR, reason VARCHAR NOT NULL,
                raw JSON NOT NULL, received_at TIMESTAMPTZ, source VARCHAR,
                quarantined_at TIMESTAMPTZ NOT NULL, replayed_at TIMESTAMPTZ)""",
            "CREATE SEQUENCE quarantine_seq START 1",
            """CREATE TABLE ingest_segments (
                segment VARCHAR PRIMARY KEY, loaded_at TIMESTAMPTZ NOT NULL,
                received BIGINT, inserted BIGINT, duplicates BIGINT, quarantined BIGINT)""",
            """CREATE TABLE imports (
                import_id BIGINT PRIMARY KEY, kind VARCHAR NOT NULL, file VARCHAR NOT NULL,
                rows BIGINT, inserted BIGINT, quarantined BIGINT, imported_at TIMESTAMPTZ NOT NULL)""",
            "CREATE SEQUENCE import_seq START 1",
        ],
    ),
    (
        # Before this step accountlens created these on first use, some in older shapes: they
        # hold only what the events determine, so they are made anew (the next metric query
        # fills them).
        "tables kept with the daily rollup",
        [
            *(f"DROP TABLE IF EXISTS {name}" for name in (
                "daily_activity", "account_firsts", "account_user_firsts", "account_days",
                "metrics_state", "referral_invites", "referral_invites_source")),
            """CREATE TABLE daily_activity (
                day DATE NOT NULL, account_id VARCHAR, user_id VARCHAR, unit_id VARCHAR,
                role VARCHAR, name VARCHAR, product VARCHAR, actor_kind VARCHAR, events BIGINT,
                first_at TIMESTAMPTZ, last_at TIMESTAMPTZ)""",
            "CREATE TABLE account_firsts (account_id VARCHAR, first_day DATE, first_at TIMESTAMPTZ)",
            """CREATE TABLE account_user_firsts (
                account_id VARCHAR, user_id VARCHAR, name VARCHAR, first_day DATE,
                first_at TIMESTAMPTZ)""",
            """CREATE TABLE account_days (
                day DATE, account_id VARCHAR, events BIGINT, first_at TIMESTAMPTZ,
                last_at TIMESTAMPTZ, users BIGINT)""",
            "CREATE TABLE metrics_state (key VARCHAR PRIMARY KEY, value BIGINT)",
            """CREATE TABLE referral_invites (
                day DATE, message_id VARCHAR, account_id VARCHAR, user_id VARCHAR,
                unit_id VARCHAR, role VARCHAR, timestamp TIMESTAMPTZ, actor_kind VARCHAR,
                invitee_email VARCHAR)""",
            "CREATE TABLE referral_invites_source (event VARCHAR, property VARCHAR)",
        ],
    ),
    (
        # One row per stored event the pipeline corrected (a future timestamp set to the
        # receive time), with the client (SDK name and version) that sent it.
        "ingestion warnings",
        [
            """CREATE TABLE ingest_warnings (
                message_id VARCHAR NOT NULL, warning VARCHAR NOT NULL, value VARCHAR,
                client VARCHAR NOT NULL, source VARCHAR, received_at TIMESTAMPTZ,
                recorded_at TIMESTAMPTZ NOT NULL)""",
        ],
    ),
    (
        # CSV-imported account traits are recorded in the history too (as known from the start
        # of time), so point-in-time reads do not see later `group` traits merged into them.
        # Before this step only the merged profile kept them: it is the best record there is.
        "imported account traits in the history",
        [
            """INSERT INTO account_traits_history
               SELECT account_id, traits, TIMESTAMPTZ '0001-01-01 00:00:00+00', 'import', NULL
               FROM accounts WHERE source = 'import' AND traits IS NOT NULL""",
        ],
    ),
]

MIGRATIONS.append((
    # Governance (docs/governance.md): the salt of personal-data hashing and of the suppression
    # list (random, made here once per workspace), and the people deleted on request, by the
    # salted hash of their user id or lower-case e-mail: their events are refused at load.
    "personal data: salt and suppression list",
    [
        "CREATE TABLE workspace_secrets (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
        """INSERT INTO workspace_secrets
           SELECT 'salt', replace(CAST(gen_random_uuid() AS VARCHAR)
                                  || CAST(gen_random_uuid() AS VARCHAR), '-', '')""",
        """CREATE TABLE suppressed_users (
            subject_hash VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL
                CHECK (kind IN ('user_id', 'email', 'anonymous_id')),
            suppressed_at TIMESTAMPTZ NOT NULL)""",
    ],
))

MIGRATIONS.append((
    # Reconciliation (docs/quality.md): a subscription says where it came from (crm, billing),
    # and every subscriptions import keeps its rows per source, so that the CRM's and the
    # billing system's seats and ARR of one account can be compared while `subscriptions`
    # holds the one current row per subscription that metrics read.
    "subscription sources",
    [
        "ALTER TABLE subscriptions ADD COLUMN source VARCHAR",
        """CREATE TABLE subscription_sources (
            source VARCHAR NOT NULL, subscription_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL,
            seats BIGINT, arr DOUBLE, start_date DATE, end_date DATE,
            import_id BIGINT NOT NULL, imported_at TIMESTAMPTZ NOT NULL)""",
    ],
))

MIGRATIONS.append((
    # Alerts and playbooks (docs/alerts.md): one row per alert, identified by its rule, account
    # and period (the dedup key, hashed), and its delivery state per webhook, so that a restart
    # resumes pending deliveries and never repeats a delivered one.
    "alerts and their webhook deliveries",
    [
        """CREATE TABLE alerts (
            alert_id VARCHAR PRIMARY KEY, rule VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            account_id VARCHAR NOT NULL, account_name VARCHAR, period VARCHAR NOT NULL,
            as_of DATE NOT NULL, severity VARCHAR NOT NULL, title VARCHAR NOT NULL,
            evidence JSON, action VARCHAR, owner VARCHAR, created_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE alert_deliveries (
            alert_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL, webhook VARCHAR NOT NULL,
            state VARCHAR NOT NULL, attempts BIGINT NOT NULL, next_attempt_at TIMESTAMPTZ,
            last_error VARCHAR, delivered_at TIMESTAMPTZ, PRIMARY KEY (alert_id, webhook))""",
    ],
))

MIGRATIONS.append((
    # The tracking plan (docs/quality.md, "Tracking plan"): every version of it, one row per
    # event name and for identify / group traits, with who changed it; and the violations the
    # load pipeline found, one row per event and rule and property, with the client that sent
    # the event (context.library), so that a misbehaving SDK release can be found.
    "tracking plan and its violations",
    [
        """CREATE TABLE tracking_plans (
            version BIGINT NOT NULL, kind VARCHAR NOT NULL, name VARCHAR NOT NULL,
            schema JSON NOT NULL, changed_by VARCHAR NOT NULL, changed_at TIMESTAMPTZ NOT NULL,
            note VARCHAR, PRIMARY KEY (version, kind, name))""",
        """CREATE TABLE plan_violations (
            message_id VARCHAR NOT NULL, type VARCHAR NOT NULL, event VARCHAR,
            rule VARCHAR NOT NULL, property VARCHAR, message VARCHAR NOT NULL,
            library VARCHAR, library_version VARCHAR, plan_version BIGINT NOT NULL,
            quarantined BOOLEAN NOT NULL, recorded_at TIMESTAMPTZ NOT NULL)""",
    ],
))

MIGRATIONS.append((
    # Attribution rule sets (docs/attribution.md): every version with who made it, its edits
    # and its activations, so that which rules fed a dashboard on a day can be told afterwards.
    "attribution rule versions",
    [
        """CREATE TABLE attribution_rule_versions (
            version BIGINT PRIMARY KEY, name VARCHAR, rules JSON NOT NULL,
            based_on BIGINT, created_by VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,
            note VARCHAR)""",
        """CREATE TABLE attribution_rule_changes (
            version BIGINT NOT NULL, action VARCHAR NOT NULL, actor VARCHAR NOT NULL,
            changed_at TIMESTAMPTZ NOT NULL, detail JSON)""",
    ],
))

MIGRATIONS.append((
    # Account-level experiments (docs/experiments.md): their design, the accounts `assign` gave
    # a variant (kept, so a rerun never moves an account), and exposures imported from CSV
    # (exposures sent as events are read from the events table).
    "experiments, assignments and imported exposures",
    [
        """CREATE TABLE experiments (
            experiment VARCHAR PRIMARY KEY, variants JSON NOT NULL, salt VARCHAR NOT NULL,
            stratify_by VARCHAR, description VARCHAR, created_by VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE experiment_assignments (
            experiment VARCHAR NOT NULL, account_id VARCHAR NOT NULL, variant VARCHAR NOT NULL,
            stratum VARCHAR, assigned_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (experiment, account_id))""",
        """CREATE TABLE experiment_exposures (
            account_id VARCHAR NOT NULL, experiment VARCHAR NOT NULL, variant VARCHAR NOT NULL,
            exposed_at TIMESTAMPTZ NOT NULL, user_id VARCHAR)""",
    ],
))

MIGRATIONS.append((
    # Deduplication by message id without reading the events table (docs/ingestion.md, "Dedup"):
    # the message id of every event stored, with a 64-bit hash of it (the first 16 hex digits of
    # its MD5: standard, the same in every DuckDB version). A load compares its batch's hashes
    # with this column alone (8 bytes per stored event) and reads message ids only where a hash
    # matched. Filled here from the events of an existing workspace; self-contained.
    "message id index for deduplication",
    [
        "CREATE TABLE event_ids (id_hash UBIGINT NOT NULL, message_id VARCHAR NOT NULL)",
        """INSERT INTO event_ids
           SELECT CAST('0x' || left(md5(message_id), 16) AS UBIGINT), message_id FROM events""",
    ],
))

MIGRATIONS.append((
    # SDK-derived memberships carried on from each user's last stored call (model/memberships.py
    # `rebuild_from_sdk`): the replay's state after that call (latest traits, the accounts with
    # an open row and their traits, the account joined last, the number of rows it wrote) and
    # the call's place in the order of calls. Every user with stored calls has a row: here one
    # to be filled (no message id; the first load after this step replays those users once).
    "membership replay states",
    [
        """CREATE TABLE membership_states (
            user_id VARCHAR NOT NULL, last_timestamp TIMESTAMPTZ NOT NULL,
            last_message_id VARCHAR NOT NULL, state JSON NOT NULL)""",
        """INSERT INTO membership_states
           SELECT sent_user_id, max(timestamp), '', '{"replay": true}' FROM events
           WHERE type IN ('identify', 'group') AND sent_user_id IS NOT NULL
           GROUP BY sent_user_id""",
    ],
))

MIGRATIONS.append((
    # Events as a lake (docs/lake.md, store/lake.py): the file moves a committed transaction
    # still owes the lake folder (a staged file to rename over its target, or a target to
    # remove: `staged` NULL), done right after the commit and again on open after a crash; and
    # what the lake keeps of the events table (its definition, to make it again on disable).
    "events as a lake: pending file moves",
    [
        """CREATE TABLE lake_moves (
            batch VARCHAR NOT NULL, seq BIGINT NOT NULL, staged VARCHAR, target VARCHAR NOT NULL)""",
        "CREATE TABLE lake_state (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    ],
))

SCHEMA_VERSION = len(MIGRATIONS)
