"""The load pipeline: raw JSON events → validated, timestamp-corrected, deduplicated, attributed rows.

Every source (the collector's durable log, bulk imports, quarantine replay) fills a staging
table `_staging(line_no, raw, source, received_fallback)` and calls `run_pipeline`. The steps are
small SQL functions run in order inside the caller's transaction, so a load is all-or-nothing
and can be repeated without effect (dedup by message id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from accountlens.config import IngestSection
from accountlens.model import attribution, memberships, profiles
from accountlens.metrics.rollup import update_daily_rollup
from accountlens.store.base import Store

STAGING = "_staging"


@dataclass
class LoadResult:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: LoadResult) -> None:
        self.received += other.received
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        for reason, count in other.quarantine_reasons.items():
            self.quarantine_reasons[reason] = self.quarantine_reasons.get(reason, 0) + count


def _json_path(prop: str) -> str:
    return '$."' + prop.replace('"', '\\"') + '"'




# Text fields pulled out of every raw event in one JSON parse (list extraction).
_TEXT_PATHS = [
    "$.type", "$.messageId", "$.userId", "$.anonymousId", "$.previousId", "$.context.groupId",
    "$.groupId", "$.event", "$.name", "$.properties.name", "$.originalTimestamp", "$.timestamp",
    "$.sentAt", "$.receivedAt", "$.properties.actor_kind",
]
_JSON_PATHS = ["$.properties", "$.traits", "$.context.traits", "$.context"]


def extract(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Pull typed fields out of the raw JSON (DuckDB does the parsing, vectorized)."""
    text = ", ".join(f"'{p}'" for p in _TEXT_PATHS)
    nested = ", ".join(f"'{p}'" for p in _JSON_PATHS)
    store.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _parsed AS
        WITH lists AS (
            SELECT line_no, raw, source, received_fallback,
                   json_extract_string(raw, [{text}]) AS t,
                   json_extract(raw, [{nested}]) AS j
            FROM {STAGING}
        ),
        base AS (
            SELECT line_no, raw, source, received_fallback,
                   lower(t[1]) AS type, t[2] AS given_message_id,
                   nullif(t[3], '') AS sent_user_id, nullif(t[4], '') AS anonymous_id,
                   nullif(t[5], '') AS previous_id,
                   nullif(coalesce(t[6], CASE WHEN lower(t[1]) = 'group' THEN t[7] END), '')
                       AS group_id,
                   t[8] AS event_name, coalesce(t[9], t[10]) AS page_name,
                   j[1] AS properties, coalesce(j[2], j[3]) AS traits, j[4] AS context,
                   coalesce(t[11], t[12]) AS ts_text, t[13] AS sent_text, t[14] AS received_text,
                   t[15] AS actor_kind_property
            FROM lists
        )
        SELECT *,
               -- hashing the raw event is costly: only for events without a message id
               CASE WHEN given_message_id IS NULL THEN 'h-' || md5(CAST(raw AS VARCHAR))
                    ELSE given_message_id END AS message_id,
               CASE WHEN type = 'track' THEN event_name ELSE page_name END AS name,
               TRY_CAST(ts_text AS TIMESTAMPTZ) AS original_timestamp,
               TRY_CAST(sent_text AS TIMESTAMPTZ) AS sent_at,
               coalesce(TRY_CAST(received_text AS TIMESTAMPTZ), received_fallback) AS received_at,
               CASE WHEN actor_kind_property = 'automation'
                         OR (sent_user_id IS NULL AND group_id IS NOT NULL)
                    THEN 'automation' ELSE 'human' END AS actor_kind
        FROM base
        """
    )


def validate(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Give every event either no reason (valid) or the first reason it cannot be loaded.

    This is where the parsed batch is materialized, once, without the raw JSON.
    """
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT * EXCLUDE (raw),
            json_extract_string(properties, ?) AS object_id,
            json_extract_string(properties, ?) AS product,
            CASE
            WHEN raw IS NULL THEN 'invalid JSON'
            WHEN type IS NULL THEN 'missing type'
            WHEN type NOT IN ('track', 'page', 'screen', 'identify', 'group', 'alias')
                THEN 'unknown type ' || type
            WHEN ts_text IS NOT NULL AND original_timestamp IS NULL
                THEN 'invalid timestamp ' || ts_text
            WHEN sent_text IS NOT NULL AND sent_at IS NULL THEN 'invalid sentAt ' || sent_text
            WHEN received_at IS NULL THEN 'invalid receivedAt ' || received_text
            WHEN type = 'track' AND coalesce(event_name, '') = '' THEN 'track without event name'
            WHEN type = 'group' AND group_id IS NULL THEN 'group without groupId'
            WHEN type = 'alias' AND (previous_id IS NULL OR sent_user_id IS NULL)
                THEN 'alias without previousId and userId'
            WHEN type = 'identify' AND sent_user_id IS NULL AND anonymous_id IS NULL
                THEN 'identify without userId or anonymousId'
            WHEN sent_user_id IS NULL AND anonymous_id IS NULL AND group_id IS NULL
                THEN 'no userId, anonymousId or groupId'
            END AS reason
        FROM _parsed
        """,
        [_json_path(cfg.object_id_property), _json_path(cfg.product_property)],
    )
    result.received = store.scalar("SELECT count(*) FROM _checked")


def correct_timestamps(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """timestamp = receivedAt − (sentAt − originalTimestamp) when the client sent `sentAt` (SPEC §4)."""
    store.execute(
        """
        CREATE OR REPLACE TEMP VIEW _timed AS
        SELECT *, CASE
            WHEN sent_at IS NOT NULL AND original_timestamp IS NOT NULL AND received_text IS NOT NULL
                THEN received_at - (sent_at - original_timestamp)
            ELSE coalesce(original_timestamp, received_at)
            END AS timestamp
        FROM _checked WHERE reason IS NULL
        """
    )


def quarantine(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Invalid events are kept with their reason, once per message id, never dropped."""
    rows = store.arrow(
        "SELECT reason, count(*) AS n FROM _checked WHERE reason IS NOT NULL GROUP BY reason"
    ).to_pylist()
    result.quarantine_reasons = {row["reason"]: row["n"] for row in rows}
    result.quarantined = sum(result.quarantine_reasons.values())
    if not result.quarantined:
        return
    store.execute(
        f"""
        INSERT INTO quarantine
        SELECT nextval('quarantine_seq'), message_id, reason,
               coalesce(raw, to_json(source)), received_at, source, now(), NULL
        FROM (
            SELECT c.*, s.raw FROM _checked c JOIN {STAGING} s USING (line_no)
            WHERE reason IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM quarantine q
                              WHERE q.message_id = c.message_id AND q.replayed_at IS NULL)
            QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY line_no) = 1
        )
        """
    )


def dedup(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Keep the first copy of each message id in the batch and drop ids already stored."""
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _new AS
        WITH firsts AS (
            SELECT * FROM _timed
            QUALIFY line_no = min(line_no) OVER (PARTITION BY message_id)
        )
        -- a hash anti-join: cheap even against many millions of stored events
        SELECT * FROM firsts t
        WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = t.message_id)
        """
    )
    new = store.scalar("SELECT count(*) FROM _new")
    result.duplicates = result.received - result.quarantined - new
    result.inserted = new


def update_profiles(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Users, accounts and identities learned from identify/group/alias calls."""
    profiles.apply_new_events(store, "_new")


def derive_memberships(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    changed = memberships.rebuild_from_sdk(store, "_new")
    if changed:
        store.execute(
            "INSERT INTO _changed_users SELECT unnest(?) EXCEPT SELECT user_id FROM _changed_users",
            [changed],
        )


def attribute_new(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Resolve account, unit and role of the new events before they are written."""
    attribution.resolve(store, "SELECT line_no AS key, * EXCLUDE (line_no) FROM _new")


def write_events(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    store.execute(
        """
        INSERT INTO events
        SELECT n.message_id, n.type, n.name, r.uid, n.anonymous_id, n.sent_user_id, n.group_id,
               r.account_id, r.attribution, r.unit_id, r.role, n.product, n.object_id,
               n.actor_kind, n.timestamp, n.original_timestamp, n.sent_at, n.received_at,
               n.properties, n.traits, n.context, n.source
        FROM _new n JOIN _attr_result r ON r.key = n.line_no
        """
    )
    store.execute("DROP TABLE _attr_result")


def reattribute_changed(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Earlier events of users whose memberships, email or identity just changed."""
    if not store.scalar(
        "SELECT (SELECT count(*) FROM _changed_users) + (SELECT count(*) FROM _new_identities)"
    ):
        return
    attribution.attribute(
        store,
        """message_id NOT IN (SELECT message_id FROM _new) AND (
               user_id IN (SELECT user_id FROM _changed_users)
            OR sent_user_id IN (SELECT user_id FROM _changed_users)
            OR anonymous_id IN (SELECT anonymous_id FROM _new_identities))""",
    )


Step = Callable[[Store, IngestSection, LoadResult], None]

STEPS: list[Step] = [
    extract,
    validate,
    correct_timestamps,
    quarantine,
    dedup,
    update_profiles,
    derive_memberships,
    attribute_new,
    write_events,
    reattribute_changed,
    update_daily_rollup,
]


def run_pipeline(store: Store, cfg: IngestSection) -> LoadResult:
    """Run every step over `_staging`; the caller holds the transaction."""
    result = LoadResult()
    for step in STEPS:
        step(store, cfg, result)
    store.execute("DROP VIEW IF EXISTS _timed")
    store.execute("DROP VIEW IF EXISTS _parsed")
    store.execute("DROP TABLE IF EXISTS _checked")
    for table in ("_new", "_changed_users", "_new_identities"):
        store.execute(f"DROP TABLE IF EXISTS {table}")
    return result
