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


def extract(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Pull typed fields out of the raw JSON (DuckDB does the parsing, vectorized)."""
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _parsed AS
        WITH base AS (
            SELECT line_no, raw, source, received_fallback,
                   CASE WHEN raw IS NULL THEN NULL ELSE json_type(raw) END AS json_kind,
                   lower(raw->>'type') AS type,
                   raw->>'messageId' AS given_message_id,
                   nullif(CAST(raw->>'userId' AS VARCHAR), '') AS sent_user_id,
                   nullif(CAST(raw->>'anonymousId' AS VARCHAR), '') AS anonymous_id,
                   nullif(raw->>'previousId', '') AS previous_id,
                   nullif(coalesce(raw->'context'->>'groupId',
                       CASE WHEN lower(raw->>'type') = 'group' THEN raw->>'groupId' END), '')
                       AS group_id,
                   raw->>'event' AS event_name,
                   coalesce(raw->>'name', raw->'properties'->>'name') AS page_name,
                   raw->'properties' AS properties,
                   coalesce(raw->'traits', raw->'context'->'traits') AS traits,
                   raw->'context' AS context,
                   coalesce(raw->>'originalTimestamp', raw->>'timestamp') AS ts_text,
                   raw->>'sentAt' AS sent_text,
                   raw->>'receivedAt' AS received_text
            FROM {STAGING}
        )
        SELECT *,
               coalesce(given_message_id, 'h-' || md5(CAST(raw AS VARCHAR))) AS message_id,
               CASE WHEN type = 'track' THEN event_name ELSE page_name END AS name,
               TRY_CAST(ts_text AS TIMESTAMPTZ) AS original_timestamp,
               TRY_CAST(sent_text AS TIMESTAMPTZ) AS sent_at,
               coalesce(TRY_CAST(received_text AS TIMESTAMPTZ), received_fallback) AS received_at,
               json_extract_string(properties, ?) AS object_id,
               json_extract_string(properties, ?) AS product,
               CASE WHEN properties->>'actor_kind' = 'automation'
                         OR (sent_user_id IS NULL AND group_id IS NOT NULL)
                    THEN 'automation' ELSE 'human' END AS actor_kind
        FROM base
        """,
        [_json_path(cfg.object_id_property), _json_path(cfg.product_property)],
    )
    result.received = store.scalar("SELECT count(*) FROM _parsed")


def validate(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Give every event either no reason (valid) or the first reason it cannot be loaded."""
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT *, CASE
            WHEN raw IS NULL THEN 'invalid JSON'
            WHEN json_kind <> 'OBJECT' THEN 'event is not a JSON object'
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
        """
    )


def correct_timestamps(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """timestamp = receivedAt − (sentAt − originalTimestamp) when the client sent `sentAt` (SPEC §4)."""
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _timed AS
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
        """
        INSERT INTO quarantine
        SELECT nextval('quarantine_seq'), message_id, reason,
               coalesce(raw, to_json(source)), received_at, source, now(), NULL
        FROM (
            SELECT * FROM _checked c WHERE reason IS NOT NULL
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
        SELECT * FROM _timed t
        WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = t.message_id)
        QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY line_no) = 1
        """
    )
    new = store.scalar("SELECT count(*) FROM _new")
    result.duplicates = result.received - result.quarantined - new
    result.inserted = new


def write_events(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    store.execute(
        """
        INSERT INTO events
        SELECT message_id, type, name, sent_user_id, anonymous_id, sent_user_id, group_id,
               NULL, 'pending', NULL, NULL, product, object_id, actor_kind,
               timestamp, original_timestamp, sent_at, received_at,
               properties, traits, context, source
        FROM _new
        """
    )


def update_profiles(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Users, accounts and identities learned from identify/group/alias calls."""
    profiles.apply_new_events(store, "_new")


def derive_memberships(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    memberships.rebuild_from_sdk(store, "SELECT DISTINCT sent_user_id FROM _new "
                                        "WHERE type IN ('identify', 'group')")


def attribute(store: Store, cfg: IngestSection, result: LoadResult) -> None:
    """Resolve account, unit and role of the new events and of events whose inputs changed."""
    attribution.attribute(
        store,
        scope_sql="""
            SELECT message_id FROM _new
            UNION
            SELECT e.message_id FROM events e
            WHERE e.user_id IN (SELECT sent_user_id FROM _new WHERE type IN ('identify', 'group'))
               OR e.anonymous_id IN (SELECT anonymous_id FROM _new WHERE type IN ('identify', 'alias'))
               OR e.anonymous_id IN (SELECT previous_id FROM _new WHERE type = 'alias')
        """,
    )


Step = Callable[[Store, IngestSection, LoadResult], None]

STEPS: list[Step] = [
    extract,
    validate,
    correct_timestamps,
    quarantine,
    dedup,
    write_events,
    update_profiles,
    derive_memberships,
    attribute,
]


def run_pipeline(store: Store, cfg: IngestSection) -> LoadResult:
    """Run every step over `_staging`; the caller holds the transaction."""
    result = LoadResult()
    for step in STEPS:
        step(store, cfg, result)
    for table in ("_parsed", "_checked", "_timed", "_new"):
        store.execute(f"DROP TABLE IF EXISTS {table}")
    return result
