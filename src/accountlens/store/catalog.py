"""The catalog: every table of a workspace with its columns and types, declared once.

Queries are built against it (`table(name)`: an unbound Ibis table, so metrics are
engine-independent expressions), importers take their column types from it, and a test checks
that the migrations of store/schema.py create exactly these tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ibis is imported lazily: the load pipeline must stay light
    import ibis.expr.types as ir

# The tables kept with the daily rollup (model/rollup.py): derived from the events, rebuilt at will.
ROLLUP = "daily_activity"
FIRSTS = "account_firsts"
USER_FIRSTS = "account_user_firsts"
ACCOUNT_DAYS = "account_days"
INVITES = "referral_invites"
INVITES_SOURCE = "referral_invites_source"
STATE = "metrics_state"

TEXT, INT, FLOAT, DAY, TIME, JSON = "VARCHAR", "BIGINT", "DOUBLE", "DATE", "TIMESTAMPTZ", "JSON"

TABLES: dict[str, dict[str, str]] = {
    # --- the data model (SPEC §3) ---
    "accounts": {
        "account_id": TEXT, "name": TEXT, "domain": TEXT, "industry": TEXT, "region": TEXT, "employees": INT,
        "plan": TEXT, "parent_account_id": TEXT, "created_at": TIME, "traits": JSON, "updated_at": TIME,
        "source": TEXT,
    },
    "account_traits_history": {
        "account_id": TEXT, "traits": JSON, "valid_from": TIME, "source": TEXT, "message_id": TEXT,
    },
    "org_units": {
        "unit_id": TEXT, "account_id": TEXT, "kind": TEXT, "name": TEXT, "parent_unit_id": TEXT, "source": TEXT,
    },
    "users": {
        "user_id": TEXT, "email": TEXT, "name": TEXT, "created_at": TIME, "traits": JSON, "updated_at": TIME,
        "source": TEXT,
    },
    "memberships": {
        "user_id": TEXT, "account_id": TEXT, "unit_id": TEXT, "role": TEXT, "valid_from": TIME, "valid_to": TIME,
        "source": TEXT,
    },
    "subscriptions": {
        "subscription_id": TEXT, "account_id": TEXT, "product": TEXT, "plan": TEXT, "seats": INT, "arr": FLOAT,
        "start_date": DAY, "end_date": DAY, "status": TEXT, "entitlements": JSON, "source": TEXT,
    },
    # each subscriptions import's rows, per source (crm, billing): what reconciliation compares
    "subscription_sources": {
        "source": TEXT, "subscription_id": TEXT, "account_id": TEXT, "seats": INT, "arr": FLOAT,
        "start_date": DAY, "end_date": DAY, "import_id": INT, "imported_at": TIME,
    },
    "outcomes": {"account_id": TEXT, "kind": TEXT, "date": DAY, "arr_delta": FLOAT, "source": TEXT},
    "identities": {"anonymous_id": TEXT, "user_id": TEXT, "first_seen": TIME},
    "events": {
        "message_id": TEXT, "type": TEXT, "name": TEXT, "user_id": TEXT, "anonymous_id": TEXT,
        "sent_user_id": TEXT, "group_id": TEXT, "account_id": TEXT, "attribution": TEXT, "unit_id": TEXT,
        "role": TEXT, "product": TEXT, "object_id": TEXT, "actor_kind": TEXT, "timestamp": TIME,
        "original_timestamp": TIME, "sent_at": TIME, "received_at": TIME, "properties": JSON, "traits": JSON,
        "context": JSON, "source": TEXT,
    },
    # --- ingestion bookkeeping ---
    # the message id of every event loaded, and its hash: what a load deduplicates against
    # (ingest/pipeline.py `dedup`); no account or user column, so a book reads it as empty
    "event_ids": {"id_hash": "UBIGINT", "message_id": TEXT},
    # where each user's SDK membership replay stands (model/memberships.py `rebuild_from_sdk`)
    "membership_states": {"user_id": TEXT, "last_timestamp": TIME, "last_message_id": TEXT, "state": JSON},
    "quarantine": {
        "quarantine_id": INT, "message_id": TEXT, "reason": TEXT, "raw": JSON, "received_at": TIME,
        "source": TEXT, "quarantined_at": TIME, "replayed_at": TIME,
    },
    "ingest_segments": {
        "segment": TEXT, "loaded_at": TIME, "received": INT, "inserted": INT, "duplicates": INT,
        "quarantined": INT,
    },
    "imports": {
        "import_id": INT, "kind": TEXT, "file": TEXT, "rows": INT, "inserted": INT, "quarantined": INT,
        "imported_at": TIME,
    },
    "ingest_warnings": {
        "message_id": TEXT, "warning": TEXT, "value": TEXT, "client": TEXT, "source": TEXT,
        "received_at": TIME, "recorded_at": TIME,
    },
    "schema_version": {"version": "INTEGER", "description": TEXT, "applied_at": TIME},
    # events as a lake (store/lake.py): file moves owed by committed transactions, and state
    "lake_moves": {"batch": TEXT, "seq": INT, "staged": TEXT, "target": TEXT},
    "lake_state": {"key": TEXT, "value": TEXT},
    # --- governance (docs/governance.md) ---
    "workspace_secrets": {"name": TEXT, "value": TEXT},
    "suppressed_users": {"subject_hash": TEXT, "kind": TEXT, "suppressed_at": TIME},
    # --- alerts and their deliveries (docs/alerts.md) ---
    "alerts": {
        "alert_id": TEXT, "rule": TEXT, "kind": TEXT, "account_id": TEXT, "account_name": TEXT,
        "period": TEXT, "as_of": DAY, "severity": TEXT, "title": TEXT, "evidence": JSON,
        "action": TEXT, "owner": TEXT, "created_at": TIME,
    },
    "alert_deliveries": {
        "alert_id": TEXT, "account_id": TEXT, "webhook": TEXT, "state": TEXT, "attempts": INT,
        "next_attempt_at": TIME, "last_error": TEXT, "delivered_at": TIME,
    },
    # --- the tracking plan and its violations (docs/quality.md, "Tracking plan") ---
    "tracking_plans": {
        "version": INT, "kind": TEXT, "name": TEXT, "schema": JSON, "changed_by": TEXT,
        "changed_at": TIME, "note": TEXT,
    },
    "plan_violations": {
        "message_id": TEXT, "type": TEXT, "event": TEXT, "rule": TEXT, "property": TEXT,
        "message": TEXT, "library": TEXT, "library_version": TEXT, "plan_version": INT,
        "quarantined": "BOOLEAN", "recorded_at": TIME,
    },
    # --- attribution rule sets (docs/attribution.md, "Rule sets") ---
    "attribution_rule_versions": {
        "version": INT, "name": TEXT, "rules": JSON, "based_on": INT, "created_by": TEXT,
        "created_at": TIME, "note": TEXT,
    },
    "attribution_rule_changes": {
        "version": INT, "action": TEXT, "actor": TEXT, "changed_at": TIME, "detail": JSON,
    },
    # --- account-level experiments (docs/experiments.md) ---
    "experiments": {
        "experiment": TEXT, "variants": JSON, "salt": TEXT, "stratify_by": TEXT, "description": TEXT,
        "created_by": TEXT, "created_at": TIME,
    },
    "experiment_assignments": {
        "experiment": TEXT, "account_id": TEXT, "variant": TEXT, "stratum": TEXT, "assigned_at": TIME,
    },
    "experiment_exposures": {
        "account_id": TEXT, "experiment": TEXT, "variant": TEXT, "exposed_at": TIME, "user_id": TEXT,
    },
    # --- kept with the daily rollup ---
    ROLLUP: {
        "day": DAY, "account_id": TEXT, "user_id": TEXT, "unit_id": TEXT, "role": TEXT, "name": TEXT,
        "product": TEXT, "actor_kind": TEXT, "events": INT, "first_at": TIME, "last_at": TIME,
    },
    FIRSTS: {"account_id": TEXT, "first_day": DAY, "first_at": TIME},
    USER_FIRSTS: {"account_id": TEXT, "user_id": TEXT, "name": TEXT, "first_day": DAY, "first_at": TIME},
    ACCOUNT_DAYS: {"day": DAY, "account_id": TEXT, "events": INT, "first_at": TIME, "last_at": TIME, "users": INT},
    INVITES: {
        "day": DAY, "message_id": TEXT, "account_id": TEXT, "user_id": TEXT, "unit_id": TEXT, "role": TEXT,
        "timestamp": TIME, "actor_kind": TEXT, "invitee_email": TEXT,
    },
    INVITES_SOURCE: {"event": TEXT, "property": TEXT},
    STATE: {"key": TEXT, "value": INT},
}

# The Ibis type of each column type (timestamps are UTC instants).
TS = "timestamp('UTC')"
_IBIS_TYPES = {TEXT: "string", INT: "int64", "INTEGER": "int32", "UBIGINT": "uint64", FLOAT: "float64",
               DAY: "date", TIME: TS, JSON: "json"}


def columns(name: str) -> dict[str, str]:
    """The columns of table `name` and their (DuckDB) types."""
    return TABLES[name]


def ibis_schema(name: str) -> dict[str, str]:
    return {column: _IBIS_TYPES[kind] for column, kind in TABLES[name].items()}


def table(name: str) -> ir.Table:
    """An unbound Ibis table of the store: metrics are engine-independent expressions."""
    import ibis

    return ibis.table(ibis_schema(name), name=name)
