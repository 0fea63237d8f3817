"""Bulk importers: events (JSONL, CSV, Parquet) and CRM/billing tables (CSV), one registry.

Each file is all-or-nothing: it is checked whole and either loads in one transaction or is
refused with errors naming file, line and column. Events that parse but are semantically
invalid go to quarantine with a reason, as from the collector.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson

from accountlens.config import IngestSection
from accountlens.ingest import csv_files, import_checks
from accountlens.ingest.pipeline import (
    MALFORMED,
    STAGING,
    LoadResult,
    number_lines,
    run_pipeline,
    stage_jsonl,
)
from accountlens.ingest.progress import ImportProgress, Report
from accountlens.model import attribution
from accountlens.model.entities import ENTITIES, EntitySpec
from accountlens.model.rollup import rebuild_deferred
from accountlens.store import catalog
from accountlens.store.base import WritableStore

log = logging.getLogger("accountlens.import")


class ImportError_(ValueError):
    """A file that cannot be imported; `errors` lists `file:line column: reason` entries."""

    def __init__(self, file: Path, errors: list[str], total: int | None = None):
        """`total`: how many problems there are, when `errors` lists only the first."""
        self.file, self.errors = file, errors
        total = max(total or 0, len(errors))
        shown = "\n  ".join(errors[:20])
        more = f"\n  … and {total - min(len(errors), 20)} more" if total > 20 else ""
        super().__init__(f"{file}: {total} problem(s), nothing imported:\n  {shown}{more}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------
def _jsonl_problems(path: Path, limit: int = 50) -> list[str]:
    """Exact line numbers of bad JSON lines (only run when DuckDB reported a problem)."""
    problems: list[str] = []
    opener = gzip.open if path.suffix.lower() == GZIP else open
    try:
        with opener(path, "rb") as fh:
            return _bad_lines(fh, path, limit, problems)
    except (OSError, EOFError, zlib.error) as exc:  # a corrupt or truncated gzip file
        return [*problems, f"{path}: not readable{' as gzip' if opener is gzip.open else ''}: {exc}"]


def _bad_lines(fh: Iterable[bytes], path: Path, limit: int, problems: list[str]) -> list[str]:
    for number, line in enumerate(fh, start=1):
        if not line.strip():
            problems.append(f"{path}:{number}: empty line")
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: invalid JSON ({exc})")
        else:
            if not isinstance(value, dict):
                problems.append(f"{path}:{number}: not a JSON object")
        if len(problems) >= limit:
            break
    return problems


def _stage_jsonl(store: WritableStore, path: Path) -> None:
    """Stage the file's lines; lines that are not JSON objects are found by the pipeline."""
    try:
        stage_jsonl(store, [path])
    except Exception as exc:
        problems = _jsonl_problems(path) or [f"{path}: {exc}"]
        raise ImportError_(path, problems) from exc


def _nested_json_expr(columns: list[str]) -> str:
    """`to_json(struct_pack(...))` that turns flattened `a.b.c` columns back into objects."""

    def build(tree: dict) -> str:
        parts = []
        for key, sub in tree.items():
            value = build(sub) if isinstance(sub, dict) else f"t.{_ident(sub)}"
            parts.append(f"{_ident(key)} := {value}")
        return "struct_pack(" + ", ".join(parts) + ")"

    tree: dict = {}
    for column in columns:
        node = tree
        *parents, leaf = column.split(".")
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"column {column!r} nests under the plain column "
                                 f"{'.'.join(parents[:depth + 1])!r}; use one or the other")
        if isinstance(node.get(leaf), dict):  # a plain column after its nested ones
            raise ValueError(f"column {column!r} is also nested ({column}.…); use one or the other")
        node[leaf] = column
    return "to_json(" + build(tree) + ")"


def _stage_table(store: WritableStore, path: Path, reader: str) -> None:
    """Stage a CSV or Parquet event file: its flattened columns (`properties.x`) made objects
    again. A CSV is read in the standard dialect, strictly (ingest/csv_files.py)."""
    csv = reader == "read_csv"
    source = csv_files.typed_reader() if csv else f"{reader}(?)"
    try:
        names = csv_files.header(path) if csv else None  # an empty or unreadable file: said so
        columns = [row["column_name"]
                   for row in store.rows(f"DESCRIBE SELECT * FROM {source}", [str(path)])]
        if names is not None and columns != names:
            raise ValueError(f"the columns read ({', '.join(columns)}) are not the header's")
        expr = _nested_json_expr(columns)
        store.execute(
            f"""CREATE OR REPLACE TEMP TABLE {STAGING} AS
                SELECT NULL::BIGINT AS line_no, json_merge_patch('{{}}', {expr}) AS raw,
                       NULL::VARCHAR AS source, now() AS received_fallback
                FROM {source} t""",
            [str(path)],
        )
        number_lines(store, ("import:" + path.name, 1 if csv else 0))
    except csv_files.CsvProblem as exc:
        raise ImportError_(path, exc.problems) from exc
    except Exception as exc:
        raise ImportError_(path, _located(store, path, exc) if csv else [f"{path}: {exc}"]) from exc


def _located(store: WritableStore, path: Path, exc: Exception) -> list[str]:
    """Where a CSV that failed to read is wrong: read it again as text, which names the line."""
    try:
        names = csv_files.header(path)
        store.scalar(f"SELECT count(*) FROM {csv_files.strict_reader(names)}", [str(path)])
    except csv_files.CsvProblem as problem:
        return problem.problems
    except Exception as strict:  # noqa: BLE001 - its message names the line
        return csv_files.problem(path, strict)
    return [f"{path}: {exc}"]


EVENT_READERS: dict[str, Callable[[WritableStore, Path], None]] = {
    ".jsonl": _stage_jsonl,
    ".ndjson": _stage_jsonl,
    ".json": _stage_jsonl,
    ".csv": lambda store, path: _stage_table(store, path, "read_csv"),
    ".parquet": lambda store, path: _stage_table(store, path, "read_parquet"),
}
# Text formats may come gzip-compressed (Segment's and RudderStack's S3 exports are
# `.json.gz` lines); DuckDB reads them as they are.
GZIP = ".gz"
GZIPPED = (".jsonl", ".ndjson", ".json", ".csv")


def event_reader(path: Path) -> Callable[[WritableStore, Path], None] | None:
    """How to stage an event file, by its name: `events.jsonl`, `export.json.gz`, …"""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes[-1:] == [GZIP]:
        inner = suffixes[-2] if len(suffixes) > 1 else ""
        return EVENT_READERS[inner] if inner in GZIPPED else None
    return EVENT_READERS.get(path.suffix.lower())


def event_files(paths: list[Path]) -> list[Path]:
    """The files to import for `paths`: a folder stands for the event files anywhere under it
    (by name, hidden ones left out), in name order; a file stands for itself."""
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.rglob("*")
                       if p.is_file() and event_reader(p) is not None
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not found:
            raise ImportError_(path, [f"{path}: no event files in this folder "
                                      f"(looked for {event_file_types()})"])
        files.extend(found)
    return files


def event_file_types() -> str:
    return ", ".join([*EVENT_READERS, *(suffix + GZIP for suffix in GZIPPED)])


def import_events(store: WritableStore, cfg: IngestSection, path: Path,
                  progress: Report | None = None) -> LoadResult:
    """Import one event file, whole or not at all. `progress` is told, as the import goes,
    what it is doing and which share of it is done (ingest/progress.py)."""
    reader = event_reader(path)
    if reader is None:
        raise ImportError_(
            path, [f"{path}: unknown event file type; use one of {event_file_types()}"]
        )
    if not path.exists():
        raise ImportError_(path, [f"{path}: no such file"])
    if progress is None:
        return _import_events(store, cfg, path, reader, lambda step: None)
    with store.progress_probe() as probe, ImportProgress(progress, probe) as tracker:
        return _import_events(store, cfg, path, reader, tracker.step)


def _import_events(store: WritableStore, cfg: IngestSection, path: Path,
                   reader: Callable[[WritableStore, Path], None],
                   step: Callable[[str], None]) -> LoadResult:
    with store.transaction():
        step("stage")
        reader(store, path)
        result = run_pipeline(store, cfg, label="import:" + path.name, on_step=step)
        if any(reason in result.quarantine_reasons for reason in MALFORMED):
            raise ImportError_(path, _jsonl_problems(path) or [f"{path}: malformed lines"])
        store.execute(f"DROP TABLE {STAGING}")
        _record_import(store, "events", path, result.received, result.inserted, result.quarantined)
        step("commit")
    step("rebuild_rollup")
    try:  # history of most days: the rollup rebuilt whole, not day by day
        rebuild_deferred(store)
    except Exception:  # the events are in; the next metric query rebuilds the rollup
        log.warning("rebuilding the daily rollup after importing %s failed; the next metric "
                    "query rebuilds it", path, exc_info=True)
    return result


def _record_import(store: WritableStore, kind: str, path: Path, rows: int, inserted: int,
                   quarantined: int) -> int:
    """Record an import in `imports`; its `import_id`."""
    import_id = int(store.scalar("SELECT nextval('import_seq')"))
    store.execute(
        "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, now())",
        [import_id, kind, str(path), rows, inserted, quarantined],
    )
    return import_id


# --------------------------------------------------------------------------------------------
# CRM / billing tables
# --------------------------------------------------------------------------------------------
def _check_rows(store: WritableStore, spec: EntitySpec, path: Path,
                present: list[str]) -> tuple[list[str], int]:
    """The first bad cells of the staged CSV as `file:line column: reason` (up to 20 per
    check), and how many bad cells there are in all."""
    checks = []
    for col in spec.columns:
        if col.name not in present:
            continue
        ref = f"c.{_ident(col.name)}"
        if col.required:
            checks.append((col.name, f"{ref} IS NULL OR trim({ref}) = ''", "value is required"))
        if col.type == "JSON":
            checks.append((col.name, f"{ref} IS NOT NULL AND NOT json_valid({ref})", "not valid JSON"))
        elif col.type != "VARCHAR":
            checks.append(
                (col.name, f"{ref} IS NOT NULL AND TRY_CAST({ref} AS {col.type}) IS NULL",
                 f"not a valid {col.type.lower()}")
            )
        if col.choices:
            allowed = ", ".join(f"'{c}'" for c in col.choices)
            checks.append((col.name, f"{ref} IS NOT NULL AND {ref} NOT IN ({allowed})",
                           "must be one of " + ", ".join(col.choices)))
    errors: list[tuple[int, str]] = []
    total = 0
    for name, condition, reason in checks:
        rows = store.rows(
            f"SELECT line, {_ident(name)} AS value, count(*) OVER () AS bad FROM _csv c "
            f"WHERE {condition} ORDER BY line LIMIT 20")
        total += rows[0]["bad"] if rows else 0
        errors += [
            (r["line"], f"{path}:{r['line']} column {name}: {reason} (got {r['value']!r})")
            for r in rows
        ]
    return [text for _, text in sorted(errors)], total


# Imported traits carry no date: they are recorded as known since this instant (SPEC §8 reads
# the history up to a day; a CRM snapshot's values are read as known on every day).
IMPORTED_TRAITS_FROM = "0001-01-01 00:00:00+00"


def _record_traits(store: WritableStore, history: str, key: str) -> None:
    """Replace the imported traits of the rows in `_rows` in the traits history table."""
    store.execute(f"DELETE FROM {history} h WHERE h.source = 'import' "
                  f"AND h.{_ident(key)} IN (SELECT {_ident(key)} FROM _rows)")
    store.execute(f"INSERT INTO {history} SELECT {_ident(key)}, traits, "
                  f"TIMESTAMPTZ '{IMPORTED_TRAITS_FROM}', 'import', NULL FROM _rows "
                  f"WHERE traits IS NOT NULL")


def _row_values(spec: EntitySpec, present: list[str], extras: list[str]) -> tuple[list[str], list[str]]:
    """The table columns an import fills and the typed expression over `_csv c` of each."""
    targets, values = [], []
    for col in spec.columns:
        targets.append(col.column)
        if col.name in present:
            ref = f"nullif(trim(c.{_ident(col.name)}), '')"
            value = ref if col.type == "VARCHAR" else f"CAST({ref} AS {col.type})"
        else:
            value = "NULL"
        # a declared default is a constant of the code, never a user's value
        values.append(f"coalesce({value}, '{col.default}')" if col.default is not None else value)
    table_cols = set(catalog.columns(spec.table))
    if "traits" in table_cols:
        targets.append("traits")
        values.append(
            "to_json(struct_pack(" + ", ".join(f"{_ident(e)} := c.{_ident(e)}" for e in extras) + "))"
            if extras else "NULL"
        )
    if "source" in table_cols and spec.column("source") is None:
        targets.append("source")
        values.append("'import'")
    return targets, values


def _record_per_import(store: WritableStore, table: str, targets: list[str], import_id: int) -> None:
    """Append the import's rows to `table` (e.g. subscription_sources), with its id and time."""
    columns = [_ident(c) for c in catalog.columns(table) if c in targets]
    store.execute(
        f"""INSERT INTO {table} ({', '.join(columns)}, import_id, imported_at)
            SELECT {', '.join(columns)}, ?, now() FROM _rows ORDER BY line""",
        [import_id],
    )


def import_entities(store: WritableStore, kind: str, path: Path) -> int:
    """Import a CRM/billing CSV of `kind` (a key of ENTITIES); returns the number of rows."""
    spec = ENTITIES[kind]
    if not path.exists():
        raise ImportError_(path, [f"{path}: no such file"])
    try:
        present = csv_files.header(path)
    except csv_files.CsvProblem as exc:
        raise ImportError_(path, exc.problems) from exc
    missing = [c.name for c in spec.columns if c.required and c.name not in present]
    if missing:
        raise ImportError_(path, [f"{path}:1: missing required column(s): {', '.join(missing)}"])
    extras = [c for c in present if spec.column(c) is None]
    if extras and not spec.extra_traits:
        raise ImportError_(path, [f"{path}:1: unknown column(s): {', '.join(extras)}; "
                                  f"expected {', '.join(c.name for c in spec.columns)}"])
    with store.transaction():
        try:
            store.execute(
                f"""CREATE OR REPLACE TEMP TABLE _csv AS
                    SELECT row_number() OVER () + 1 AS line, *
                    FROM {csv_files.strict_reader(present)}""",
                [str(path)],
            )
        except Exception as exc:  # a ragged row, an unterminated quote: the line is named
            raise ImportError_(path, csv_files.problem(path, exc)) from exc
        errors, total = _check_rows(store, spec, path, present)
        if errors:
            raise ImportError_(path, errors, total)
        targets, values = _row_values(spec, present, extras)
        keys = [column.column if (column := spec.column(k)) else k for k in spec.key]
        key_match = " AND ".join(f"t.{_ident(k)} IS NOT DISTINCT FROM s.{_ident(k)}" for k in keys)
        store.execute(
            f"""CREATE OR REPLACE TEMP TABLE _rows AS
                SELECT c.line AS line, {', '.join(f'{v} AS {_ident(t)}' for v, t in zip(values, targets))}
                FROM _csv c"""
        )
        impossible, doubtful = import_checks.problems(store, kind, path, present)
        if impossible:
            raise ImportError_(path, impossible)
        for warning in doubtful:
            log.warning("%s (kept)", warning)
        columns = ", ".join(_ident(t) for t in targets)
        store.execute(f"DELETE FROM {spec.table} t WHERE EXISTS (SELECT 1 FROM _rows s WHERE {key_match})")
        store.execute(f"INSERT INTO {spec.table} ({columns}) SELECT {columns} FROM _rows ORDER BY line")
        if spec.traits_history and "traits" in targets:
            _record_traits(store, spec.traits_history, keys[0])
        rows = store.scalar("SELECT count(*) FROM _rows")
        import_id = _record_import(store, kind, path, rows, rows, 0)
        if spec.per_import:
            _record_per_import(store, spec.per_import, targets, import_id)
        store.execute("DROP TABLE _rows")
        store.execute("DROP TABLE _csv")
        if spec.reattribute:
            attribution.attribute(store)
    return rows
