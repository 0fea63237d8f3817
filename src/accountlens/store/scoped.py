"""Row-level scope: a store that shows only a book of accounts (docs/governance.md, "Books").

A `csm` token sees the accounts of its book (those whose `owner` trait is its owner, and/or an
explicit list, with all their descendants in the account hierarchy) and nothing else — raw
rows, rollups and every aggregate. The scope is applied here, under every query, not in each
metric or analysis: on its own DuckDB connection, each table of the workspace is shadowed by a
temporary view of the same name that keeps only the book's rows (`SCOPES` says how, per
table), so the SQL compiled from any Ibis expression, any analysis's SQL, and any drill-down
run unchanged and see the book alone. Unqualified writes go to an in-memory scratch database,
never to the workspace. Spark applies the same `SCOPES` when it binds its views (store/spark.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from accountlens.store.base import Params, StoreError, WritableStore
from accountlens.store.catalog import TABLES

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from accountlens.store.duckdb import DuckDBStore

Scope = Literal["account", "user", "all", "none"]
# Tables without an account or user column that a book may read whole (bookkeeping the query
# layer consults, with nothing of any account in it); any other such table reads as empty.
_WHOLE = frozenset({"schema_version", "metrics_state", "referral_invites_source", "imports",
                    "ingest_segments", "attribution_rule_versions", "attribution_rule_changes",
                    "experiments"})
_SCRATCH = "accountlens_scope_scratch"
READ_ONLY = "a book-scoped store is read-only: writes need an admin token"


def table_scope(name: str, columns: Sequence[str]) -> Scope:
    """How a book sees table `name`: the rows of its accounts (`account`), of its users
    (`user`), all of it (`all`: bookkeeping) or nothing (`none`: raw quarantined events,
    ingestion warnings, secrets, the suppression list, anything unknown)."""
    if "account_id" in columns:
        return "account"
    if "user_id" in columns:
        return "user"
    return "all" if name in _WHOLE else "none"


SCOPES: dict[str, Scope] = {name: table_scope(name, list(cols)) for name, cols in TABLES.items()}


@dataclass(frozen=True)
class Book:
    """Which accounts a restricted token sees: those whose `owner` trait is `owner`
    (case-insensitive), those listed in `accounts`, and the descendants of both."""

    owner: str | None = None
    accounts: tuple[str, ...] = ()


# The book's accounts (with descendants; UNION stops at cycles) and users (members of a book
# account at any time, or acting in one). Parameters: owner, owner, listed accounts.
BOOK_ACCOUNTS_SQL = """
    WITH RECURSIVE book(account_id) AS (
        SELECT account_id FROM {db}.main.accounts
        WHERE (? IS NOT NULL AND lower(trim(json_extract_string(traits, '$.owner'))) = ?)
           OR list_contains(?, account_id)
        UNION
        SELECT a.account_id FROM {db}.main.accounts a JOIN book b
            ON a.parent_account_id = b.account_id)
    SELECT DISTINCT account_id FROM book"""
BOOK_USERS_SQL = """
    SELECT user_id FROM {db}.main.memberships WHERE account_id IN (SELECT account_id FROM temp.__book)
    UNION
    SELECT user_id FROM {db}.main.account_user_firsts
    WHERE account_id IN (SELECT account_id FROM temp.__book)"""


def book_params(book: Book) -> list[Any]:
    owner = book.owner.strip().lower() if book.owner else None
    return [owner, owner, list(book.accounts)]


class ScopedStore(WritableStore):
    """The workspace's DuckDB seen through a book: reads only (writes raise StoreError)."""

    def __init__(self, base: DuckDBStore, book: Book):
        super().__init__()
        self.base, self.book = base, book
        self.engine_name, self.dialect = base.engine_name, base.dialect
        self._local = threading.local()
        self._database = str(base.scalar("SELECT current_database()"))

    # results cached under the base's data version are stale for the book too
    @property
    def data_version(self) -> int:
        return self.base.data_version

    @data_version.setter
    def data_version(self, value: int) -> None:
        pass

    def _quoted_db(self) -> str:
        return '"' + self._database.replace('"', '""') + '"'

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        version = getattr(self._local, "version", None)
        if cursor is None:
            cursor = self.base._con.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
            if not self.base.read_only:  # (a read-only store refuses writes by itself)
                cursor.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {_SCRATCH}")
            self._local.cursor = cursor
        if version != self.base.data_version:
            self._install(cursor)
            self._local.version = self.base.data_version
        return cursor

    def _install(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """(Re)make the book's tables and the views that shadow the workspace's tables."""
        db = self._quoted_db()
        cursor.execute(f"USE {db}")  # the base, while the views are made
        cursor.execute(f"CREATE OR REPLACE TEMP TABLE __book AS {BOOK_ACCOUNTS_SQL.format(db=db)}",
                       book_params(self.book))
        cursor.execute(f"CREATE OR REPLACE TEMP TABLE __book_users AS {BOOK_USERS_SQL.format(db=db)}")
        present = {r[0] for r in cursor.execute(  # and the lake's events view (store/lake.py)
            "SELECT table_name FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' "
            "UNION SELECT view_name FROM duckdb_views() WHERE database_name = $db "
            "AND schema_name = 'main' AND NOT internal", {"db": self._database}).fetchall()}
        for name in present:
            columns = [r[0] for r in cursor.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
                "AND schema_name = 'main' AND table_name = ?", [self._database, name]).fetchall()]
            scope = SCOPES.get(name) or table_scope(name, columns)
            source = f'{db}.main."{name}"'
            # A semi-join with the book (measured: ~20% faster on the metrics table than
            # `account_id IN (SELECT …)`, which DuckDB plans as a mark join)
            body = {"account": f"SELECT t.* FROM {source} t SEMI JOIN temp.__book b "
                               "ON t.account_id = b.account_id",
                    "user": f"SELECT t.* FROM {source} t SEMI JOIN temp.__book_users b "
                            "ON t.user_id = b.user_id",
                    "all": f"SELECT * FROM {source}",
                    "none": f"SELECT * FROM {source} WHERE false"}[scope]
            cursor.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {body}')
        if not self.base.read_only:  # unqualified writes land in scratch, never the workspace
            cursor.execute(f"USE {_SCRATCH}")

    def book_accounts(self) -> list[str]:
        return [r[0] for r in self._cursor().execute(
            "SELECT account_id FROM temp.__book ORDER BY account_id").fetchall()]

    def book_users(self) -> list[str]:
        return [r[0] for r in self._cursor().execute(
            "SELECT user_id FROM temp.__book_users ORDER BY user_id").fetchall()]

    # --- the Store interface --------------------------------------------------------------------
    def execute(self, sql: str, params: Params = None) -> Any:
        return self._cursor().execute(sql, params)

    def arrow(self, sql: str, params: Params = None) -> pa.Table:
        return self._cursor().sql(sql, params=params).to_arrow_table()

    def register(self, name: str, table: pa.Table) -> None:
        self._cursor().register(name, table)

    def unregister(self, name: str) -> None:
        self._cursor().unregister(name)

    def has_table(self, name: str) -> bool:
        return self.base.has_table(name)

    def close(self) -> None:
        """Nothing to close: the base store owns the connection."""

    # --- writes are refused ---------------------------------------------------------------------
    def transaction(self):
        raise StoreError(READ_ONLY)

    def migrate(self) -> int:
        raise StoreError(READ_ONLY)

    def reopen(self) -> None:
        raise StoreError(READ_ONLY)

    def set_option(self, name: str, value: str) -> None:
        raise StoreError(READ_ONLY)

    def export_parquet(self, directory, tables, partition="day", overwrite=False):
        raise StoreError(READ_ONLY)
