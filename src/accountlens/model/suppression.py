"""Salted hashing of personal data and the suppression list of deleted people (docs/privacy.md).

One place for the hash that deletion (governance/deletion.py) writes into `suppressed_users`
and the load pipeline (ingest/privacy.py) compares with, and that PII hashing at ingest uses:
lower-case hex SHA-256 of the workspace's random salt followed by the value, computed in SQL
so a whole batch is hashed set-wise.
"""

from __future__ import annotations

from accountlens.model.entities import SUPPRESSION_KINDS
from accountlens.store.base import Store, WritableStore

# The workspace's salt (store/schema.py migration 5): made once, never shown, never exported.
SALT = "(SELECT value FROM workspace_secrets WHERE name = 'salt')"
# Kinds compared with the ids of an event (userId, anonymousId, previousId); an e-mail is
# compared with the `email` entries only.
ID_KINDS = tuple(kind for kind in SUPPRESSION_KINDS if kind != "email")


def salted_hash(value_sql: str) -> str:
    """SQL: the salted hash of the text `value_sql` (NULL stays NULL)."""
    return f"sha256({SALT} || {value_sql})"


def subject_hash(store: Store, value: str) -> str:
    """The salted hash of one value, as the suppression list and the audit log hold it."""
    return str(store.scalar(f"SELECT {salted_hash('?')}", [value]))


def has_entries(store: Store) -> bool:
    """Whether anyone is on the suppression list (one cheap count: loads skip the check when
    nobody is)."""
    return bool(store.scalar("SELECT EXISTS (SELECT 1 FROM suppressed_users)"))


def suppress(store: WritableStore, subjects: str, params: list | None = None) -> int:
    """Add the people of `subjects` (a query of `value`, `kind` rows: ids as stored, e-mails
    lower-case) to the list; returns how many distinct hashes they make (new or already there)."""
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE _suppressing AS
            SELECT {salted_hash('value')} AS subject_hash, min(kind) AS kind
            FROM ({subjects}) WHERE value IS NOT NULL GROUP BY ALL""",
        params,
    )
    store.execute("""INSERT INTO suppressed_users
                     SELECT subject_hash, kind, now() FROM _suppressing
                     ON CONFLICT (subject_hash) DO NOTHING""")
    count = int(store.scalar("SELECT count(*) FROM _suppressing"))
    store.execute("DROP TABLE _suppressing")
    return count


def matching(values: str, kinds: tuple[str, ...]) -> str:
    """SQL: the rows of `values` (a query of one `value` column) whose hash is listed under
    one of `kinds` (our constants). Each distinct value is hashed once."""
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    return f"""SELECT value FROM (SELECT DISTINCT value FROM ({values}) WHERE value IS NOT NULL) v
               WHERE {salted_hash('v.value')} IN (SELECT subject_hash FROM suppressed_users
                                                 WHERE kind IN ({listed}))"""
