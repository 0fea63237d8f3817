"""Events as a lake (docs/lake.md): a workspace's events as day-partitioned Parquet files that
DuckDB and Spark read directly, while every other table stays in DuckDB.

Layout of `WORKSPACE/lake/`: `events/event_date=YYYY-MM-DD/part-NNNNN.parquet` (Hive
partitioning, as a Parquet export: store/parquet.py), `events/_schema/empty.parquet` (no rows:
a glob over the events always matches a file), `staging/` (files of transactions not yet
committed or not yet moved), `tables/G/*.parquet` and `accountlens-export.json` (the other
tables for Spark, written by `publish`). In DuckDB, `events` is a view over the files.

Exactly once: a write never touches a file readers see. It writes new files to `staging/` and
records, in the DuckDB transaction that also records the events' message ids, where each goes
(`lake_moves`). After the commit the files are renamed over their targets (one atomic rename
each: a reader sees a file whole, old or new); on open, moves a crash left owed are finished
and staged files no transaction committed are removed. Within the transaction the `events`
view reads the staged files in place of the ones they replace, so the steps after a write (the
rollup refresh) see it; just before the commit the view reads the partition folders again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accountlens.store.base import Params, StoreError, WritableStore
from accountlens.store.catalog import JSON, columns
from accountlens.store.durable import fsync

if TYPE_CHECKING:
    from accountlens.store.duckdb import DuckDBStore

log = logging.getLogger(__name__)

LAKE_DIR = "lake"
EVENTS_DIR = "events"
STAGING_DIR = "staging"
TABLES_DIR = "tables"
SCHEMA_FILE = "events/_schema/empty.parquet"
# Rewritten after every change of the events files (Spark skips names starting with "_").
CHANGED_FILE = "_changed"
PARTITION = "event_date"  # as the day-partitioned Parquet export's (store/parquet.py)
MODES = ("table", "lake")
# A load appends to a day's last file while it holds fewer rows than this, else starts a new
# one: appending rewrites the file (files are never changed in place), so this bounds what a
# load of live events rewrites per day, and a day's file count stays about rows / this.
APPEND_BELOW_ROWS = 250_000
_FILE_NO = "_lake_file"  # the column that sends a staged row to its target file


def _literal(text: str | Path) -> str:
    """A path as a SQL string literal (file paths cannot be parameters of a view)."""
    return "'" + str(text).replace("'", "''") + "'"


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(_literal(p) for p in paths) + "]"


def _event_columns() -> dict[str, str]:
    return columns("events")


def _as_read() -> str:
    """The files' columns as the `events` table had them (the view's schema is the table's)."""
    return ", ".join(f'CAST("{name}" AS JSON) AS "{name}"' if kind == JSON
                     else f'CAST("{name}" AS {kind}) AS "{name}"'
                     for name, kind in _event_columns().items())


@dataclass
class _Pending:
    """What the current transaction has written to the lake, not yet committed."""

    batch: str
    hooks: object  # the transaction's (store.on_transaction_end): another one's is stale
    # target (relative to the lake folder) → the file to read for it now (absolute), for every
    # events file the transaction sees; a target the transaction removed is absent
    files: dict[str, str]
    moves: list[tuple[str | None, str]] = field(default_factory=list)  # (staged, target)
    staged_dir: Path | None = None
    view: bool = True  # `events` is the lake's view (not while enable moves the table)
    disabling: bool = False


class Lake:
    """The lake folder of one workspace, and the writes of its events."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.dir = self.root / LAKE_DIR
        self.events_dir = self.dir / EVENTS_DIR
        self.staging_dir = self.dir / STAGING_DIR
        self._pending: _Pending | None = None

    # --- the view ---------------------------------------------------------------------------
    def glob(self) -> str:
        return str(self.events_dir / "*" / "*.parquet")

    def view_sql(self, files: list[str] | None = None) -> str:
        """`events` over the partition folders (or, within a write transaction, over `files`)."""
        source = _literal(self.glob()) if files is None else _list(files)
        return (f"CREATE OR REPLACE VIEW events AS SELECT {_as_read()} "
                f"FROM read_parquet({source}, hive_partitioning = false)")

    def ensure_schema_file(self, store: WritableStore) -> None:
        path = self.dir / SCHEMA_FILE
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name("empty.parquet.partial")
        cast = ", ".join(f'CAST(NULL AS {"VARCHAR" if kind == JSON else kind}) AS "{name}"'
                         for name, kind in _event_columns().items())
        store.execute(f"COPY (SELECT {cast} LIMIT 0) TO {_literal(partial)} (FORMAT parquet)")
        fsync(partial)
        partial.replace(path)

    def partition_files(self) -> list[str]:
        """The events files readers see, relative to the lake folder, in order."""
        if not self.events_dir.exists():
            return []
        return sorted(str(p.relative_to(self.dir))
                      for p in self.events_dir.glob(f"{PARTITION}=*/*.parquet"))

    # --- transactions -----------------------------------------------------------------------
    def _begin(self, store: WritableStore) -> _Pending:
        """The current transaction's pending writes (started on its first write)."""
        hooks = getattr(store, "_hooks", None)
        if self._pending is not None and self._pending.hooks is hooks:
            return self._pending
        # (a pending state of another transaction is stale: its COMMIT failed, so whether it
        # committed is for `finish` to tell from `lake_moves`; its staged files go on open)
        self.finish(store, in_transaction=True)  # moves a failed earlier run still owes
        files = {rel: str(self.dir / rel) for rel in self.partition_files()}
        pending = _Pending(uuid.uuid4().hex, hooks, files)
        store.on_transaction_end(before_commit=lambda: self._before_commit(store),
                                 after_commit=lambda: self._after_commit(store),
                                 after_rollback=self._after_rollback)
        self._pending = pending
        return pending

    def _point_view(self, store: WritableStore) -> None:
        """Within the transaction, `events` reads the files as they now are."""
        assert self._pending is not None
        store.execute(self.view_sql([str(self.dir / SCHEMA_FILE), *self._pending.files.values()]))

    def _before_commit(self, store: WritableStore) -> None:
        if self._pending is not None and not self._pending.disabling:
            store.execute(self.view_sql())

    def _after_commit(self, store: WritableStore) -> None:
        pending, self._pending = self._pending, None
        if pending is None or not pending.moves:
            return
        try:
            self.finish(store)
        except Exception as exc:  # noqa: BLE001 - the commit stands: the next write or open moves them
            log.error("the lake's files could not be moved after a commit (%s); they will be "
                      "on the next write or when the workspace is opened", exc)

    def _after_rollback(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending.staged_dir is not None:
            shutil.rmtree(pending.staged_dir, ignore_errors=True)

    def finish(self, store: WritableStore, in_transaction: bool = False) -> int:
        """Do the moves committed transactions owe (idempotent); how many were owed."""
        owed = store.rows("SELECT batch, seq, staged, target FROM lake_moves ORDER BY batch, seq")
        if not owed:
            return 0
        folders = set()
        for move in owed:
            target = self.dir / move["target"]
            if move["staged"] is None:
                target.unlink(missing_ok=True)
            else:
                staged = self.dir / move["staged"]
                if staged.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    staged.replace(target)
                elif not target.exists():
                    log.error("the lake file %s is missing: neither staged nor moved", target)
            folders.add(target.parent)
        for folder in folders:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()  # a day whose last file went
            elif folder.exists():
                fsync(folder)
        self._mark_changed()
        batches = sorted({move["batch"] for move in owed})
        store.execute("DELETE FROM lake_moves WHERE list_contains(?, batch)", [batches])
        for batch in batches:
            shutil.rmtree(self.staging_dir / batch, ignore_errors=True)
        if not in_transaction:
            store.data_version += 1
        return len(owed)

    def _mark_changed(self) -> None:
        """Tell readers that list the files once (Spark: store/spark.py) to list them again."""
        marker = self.events_dir / CHANGED_FILE
        partial = marker.with_name(CHANGED_FILE + ".partial")
        partial.write_text(dt.datetime.now(dt.UTC).isoformat() + "\n", encoding="utf-8")
        partial.replace(marker)

    def recover(self, store: WritableStore) -> None:
        """On open: finish owed moves, remove staged files no transaction committed."""
        self.finish(store)
        if self.staging_dir.exists():
            for leftover in self.staging_dir.iterdir():
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()

    # --- writes -----------------------------------------------------------------------------
    @staticmethod
    def batch_table(store: WritableStore, name: str) -> None:
        """An empty temporary table `name` with the events' columns, for `append`."""
        store.execute(f"CREATE OR REPLACE TEMP TABLE {name} ("
                      + ", ".join(f'"{c}" {kind}' for c, kind in _event_columns().items()) + ")")

    def _write(self, store: WritableStore, rows: str, targets: dict[int, str]) -> None:
        """Write the rows of the table `rows` (the events' stored columns and `_lake_file`) to
        staging, one file per target of `targets` (number → target path); a target no row
        goes to is removed. Records the moves in the transaction."""
        pending = self._begin(store)
        if pending.staged_dir is None:
            pending.staged_dir = self.staging_dir / pending.batch
        out = pending.staged_dir / uuid.uuid4().hex
        out.parent.mkdir(parents=True, exist_ok=True)
        store.execute(
            f"COPY (SELECT * FROM {rows}) TO {_literal(out)} (FORMAT parquet, "
            f"COMPRESSION zstd, PARTITION_BY ({_FILE_NO}), FILENAME_PATTERN 'part_{{i}}')")
        moves: list[tuple[str | None, str]] = []
        for number, target in targets.items():
            written = sorted((out / f"{_FILE_NO}={number}").glob("*.parquet"))
            if not written:
                if target in pending.files:
                    moves.append((None, target))
                    del pending.files[target]
                continue
            for index, path in enumerate(written):
                fsync(path)
                name = target if index == 0 else self._new_name(target.rsplit("/", 1)[0])
                moves.append((str(path.relative_to(self.dir)), name))
                pending.files[name] = str(path)
        if moves:
            start = len(pending.moves)
            store.execute(
                "INSERT INTO lake_moves SELECT ?, unnest(?), unnest(?), unnest(?)",
                [pending.batch, list(range(start, start + len(moves))),
                 [staged for staged, _ in moves], [target for _, target in moves]])
            pending.moves.extend(moves)
        if pending.view:
            self._point_view(store)

    def _new_name(self, folder: str) -> str:
        """A file name not used in the day folder `folder` (relative to the lake folder)."""
        assert self._pending is not None
        taken = [int(rel.rsplit("-", 1)[1].split(".")[0]) for rel in self._pending.files
                 if rel.startswith(folder + "/") and rel.rsplit("/", 1)[1].startswith("part-")]
        on_disk = [int(p.stem.rsplit("-", 1)[1]) for p in (self.dir / folder).glob("part-*.parquet")]
        return f"{folder}/part-{max([*taken, *on_disk, -1]) + 1:05d}.parquet"

    def append(self, store: WritableStore, table: str) -> int:
        """Add the events of `table` (a table or view with the events' columns) to the lake,
        in the caller's transaction; the number of events."""
        pending = self._begin(store)
        days = store.rows(f"SELECT CAST(timestamp AS DATE) AS day, count(*) AS n FROM {table} "
                          "GROUP BY 1 ORDER BY 1")
        if not days:
            return 0
        # the last file of each day of the batch, if small enough to append to
        folders = {f"{EVENTS_DIR}/{PARTITION}={row['day'].isoformat()}" for row in days}
        candidates: dict[str, str] = {}
        for rel in sorted(pending.files):
            if rel.rsplit("/", 1)[0] in folders:
                candidates[rel.rsplit("/", 1)[0]] = rel
        sizes = {}
        if candidates:
            sizes = {row["file_name"]: row["num_rows"] for row in store.rows(
                "SELECT file_name, num_rows FROM parquet_file_metadata(?)",
                [[pending.files[rel] for rel in candidates.values()]])}
        targets: dict[int, str] = {}
        day_numbers, appended = [], []
        for number, row in enumerate(days):
            folder = f"{EVENTS_DIR}/{PARTITION}={row['day'].isoformat()}"
            last = candidates.get(folder)
            if last is not None and sizes.get(pending.files[last], APPEND_BELOW_ROWS) < APPEND_BELOW_ROWS:
                appended.append((pending.files[last], number))
                targets[number] = last
            else:
                targets[number] = self._new_name(folder)
                pending.files[targets[number]] = ""  # reserved: the next new name differs
            day_numbers.append((row["day"], number))
        store.execute("CREATE OR REPLACE TEMP TABLE _lake_days AS "
                      "SELECT unnest(?) AS day, unnest(?) AS number",
                      [[d for d, _ in day_numbers], [n for _, n in day_numbers]])
        old = ""
        if appended:
            old = (f" UNION ALL SELECT {_stored_of('r')}, a.number FROM read_parquet("
                   f"{_list([path for path, _ in appended])}, filename = true, "
                   "hive_partitioning = false) r "
                   f"JOIN (SELECT unnest({_list([p for p, _ in appended])}) AS path, "
                   f"unnest({[n for _, n in appended]}) AS number) a ON r.filename = a.path")
        store.execute(  # a view: read once, by the write (enable reads the whole table)
            f"""CREATE OR REPLACE TEMP VIEW _lake_rows_out AS
                SELECT {_stored_of('n')}, d.number AS {_FILE_NO}
                FROM {table} n JOIN _lake_days d ON CAST(n.timestamp AS DATE) = d.day{old}""")
        for rel in [rel for rel, path in pending.files.items() if path == ""]:
            del pending.files[rel]  # reservations: `_write` adds what it writes
        self._write(store, "_lake_rows_out", targets)
        store.execute("DROP VIEW _lake_rows_out")
        store.execute("DROP TABLE _lake_days")
        return sum(row["n"] for row in days)

    def rewrite(self, store: WritableStore, match: str, keep: str, params: Params = None,
                keep_params: Params = None) -> int:
        """Rewrite the files holding events that match the condition `match`: each becomes
        the rows of the query `keep` over `_lake_rows` (its events, with `_lake_file`), which
        drops or changes rows (a file left with none is removed). The number of files."""
        pending = self._begin(store)
        paths = list(pending.files.values())
        if not paths:
            return 0
        found = [row["filename"] for row in store.rows(
            f"SELECT DISTINCT filename FROM (SELECT {_as_read()}, filename FROM read_parquet("
            f"{_list(paths)}, filename = true, hive_partitioning = false)) WHERE {match}",
            params)]
        if not found:
            return 0
        by_path = {path: rel for rel, path in pending.files.items()}
        targets = {number: by_path[path] for number, path in enumerate(sorted(found))}
        numbers = {path: number for number, path in enumerate(sorted(found))}
        store.execute(
            f"""CREATE OR REPLACE TEMP VIEW _lake_rows AS
                SELECT {_as_read()}, f.number AS {_FILE_NO}
                FROM read_parquet({_list(sorted(found))}, filename = true,
                                  hive_partitioning = false) r
                JOIN (SELECT unnest({_list(list(numbers))}) AS path,
                             unnest({list(numbers.values())}) AS number) f ON r.filename = f.path""")
        # read once, by the write: a view, unless it has parameters (a view cannot)
        kind = "TABLE" if keep_params else "VIEW"
        store.execute(f"CREATE OR REPLACE TEMP {kind} _lake_rows_out AS "
                      f"SELECT {_stored_of('k')}, k.{_FILE_NO} FROM ({keep}) k", keep_params)
        self._write(store, "_lake_rows_out", targets)
        store.execute(f"DROP {kind} _lake_rows_out")
        store.execute("DROP VIEW _lake_rows")
        return len(found)

    def delete(self, store: WritableStore, where: str, params: Params = None) -> int:
        """Remove the events matching `where`; how many."""
        count = int(store.scalar(f"SELECT count(*) FROM events WHERE {where}", params))
        if count:
            self.rewrite(store, where, f"SELECT * FROM _lake_rows WHERE ({where}) IS NOT TRUE",
                         params, params)
        return count

    # --- moving a workspace in and out (docs/lake.md, "Moving a workspace") ------------------
    def enable(self, store: WritableStore) -> int:
        """Move the events table into the lake (one transaction; the files follow its commit).
        The number of events moved."""
        if self.partition_files():
            raise StoreError(f"{self.events_dir} already holds event files while the events are "
                             "in the DuckDB table: move them away (they are not this "
                             "workspace's current events), then enable again")
        self.recover(store)  # files an enable that crashed before its commit left staged
        self.ensure_schema_file(store)
        with store.transaction():
            ddl = store.scalar("SELECT sql FROM duckdb_tables() WHERE table_name = 'events' "
                               "AND schema_name = 'main' AND NOT temporary")
            store.execute("INSERT OR REPLACE INTO lake_state VALUES ('events_table', ?)", [ddl])
            pending = self._begin(store)
            pending.view = False
            moved = self.append(store, "events")
            store.execute("DROP TABLE events")
            pending.view = True
            self._point_view(store)
        return moved

    def disable(self, store: WritableStore) -> int:
        """Move the lake's events back into a DuckDB table; the number of events."""
        from accountlens.store.schema import MIGRATIONS

        ddl = store.scalar("SELECT value FROM lake_state WHERE key = 'events_table'")
        if ddl is None:  # the definition of the first migration
            ddl = next(s for s in MIGRATIONS[0][1] if s.lstrip().startswith("CREATE TABLE events"))
        with store.transaction():
            pending = self._begin(store)
            pending.disabling, pending.view = True, False
            files = [str(self.dir / SCHEMA_FILE), *pending.files.values()]
            store.execute("DROP VIEW events")
            store.execute(ddl)
            store.execute(f"INSERT INTO events SELECT {_as_read()} FROM read_parquet("
                          f"{_list(files)}, hive_partitioning = false) ORDER BY timestamp")
            moved = int(store.scalar("SELECT count(*) FROM events"))
            targets = sorted(pending.files)
            store.execute("INSERT INTO lake_moves SELECT ?, unnest(?), NULL, unnest(?)",
                          [pending.batch, list(range(len(targets))), targets])
            pending.moves.extend((None, target) for target in targets)
            pending.files.clear()
        return moved

    # --- the other tables, for Spark ----------------------------------------------------------
    def publish(self, store: DuckDBStore, tables: list[str], schema_version: int) -> dict[str, Any]:
        """Write `tables` as Parquet beside the events and the manifest naming them (the format
        of store/parquet.py: SparkStore opens the lake folder like an export). Older
        generations go once the manifest names the new one."""
        from accountlens.store import parquet

        generation = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
        folder = self.dir / TABLES_DIR / generation
        folder.mkdir(parents=True, exist_ok=True)
        rows: dict[str, dict[str, Any]] = {}
        with store.transaction():  # one snapshot of the tables
            for name in tables:
                target = folder / f"{name}.parquet"
                store.execute(f'COPY (SELECT {store._text_json_columns(name)} FROM "{name}") '
                              f"TO {_literal(target)} (FORMAT parquet, COMPRESSION zstd)")
                rows[name] = {"path": f"{TABLES_DIR}/{generation}/{name}.parquet",
                              "rows": int(store.scalar(f'SELECT count(*) FROM "{name}"'))}
            events = int(store.scalar("SELECT count(*) FROM events"))
        has_days = bool(self.partition_files())
        rows[parquet.EVENTS] = {"path": EVENTS_DIR if has_days else str(Path(SCHEMA_FILE).parent),
                                "rows": events}
        manifest = {
            "format_version": parquet.FORMAT_VERSION,
            "schema_version": schema_version,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "events_partitioned_by": {"granularity": "day", "column": PARTITION},
            "tables": rows,
            "lake": {"generation": generation},
        }
        partial = self.dir / (parquet.MANIFEST + ".partial")
        partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        partial.replace(self.dir / parquet.MANIFEST)
        for old in (self.dir / TABLES_DIR).iterdir():
            if old.name != generation:
                shutil.rmtree(old, ignore_errors=True)
        return manifest

    def unpublish(self) -> None:
        from accountlens.store import parquet

        (self.dir / parquet.MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(self.dir / TABLES_DIR, ignore_errors=True)

    def remove_empty(self) -> None:
        """After disable: the lake's own empty folders go (anything else in them stays)."""
        shutil.rmtree(self.events_dir / "_schema", ignore_errors=True)
        (self.events_dir / CHANGED_FILE).unlink(missing_ok=True)
        for folder in (self.staging_dir, self.events_dir, self.dir):
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()

    # --- status -----------------------------------------------------------------------------
    def status(self, store: WritableStore) -> dict[str, Any]:
        files = self.partition_files()
        days = sorted({rel.split("/")[1].split("=", 1)[1] for rel in files})
        return {
            "mode": "lake",
            "path": str(self.dir),
            "files": len(files),
            "bytes": sum((self.dir / rel).stat().st_size for rel in files),
            "days": len(days),
            "first_day": days[0] if days else None,
            "last_day": days[-1] if days else None,
            "events": int(store.scalar("SELECT count(*) FROM events")),
            "pending_moves": int(store.scalar("SELECT count(*) FROM lake_moves")),
        }


def _stored_of(alias: str) -> str:
    """The events' columns of `alias` as the files hold them: JSON as text (Spark has no JSON
    type)."""
    return ", ".join(f'CAST({alias}."{name}" AS VARCHAR) AS "{name}"' if kind == JSON
                     else f'{alias}."{name}"' for name, kind in _event_columns().items())


def is_lake(store: WritableStore) -> bool:
    """Whether the store's `events` is the lake's view."""
    return bool(store.scalar("SELECT count(*) FROM duckdb_views() WHERE view_name = 'events' "
                             "AND schema_name = 'main' AND NOT temporary"))


def attach(store: WritableStore, root: Path, setting: str, read_only: bool = False,
           check: bool = True) -> Lake | None:
    """On open: the workspace's lake when its events are one (else None), recovered after a
    crash and with its view pointing at this folder (a workspace may have been moved). With
    `check`, the storage must be the one `[workspace] events_storage` names."""
    lake = Lake(root) if is_lake(store) else None
    stored = "lake" if lake is not None else "table"
    if check and setting != stored:
        wanted, kept = ("enable", "disable") if setting == "lake" else ("disable", "enable")
        raise StoreError(
            f"{root}: accountlens.toml says events_storage = \"{setting}\" but the events are "
            f"stored as a {stored}: run `accountlens lake {wanted} --dir {root}` to move them, "
            f"or `accountlens lake {kept} --dir {root}` to keep them as they are (it also "
            "finishes a move a crash interrupted)")
    if lake is None:
        return None
    current = store.scalar("SELECT sql FROM duckdb_views() WHERE view_name = 'events' "
                           "AND schema_name = 'main'")
    if read_only:
        if _literal(lake.glob()) not in str(current):
            raise StoreError(f"{root} was moved since it was last opened for writing: its "
                             "events view points elsewhere; open it once without read-only")
        return lake
    lake.recover(store)
    lake.ensure_schema_file(store)
    if _literal(lake.glob()) not in str(current):
        store.execute(lake.view_sql())
    return lake


def of(store: Any) -> Lake | None:
    """The lake of `store`'s events, or None when they are a DuckDB table."""
    return getattr(store, "lake", None)
