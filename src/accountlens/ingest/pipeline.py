"""The load pipeline: raw JSON events → validated, timestamp-corrected, deduplicated, attributed rows.

Every source (the collector's durable log, bulk imports, quarantine replay) fills a staging
table `_staging(line_no, raw, source, received_fallback)` and calls `run_pipeline`. The steps
are small SQL functions run in order inside the caller's transaction, so a load is
all-or-nothing and can be repeated without effect (dedup by message id).

The raw JSON is parsed once, into `_checked` (every column of the events table, plus the reason
an event cannot be loaded); the later steps work on the narrow `_new` (the rows to insert, with
only what profiles, memberships and attribution need), and the write joins the two. Staging
only reads and numbers the raw lines (by row id: see `number_lines`); reading and parsing run
on every core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from accountlens.config import IngestSection
from accountlens.ingest import privacy
from accountlens.model import attribution, memberships, profiles, rollup
from accountlens.model.entities import EVENT_TYPES
from accountlens.store import lake as store_lake
from accountlens.store.base import WritableStore

STAGING = "_staging"

# Fields that hold a type, an id or a name: a string, or a number (its decimal text, every digit
# kept: Segment SDKs send numeric userIds). An object, array or boolean there is quarantined with
# the field's name, not stored as its JSON text.
_SCALAR_FIELDS = ("type", "messageId", "userId", "anonymousId", "previousId", "groupId", "event",
                  "name")
_OBJECT_FIELDS = ("properties", "traits", "context")  # JSON objects, when present
# The top-level fields of an event, parsed from the raw JSON in one pass (`from_json`).
_EVENT_SHAPE = orjson.dumps({
    **dict.fromkeys(_SCALAR_FIELDS, "VARCHAR"),
    **dict.fromkeys(("originalTimestamp", "timestamp", "sentAt", "receivedAt"), "VARCHAR"),
    **dict.fromkeys(_OBJECT_FIELDS, "JSON"),
}).decode()
_CONTEXT_SHAPE = orjson.dumps({"groupId": "VARCHAR", "traits": "JSON"}).decode()


def _json_kind(value: str) -> str:
    """SQL: the JSON kind of `value` (a JSON value, or the text `from_json` made of one; not
    null), from its first character."""
    return (f"CASE left({value}, 1) WHEN '{{' THEN 'object' WHEN '[' THEN 'array' "
            f"WHEN '\"' THEN 'string' WHEN 't' THEN 'boolean' WHEN 'f' THEN 'boolean' "
            "ELSE 'number' END")


def _type_checks() -> str:
    """SQL: the first field of the wrong JSON kind, as a quarantine reason (else NULL).

    `from_json` gives a scalar field as text whatever its kind (an object as its JSON text,
    true as 'true'); only text that could be such a value is looked up again in the JSON
    (`json_type`), which keeps the check cheap for ordinary events."""
    scalars = [(f, "raw", f"$.{f}", f) for f in _SCALAR_FIELDS]
    scalars.append(("c.groupId", "context", "$.groupId", "context.groupId"))
    # what an object, array or boolean turns into: text starting with { or [ (tested by the
    # character's code: ord is the cheapest test measured), or true / false
    suspect = {text: f"(ord({text}) IN (123, 91) OR {text} IN ('true', 'false'))"
               for text, *_ in scalars}
    checks = [f"CASE WHEN {suspect[text]} AND json_type({doc}, '{path}') IN ('OBJECT', 'ARRAY', "
              f"'BOOLEAN') THEN '{label} must be a string or number, got ' || {_json_kind(text)} "
              "END" for text, doc, path, label in scalars]
    objects = [(f, f) for f in _OBJECT_FIELDS] + [("c.traits", "context.traits")]
    # One test of all the scalar fields first, then each on the (rare) rows it lets through:
    # on 1M events the checks cost 0.3 s of CPU, 0.5 s as one CASE per field.
    return ("coalesce(CASE WHEN " + " OR ".join(suspect.values()) + " THEN coalesce("
            + ",\n".join(checks) + ") END,\n"
            + ",\n".join(f"CASE WHEN NOT starts_with({column}, '{{') THEN '{label} must be an "
                          f"object, got ' || {_json_kind(column)} END" for column, label in objects)
            + ")")


_TYPE_CHECKS = _type_checks()
# Timestamps outside 4-digit years are quarantined before any arithmetic: DuckDB accepts
# 'infinity' and years up to 294247, and `receivedAt − (sentAt − timestamp)` over them raises
# an error (failing the whole load, every time) instead of giving a value. Within these years
# the correction stays within DuckDB's range (±290,000 years).
_FIRST, _LAST = "TIMESTAMPTZ '0001-01-01 00:00:00+00'", "TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"
_ISO = "'%Y-%m-%dT%H:%M:%SZ'"  # how reasons show a timestamp
FUTURE_TIMESTAMP = "timestamp in the future"  # the ingestion warning of a clamped timestamp
_EVENT_TYPES = ", ".join(f"'{kind}'" for kind in EVENT_TYPES)  # SQL list of the known types
# Reasons that mean the line itself is not an event (a bulk import refuses the file for them).
MALFORMED = ("invalid JSON", "not a JSON object")


@dataclass
class LoadResult:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    # inserted events stored with a warning (`ingest_warnings`), by warning
    warnings: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0  # events of deleted people refused (docs/privacy.md), stored nowhere

    def add(self, other: LoadResult) -> None:
        self.received += other.received
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.suppressed += other.suppressed
        for reason, count in other.quarantine_reasons.items():
            self.quarantine_reasons[reason] = self.quarantine_reasons.get(reason, 0) + count
        for warning, count in other.warnings.items():
            self.warnings[warning] = self.warnings.get(warning, 0) + count


@dataclass
class Batch:
    """One run of the pipeline: how its events are labelled, and what became of them."""

    # When set, a staged event without a `source` gets `label:line_no`.
    label: str | None = None
    result: LoadResult = field(default_factory=LoadResult)
    # Told the name of each step as it starts (a progress bar: ingest/progress.py).
    on_step: Callable[[str], None] | None = None


def stage_jsonl(store: WritableStore, paths: list[Path], source_prefix: str | None = None,
                names: list[str] | None = None) -> None:
    """Stage the lines of JSONL files, in order (DuckDB validates the JSON; blank lines are
    skipped). With `source_prefix`, each event's source is the prefix and its file's name in
    `names` (one per path; default the file names)."""
    files = [str(path) for path in paths]
    names = names if names is not None else [path.name for path in paths]
    # One thread: DuckDB's JSON reader holds a 32 MiB buffer per thread (and per file being
    # read), so two threads reading a loader batch of small segments need 64-96 MiB besides the
    # rows, past the loader's small ingest memory limit. Splitting lines is memory bound: one
    # thread reads as fast (a 300 MB file in 0.4 s either way on 2 cores).
    with store.write_lock, store.setting("threads", "1"):
        store.execute(
            f"""CREATE OR REPLACE TEMP TABLE {STAGING} AS
                SELECT NULL::BIGINT AS line_no, json AS raw,
                       ? || list_extract(?, list_position(?, filename)) AS source,
                       now() AS received_fallback
                FROM read_ndjson_objects(?, filename = true)""",
            [source_prefix, names, files, files],
        )
    number_lines(store)


def number_lines(store: WritableStore, source: tuple[str, int] | None = None) -> None:
    """Number the staged rows 1, 2, … in the order they were read. The reader keeps the files'
    order (DuckDB preserves insertion order), and the new table's row ids follow it, one apart
    from a base (which is not 0 inside a transaction): numbering by row id is exact, and unlike
    `row_number() OVER ()` needs no sort. A test checks this on files of several of the
    reader's buffers each.

    `source` (label, offset): each row's source becomes `label:<line_no + offset>`."""
    line_no = f"rowid - (SELECT min(rowid) FROM {STAGING}) + 1"
    if source is None:
        store.execute(f"UPDATE {STAGING} SET line_no = {line_no}")
    else:
        store.execute(f"UPDATE {STAGING} SET line_no = {line_no}, source = ? || ':' || ({line_no} + ?)",
                      list(source))


def _json_path(prop: str) -> str:
    return '$."' + prop.replace('"', '\\"') + '"'


def parse(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """Parse the raw JSON once (vectorized, in DuckDB) into typed columns, correct timestamps
    (SPEC §4: `timestamp = receivedAt − (sentAt − originalTimestamp)` when `sentAt` is present)
    and give every event either no reason (valid) or the first reason it cannot be loaded.

    Timestamps must be plausible: one more than `future_tolerance_seconds` after its receive
    time is set to the receive time (`warning`; the original stays in `original_timestamp`),
    one before `earliest_timestamp` is quarantined, as are years outside 0001–9999.

    The raw text is kept only where it is still needed: for quarantine, and to derive a stable
    message id for events that came without one. The `ingest.pii` actions apply to properties,
    traits and context.traits before anything reads them (ingest/privacy.py)."""
    property_paths = ["$.name", "$.actor_kind", _json_path(cfg.object_id_property),
                      _json_path(cfg.product_property)]
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _checked AS
        WITH parsed AS (
            SELECT line_no, raw, source, received_fallback, e.*
            FROM (SELECT *, from_json(raw, '{_EVENT_SHAPE}') AS e FROM {STAGING})
        ),
        fields AS (
            SELECT *, json_extract_string(properties, $property_paths) AS p,
                   from_json(context, '{_CONTEXT_SHAPE}') AS c
            FROM {privacy.protected("parsed", cfg.pii)}
        ),
        base AS (
            SELECT line_no, raw, source, received_fallback, {_TYPE_CHECKS} AS wrong_type,
                   lower(type) AS type, messageId AS given_message_id,
                   nullif(userId, '') AS sent_user_id, nullif(anonymousId, '') AS anonymous_id,
                   nullif(previousId, '') AS previous_id,
                   nullif(coalesce(c.groupId, CASE WHEN lower(type) = 'group' THEN groupId END), '')
                       AS group_id,
                   event AS event_name, coalesce(name, p[1]) AS page_name,
                   properties, coalesce(traits, c.traits) AS traits, context,
                   coalesce(originalTimestamp, timestamp) AS ts_text, sentAt AS sent_text,
                   receivedAt AS received_text, p[2] AS actor_kind_property,
                   p[3] AS object_id, p[4] AS product
            FROM fields
        ),
        typed AS (
            SELECT *,
                   TRY_CAST(ts_text AS TIMESTAMPTZ) AS original_timestamp,
                   TRY_CAST(sent_text AS TIMESTAMPTZ) AS sent_at,
                   coalesce(TRY_CAST(received_text AS TIMESTAMPTZ), received_fallback) AS received_at
            FROM base
        ),
        ranged AS (
            SELECT *,
                   original_timestamp NOT BETWEEN {_FIRST} AND {_LAST} AS ts_out_of_range,
                   sent_at NOT BETWEEN {_FIRST} AND {_LAST} AS sent_out_of_range,
                   received_at NOT BETWEEN {_FIRST} AND now() + to_microseconds($tolerance)
                       AS received_out_of_range,
                   sent_at IS NOT NULL AND original_timestamp IS NOT NULL
                       AND received_text IS NOT NULL AS skew_corrected
            FROM typed
        ),
        corrected AS (
            SELECT *,
                   CASE WHEN ts_out_of_range OR sent_out_of_range OR received_out_of_range THEN NULL
                        WHEN skew_corrected THEN received_at - (sent_at - original_timestamp)
                        ELSE coalesce(original_timestamp, received_at) END AS corrected_timestamp
            FROM ranged
        ),
        clamped AS (
            SELECT *, CASE WHEN in_future THEN received_at ELSE corrected_timestamp END
                          AS final_timestamp
            FROM (SELECT *, corrected_timestamp > received_at + to_microseconds($tolerance)
                                AS in_future
                  FROM corrected)
        ),
        checked AS (
            SELECT *, CASE
                WHEN raw IS NULL THEN 'invalid JSON'
                -- the reader validated the JSON and trimmed it: an object starts with a brace
                WHEN left(raw, 1) <> '{{' THEN 'not a JSON object'
                WHEN wrong_type IS NOT NULL THEN wrong_type
                WHEN type IS NULL THEN 'missing type'
                WHEN type NOT IN ({_EVENT_TYPES}) THEN 'unknown type ' || type
                WHEN ts_text IS NOT NULL AND original_timestamp IS NULL
                    THEN 'invalid timestamp ' || ts_text
                WHEN sent_text IS NOT NULL AND sent_at IS NULL THEN 'invalid sentAt ' || sent_text
                WHEN received_at IS NULL THEN 'invalid receivedAt ' || received_text
                WHEN ts_out_of_range THEN 'timestamp ' || ts_text || ' outside the years 0001-9999'
                WHEN sent_out_of_range THEN 'sentAt ' || sent_text || ' outside the years 0001-9999'
                WHEN received_out_of_range THEN 'receivedAt ' || received_text
                    || CASE WHEN received_at < {_FIRST} THEN ' before the year 0001'
                            ELSE ' later than the time it is loaded' END
                WHEN final_timestamp < $earliest
                    THEN CASE WHEN ts_text IS NULL THEN 'receivedAt ' || received_text
                              ELSE 'timestamp ' || ts_text END
                         || CASE WHEN skew_corrected
                                 THEN ' (' || strftime(final_timestamp, {_ISO}) || ' corrected by sentAt '
                                      || sent_text || ')' ELSE '' END
                         || ' before ingest.earliest_timestamp ' || strftime($earliest, {_ISO})
                WHEN type = 'track' AND coalesce(event_name, '') = '' THEN 'track without event name'
                WHEN type = 'group' AND group_id IS NULL THEN 'group without groupId'
                WHEN type = 'alias' AND (previous_id IS NULL OR sent_user_id IS NULL)
                    THEN 'alias without previousId and userId'
                WHEN type = 'identify' AND sent_user_id IS NULL AND anonymous_id IS NULL
                    THEN 'identify without userId or anonymousId'
                WHEN sent_user_id IS NULL AND anonymous_id IS NULL AND group_id IS NULL
                    THEN 'no userId, anonymousId or groupId'
                END AS reason
            FROM clamped
        )
        SELECT line_no, source, type, sent_user_id, anonymous_id, previous_id, group_id,
               -- hashing the raw event is costly: only for events without a message id
               CASE WHEN given_message_id IS NULL THEN 'h-' || md5(CAST(raw AS VARCHAR))
                    ELSE given_message_id END AS message_id,
               CASE WHEN type = 'track' THEN event_name ELSE page_name END AS name,
               properties, traits, context, object_id, product,
               original_timestamp, sent_at, received_at, final_timestamp AS timestamp,
               CASE WHEN actor_kind_property = 'automation'
                         OR (sent_user_id IS NULL AND group_id IS NOT NULL)
                    THEN 'automation' ELSE 'human' END AS actor_kind,
               reason,
               CASE WHEN reason IS NULL AND in_future THEN '{FUTURE_TIMESTAMP}' END AS warning,
               CASE WHEN reason IS NOT NULL THEN raw END AS raw,
               CASE WHEN reason IS NULL AND in_future THEN ts_text END AS warned_value
        FROM checked
        """,
        {"property_paths": property_paths, "earliest": cfg.earliest_timestamp,
         "tolerance": round(cfg.future_tolerance_seconds * 1_000_000), **privacy.parameters(cfg.pii)},
    )
    batch.result.received = store.scalar("SELECT count(*) FROM _checked")
    # Personal data (docs/privacy.md), before any step stores anything: events of deleted
    # people (the suppression list) are dropped, counted and kept nowhere, not even in
    # quarantine; the `ingest.pii` actions reach the raw JSON kept for quarantine too. (Part
    # of `parse`, not a step of its own, so the progress bar's steps stay as they are.)
    batch.result.suppressed = privacy.drop_suppressed(store, "_checked")
    privacy.protect_quarantined(store, cfg.pii, "_checked")


def _source_column(batch: Batch) -> tuple[str, list]:
    """SQL for the `source` of a `_checked c` row, and its parameters."""
    if batch.label is None:
        return "c.source", []
    return "coalesce(c.source, ? || ':' || c.line_no)", [batch.label]


def quarantine(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """Invalid events are kept with their reason, once per message id, never dropped."""
    result = batch.result
    rows = store.arrow(
        "SELECT reason, count(*) AS n FROM _checked WHERE reason IS NOT NULL GROUP BY reason"
    ).to_pylist()
    result.quarantine_reasons = {row["reason"]: row["n"] for row in rows}
    result.quarantined = sum(result.quarantine_reasons.values())
    if not result.quarantined:
        return
    source, params = _source_column(batch)
    store.execute(
        f"""
        INSERT INTO quarantine
        SELECT nextval('quarantine_seq'), message_id, reason,
               coalesce(raw, to_json(source)), received_at, source, now(), NULL
        FROM (
            SELECT c.* REPLACE ({source} AS source) FROM _checked c
            WHERE reason IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM quarantine q
                              WHERE q.message_id = c.message_id AND q.replayed_at IS NULL)
            QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY c.line_no) = 1
        )
        """,
        params,
    )


# The 64-bit hash of a message id that `event_ids` keeps (store/schema.py, the migration
# "message id index for deduplication", computes the same for the events stored before it).
MESSAGE_ID_HASH = "CAST('0x' || left(md5(message_id), 16) AS UBIGINT)"


def dedup(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """`_new`: the valid events to insert — the first copy of each message id in the batch, and
    none already stored — with the columns profiles, memberships and attribution read.

    Stored message ids are looked up in `event_ids`, not in the events table: the batch's
    hashes are compared with its 8-byte `id_hash` column alone, and message ids are read (and
    compared, so a hash collision never drops an event) only for the rows whose hash matched,
    which DuckDB fetches by themselves (the filter on the hash is pushed into the scan). At 10M
    stored events this took 0.1 s per 160,000-event batch against 0.8-4 s for an anti-join
    with the events table's message ids."""
    store.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _batch_ids AS
        WITH repeated AS (  -- usually empty: grouping is cheaper than a window over every row
            SELECT message_id, min(line_no) AS first_line FROM _checked
            WHERE reason IS NULL GROUP BY message_id HAVING count(*) > 1
        )
        SELECT line_no, message_id, {MESSAGE_ID_HASH} AS id_hash
        FROM _checked c
        WHERE reason IS NULL
          AND NOT EXISTS (SELECT 1 FROM repeated r
                          WHERE r.message_id = c.message_id AND r.first_line <> c.line_no)
        """
    )
    store.execute(
        """
        CREATE OR REPLACE TEMP TABLE _new AS
        WITH stored AS (  -- the stored ids whose hash is one of the batch's: usually none
            SELECT id_hash, message_id FROM event_ids
            WHERE id_hash IN (SELECT id_hash FROM _batch_ids)
        )
        SELECT c.line_no, c.message_id, c.type, c.sent_user_id, c.anonymous_id, c.previous_id,
               c.group_id, c.timestamp, c.traits, b.id_hash
        FROM _checked c JOIN _batch_ids b USING (line_no)
        WHERE NOT EXISTS (SELECT 1 FROM stored s
                          WHERE s.id_hash = b.id_hash AND s.message_id = b.message_id)
        """
    )
    store.execute("DROP TABLE _batch_ids")
    result = batch.result
    result.inserted = store.scalar("SELECT count(*) FROM _new")
    result.duplicates = result.received - result.suppressed - result.quarantined - result.inserted


def check_tracking_plan(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """The new events against the tracking plan (ingest/tracking_plan.py, docs/quality.md):
    violations recorded; with `ingest.plan_violations` / `ingest.unplanned_events` set to
    "quarantine", the events kept in quarantine instead of written (never dropped)."""
    from accountlens.ingest import tracking_plan  # jsonschema_rs: imported when loading

    source, params = _source_column(batch)
    checked = tracking_plan.check_load(store, cfg.pii, cfg, source, params)
    if checked.quarantine_reasons:
        moved = sum(checked.quarantine_reasons.values())
        result = batch.result
        result.inserted -= moved
        result.quarantined += moved
        for reason, count in checked.quarantine_reasons.items():
            result.quarantine_reasons[reason] = result.quarantine_reasons.get(reason, 0) + count


def record_warnings(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """One `ingest_warnings` row per new event stored with a correction, with the client that
    sent it (`context.library` name and version, else where the event came from: `collector`,
    `replay`, or the import's label), so that a misbehaving SDK can be found."""
    if not store.scalar("SELECT count(*) FROM _checked WHERE warning IS NOT NULL"):
        return
    source, params = _source_column(batch)
    store.execute(
        f"""
        INSERT INTO ingest_warnings
        SELECT c.message_id, c.warning, c.warned_value,
               coalesce(nullif(left(concat_ws(' ', json_extract_string(c.context, '$.library.name'),
                                               json_extract_string(c.context, '$.library.version')),
                                     200), ''),
                        ?, split_part(c.source, ':', 1)),
               {source}, c.received_at, now()
        FROM _checked c JOIN _new n USING (line_no)
        WHERE c.warning IS NOT NULL
        """,
        [batch.label, *params],
    )
    rows = store.arrow("SELECT c.warning, count(*) AS n FROM _checked c JOIN _new USING (line_no) "
                       "WHERE c.warning IS NOT NULL GROUP BY c.warning").to_pylist()
    batch.result.warnings = {row["warning"]: row["n"] for row in rows}


def update_profiles(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """Users, accounts and identities learned from identify/group/alias calls."""
    profiles.apply_new_events(store, "_new")


def derive_memberships(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """SDK-derived membership history; users whose history changed join `_changed_users` with
    the moment from which it changed."""
    changed = {user: since for user, since in memberships.rebuild_from_sdk(store, "_new").items()
               if since is not None}  # None: rows differ, memberships at every moment do not
    if changed:
        store.execute(
            """INSERT INTO _changed_users
               SELECT user_id, make_timestamptz(since), false
               FROM (SELECT unnest(?) AS user_id, unnest(?) AS since)""",
            [list(changed), list(changed.values())],
        )


def reattribute_changed(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """Stored events of users whose memberships, email or identity just changed (leaves
    `_reattributed`: their timestamps). Runs before the batch is written, so only earlier
    events are read."""
    attribution.reattribute_changed(store)


def attribute_new(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """Resolve account, unit and role of the new events before they are written."""
    attribution.resolve(store, "SELECT line_no AS key, * EXCLUDE (line_no) FROM _new")


def write_events(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """Insert the new events: parsed columns from `_checked`, attribution of the rows in `_new`
    (a lake workspace's are written as Parquet files, which follow the commit: store/lake.py)."""
    source, params = _source_column(batch)
    lake = store_lake.of(store)
    if lake:
        lake.batch_table(store, "_lake_new")
    store.execute(
        f"""
        INSERT INTO {"_lake_new" if lake else "events"}
        SELECT c.message_id, c.type, c.name, r.uid, c.anonymous_id, c.sent_user_id, c.group_id,
               r.account_id, r.attribution, r.unit_id, r.role, c.product, c.object_id,
               c.actor_kind, c.timestamp, c.original_timestamp, c.sent_at, c.received_at,
               c.properties, c.traits, c.context, {source}
        FROM _checked c JOIN _attr_result r ON r.key = c.line_no
        """,
        params,
    )
    if lake:
        lake.append(store, "_lake_new")
        store.execute("DROP TABLE _lake_new")
    # the same rows (`_attr_result` has one per row of `_new`), in the same transaction
    store.execute("INSERT INTO event_ids SELECT id_hash, message_id FROM _new")
    store.execute("DROP TABLE _attr_result")


def refresh_rollup(store: WritableStore, cfg: IngestSection, batch: Batch) -> None:
    """Keep the daily rollup current: the days of the new events and of re-attributed ones
    (their timestamps were kept by `reattribute_changed`: the events table is not read again)."""
    rollup.refresh_after_load(store, "_reattributed", "_new")


@dataclass(frozen=True)
class Step:
    """One pipeline step: its function and the staging tables it reads and makes (every table
    a step reads is made by an earlier step: `check_order`)."""

    run: Callable[[WritableStore, IngestSection, Batch], None]
    reads: tuple[str, ...] = ()
    makes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.run.__name__


STEPS: tuple[Step, ...] = (
    Step(parse, reads=(STAGING,), makes=("_checked",)),
    Step(quarantine, reads=("_checked",)),
    Step(dedup, reads=("_checked",), makes=("_new",)),
    Step(check_tracking_plan, reads=("_checked", "_new")),
    Step(record_warnings, reads=("_checked", "_new")),
    Step(update_profiles, reads=("_new",), makes=("_changed_users", "_new_identities")),
    Step(derive_memberships, reads=("_new", "_changed_users")),
    Step(reattribute_changed, reads=("_changed_users", "_new_identities"), makes=("_reattributed",)),
    Step(attribute_new, reads=("_new",), makes=("_attr_result",)),
    Step(write_events, reads=("_checked", "_attr_result")),
    Step(refresh_rollup, reads=("_new", "_reattributed")),
)


def check_order(steps: tuple[Step, ...]) -> tuple[str, ...]:
    """The staging tables `steps` make; raises when a step reads one no earlier step made."""
    made = [STAGING]
    for step in steps:
        missing = [name for name in step.reads if name not in made]
        if missing:
            raise RuntimeError(f"pipeline step {step.name} reads {', '.join(missing)}, "
                               "which no earlier step makes")
        made.extend(step.makes)
    return tuple(made[1:])


_MADE = check_order(STEPS)


def run_pipeline(store: WritableStore, cfg: IngestSection, label: str | None = None,
                 then: tuple[Step, ...] = (),
                 on_step: Callable[[str], None] | None = None) -> LoadResult:
    """Run every step, and the caller's steps `then`, over `_staging`; the caller holds the
    transaction. `on_step` is told each step's name as it starts."""
    batch = Batch(label, on_step=on_step)
    steps = (*STEPS, *then)
    made = check_order(steps) if then else _MADE
    for step in steps:
        if batch.on_step is not None:
            batch.on_step(step.name)
        step.run(store, cfg, batch)
    for table in made:
        store.execute(f"DROP TABLE IF EXISTS {table}")
    return batch.result
