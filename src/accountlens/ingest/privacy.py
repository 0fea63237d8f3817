"""Personal data at ingest (docs/privacy.md): `ingest.pii` actions on event properties, traits and
context.traits, and the suppression list that refuses events of deleted people.

Both run set-wise in DuckDB inside the load pipeline (ingest/pipeline.py), before anything is
written. Key names come from the configuration and reach DuckDB as parameters (JSON pointers
and `json_object` keys), never as SQL text; values never leave the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accountlens.model import suppression
from accountlens.model.suppression import salted_hash
from accountlens.store.base import Store, WritableStore

# What a hashed value looks like: left as it is, so that hashing is idempotent (a quarantined
# event, stored protected, is not hashed twice when replayed). A value that is already 64
# lower-case hex digits (and, for `hash_email`, followed by @domain) is therefore kept.
_HASHED = {"hash": "[0-9a-f]{64}", "hash_email": "(?s)[0-9a-f]{64}@.*"}
# The objects of an event whose top-level keys the actions apply to, as JSON paths in the raw
# event (constants: our field names).
_RAW_OBJECTS = ("$.properties", "$.traits", "$.context.traits")


def actions(pii: Mapping[str, str]) -> list[tuple[str, str]]:
    """The configured actions that change something, in a stable order."""
    return sorted((key, action) for key, action in pii.items() if action != "keep")


def pointer(key: str) -> str:
    """A key's JSON pointer (RFC 6901): any key name, no quoting rules of JSONPath."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def parameters(pii: Mapping[str, str]) -> dict[str, Any]:
    """The named parameters the SQL of this module refers to: the keys' names and pointers."""
    todo = actions(pii)
    if not todo:
        return {}
    params: dict[str, Any] = {"pii_ptrs": [pointer(key) for key, _ in todo]}
    for i, (key, action) in enumerate(todo):
        params[f"pii_key_{i}"] = key
        if action != "drop":  # (DuckDB refuses a parameter the statement does not use)
            params[f"pii_ptr_{i}"] = pointer(key)
    return params


# An address's parts, split at its last @ (`(?s)`: the local part may hold a newline).
_LOCAL, _DOMAIN = "'(?s)^(.*)@'", "'@([^@]*)$'"


def _value(obj: str, text: str, i: int, action: str) -> str:
    """SQL: the new value of key number `i` of the JSON object `obj`, whose text (a string's
    text, else its JSON text) is `text`; NULL removes the key."""
    if action == "drop":
        return "NULL"
    hashed = salted_hash(text)
    if action == "hash_email":  # hash the local part, keep the domain (lower case)
        hashed = (f"CASE WHEN contains({text}, '@') THEN "
                  f"{salted_hash(f'lower(regexp_extract({text}, {_LOCAL}, 1))')} || '@' || "
                  f"lower(regexp_extract({text}, {_DOMAIN}, 1)) ELSE {hashed} END")
    return (f"CASE WHEN regexp_full_match({text}, '{_HASHED[action]}') "
            f"AND json_type({obj}, $pii_ptr_{i}) = 'VARCHAR' THEN {text} ELSE {hashed} END")


def _texts(obj: str) -> str:
    """SQL: the list of the configured keys' texts in `obj` (NULL where absent)."""
    return f"json_extract_string({obj}, $pii_ptrs)"


def _patch(obj: str, texts: str, pii: Mapping[str, str]) -> str:
    """SQL: the JSON merge patch (RFC 7396) that applies the actions to the object `obj`, the
    keys' texts being the list `texts`."""
    return "json_object(" + ", ".join(
        f"$pii_key_{i}, {_value(obj, f'{texts}[{i + 1}]', i, action)}"
        for i, (_, action) in enumerate(actions(pii))) + ")"


def transformed(obj: str, texts: str, pii: Mapping[str, str]) -> str:
    """SQL: the JSON `obj` with the actions applied to its top-level keys (`texts`: theirs, as
    `_texts` lists them), if it is an object holding any of them. Most objects hold none: one
    extraction of the keys decides (merging every object cost 2 s per 1M events)."""
    return (f"CASE WHEN list_count({texts}) > 0 AND json_type({obj}) = 'OBJECT' "
            f"THEN json_merge_patch({obj}, {_patch(obj, texts, pii)}) ELSE {obj} END")


def protected(source: str, pii: Mapping[str, str]) -> str:
    """SQL for a FROM clause: the rows of `source` (parsed events: `properties`, `traits`,
    `context` columns) with the actions applied to those three (context: to its `traits`)."""
    if not actions(pii):
        return source
    traits = "json_extract(context, '$.traits')"
    context = (f"CASE WHEN list_count(_pii_c) > 0 AND json_type({traits}) = 'OBJECT' THEN "
               f"json_merge_patch(context, json_object('traits', {_patch(traits, '_pii_c', pii)})) "
               "ELSE context END")
    return f"""(SELECT * EXCLUDE (_pii_p, _pii_t, _pii_c)
                       REPLACE ({transformed('properties', '_pii_p', pii)} AS properties,
                                {transformed('traits', '_pii_t', pii)} AS traits,
                                {context} AS context)
                FROM (SELECT *, {_texts('properties')} AS _pii_p, {_texts('traits')} AS _pii_t,
                             {_texts(traits)} AS _pii_c
                      FROM {source}))"""


def protect_quarantined(store: WritableStore, pii: Mapping[str, str], table: str) -> None:
    """Apply the actions inside the raw JSON kept for quarantine (`raw` of `table`, set only for
    invalid events: few), one object of the event after the other."""
    if not actions(pii) or not store.scalar(f"SELECT count(*) FROM {table} WHERE raw IS NOT NULL"):
        return
    steps, source = [f"s AS (SELECT line_no, raw FROM {table} WHERE raw IS NOT NULL)"], "s"
    for n, path in enumerate(_RAW_OBJECTS):
        inner = f"json_extract(raw, '{path}')"
        patch = _patch(inner, _texts(inner), pii)
        for name in reversed(path.split(".")[1:]):
            patch = f"json_object('{name}', {patch})"
        steps.append(f"""s{n} AS (SELECT line_no, CASE WHEN json_type(raw, '{path}') = 'OBJECT'
                                                    AND list_count({_texts(inner)}) > 0
                                      THEN json_merge_patch(raw, {patch}) ELSE raw END AS raw
                                  FROM {source})""")
        source = f"s{n}"
    store.execute(
        f"""UPDATE {table} SET raw = p.raw
            FROM (WITH {', '.join(steps)} SELECT * FROM {source}) p
            WHERE {table}.line_no = p.line_no""",
        parameters(pii),
    )


def stored_forms(store: Store, pii: Mapping[str, str], key: str, value: str) -> list[str]:
    """The forms `value` of property or trait `key` is stored in: lower-case as given (the
    importers keep what they read), and as the key's `ingest.pii` action makes it."""
    forms = [value.lower()]
    action = dict(pii).get(key, "keep")
    if action in _HASHED:
        single = {key: action}
        made = store.scalar(
            f"SELECT json_extract_string({transformed('o', _texts('o'), single)}, $pii_ptr_0) "
            "FROM (SELECT json_object($pii_key_0, $value) AS o)",
            {**parameters(single), "value": value})
        forms += [str(made).lower()] if made is not None else []
    return forms


def drop_suppressed(store: WritableStore, table: str) -> int:
    """Delete from `table` (parsed events: `sent_user_id`, `anonymous_id`, `previous_id`,
    `traits`, `context`) the events of people on the suppression list: by any of their ids, or
    the e-mail of their traits or context.traits (as stored, after the `ingest.pii` actions).
    Returns how many."""
    if not suppression.has_entries(store):
        return 0
    ids = " UNION ALL ".join(f"SELECT {column} AS value FROM {table}"
                             for column in ("sent_user_id", "anonymous_id", "previous_id"))
    store.execute("CREATE OR REPLACE TEMP TABLE _suppressed_ids AS "
                  + suppression.matching(ids, suppression.ID_KINDS))
    emails = ("lower(traits->>'email')", "lower(context->>'$.traits.email')")
    store.execute("CREATE OR REPLACE TEMP TABLE _suppressed_emails AS " + suppression.matching(
        " UNION ALL ".join(f"SELECT {email} AS value FROM {table}" for email in emails), ("email",)))
    refused = f"""FROM {table} WHERE sent_user_id IN (SELECT value FROM _suppressed_ids)
                    OR anonymous_id IN (SELECT value FROM _suppressed_ids)
                    OR previous_id IN (SELECT value FROM _suppressed_ids)
                    OR {emails[0]} IN (SELECT value FROM _suppressed_emails)
                    OR {emails[1]} IN (SELECT value FROM _suppressed_emails)"""
    count = int(store.scalar(f"SELECT count(*) {refused}"))
    if count:
        store.execute(f"DELETE {refused}")
    store.execute("DROP TABLE _suppressed_ids")
    store.execute("DROP TABLE _suppressed_emails")
    return count
