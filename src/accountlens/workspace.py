"""A workspace: one folder with `accountlens.toml`, a DuckDB file and the durable event log.

This is the Python API (`accountlens.open`) and the one place the CLI and REST API call into.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from accountlens.config import CONFIG_FILE, Config, load_config, new_write_key
from accountlens.config_template import render_template
from accountlens.governance.audit import Actor, AuditLog
from accountlens.governance.tokens import Principal, TokenStore
from accountlens.ingest.log import LOW_SPACE_BYTES, EventLog, free_bytes, log_segments
from accountlens.model.attribution import unattributed_summary
from accountlens.model.entities import ENTITIES, ENTITY_TABLES
from accountlens.store import lake
from accountlens.store.base import PARQUET_ENGINES, Store, StoreError, WritableStore, open_parquet_engine
from accountlens.store.duckdb import DuckDBStore
from accountlens.store.parquet import is_uri
from accountlens.store.schema import SCHEMA_VERSION
from accountlens.store.scoped import Book, ScopedStore

if TYPE_CHECKING:
    import pandas as pd

    from accountlens.analysis.account_detail import AccountDetail
    from accountlens.analysis.rule_versions import RuleVersion
    from accountlens.analysis.user_detail import UserDetail
    from accountlens.ingest.pipeline import LoadResult
    from accountlens.results import Result

DB_FILE = "accountlens.duckdb"
LOG_DIR = "log"


class WorkspaceError(RuntimeError):
    """The folder is not a usable workspace; the message says why."""


class Workspace:
    def __init__(self, root: Path, config: Config, store: WritableStore):
        # `store` is the workspace's own DuckDB (ingestion writes it); `engine()` the ones metrics read
        self.root, self.config, self.store = root, config, store
        self._engines: dict[tuple[str, str, Book | None], Store] = {}  # Parquet-reading stores, opened once
        # Who acts through this object (the audit log's actor): the user running a command, or
        # the requester the REST API set (`acting_as`).
        self.actor = Actor.cli()
        self.audit = AuditLog(root)
        self.book: Book | None = None  # a csm's book: `store` shows only its accounts
        self._scoped: dict[Book, ScopedStore] = {}  # one per book, shared by `acting_as` views
        self.tokens = TokenStore(root, config.workspace.api_tokens)

    # --- lifecycle --------------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | Path, name: str | None = None) -> Workspace:
        root = Path(root)
        if (root / CONFIG_FILE).exists():
            raise WorkspaceError(f"{root} is already a workspace ({CONFIG_FILE} exists)")
        root.mkdir(parents=True, exist_ok=True)
        (root / CONFIG_FILE).touch(mode=0o600, exist_ok=False)  # its owner's only: it holds keys
        (root / CONFIG_FILE).write_text(
            render_template(name or root.resolve().name, new_write_key()), encoding="utf-8"
        )
        return cls.open(root)

    @classmethod
    def open(cls, root: str | Path, read_only: bool = False, check_storage: bool = True) -> Workspace:
        """`check_storage`: refuse a workspace whose events are not stored as its
        `[workspace] events_storage` says (`accountlens lake` opens it to move them)."""
        root = Path(root)
        if not (root / CONFIG_FILE).exists():
            raise WorkspaceError(
                f"{root} is not an accountlens workspace (no {CONFIG_FILE}); "
                f"create one with `accountlens init {root}`"
            )
        config = load_config(root / CONFIG_FILE)
        store = DuckDBStore(root / DB_FILE, read_only=read_only)
        store.execute("SET TimeZone = 'UTC'")
        if not read_only:
            store.migrate()
        elif store.schema_version() != SCHEMA_VERSION:
            store.close()
            raise StoreError(f"{root} needs a schema upgrade; open it once without read-only")
        try:
            store.lake = lake.attach(store, root, config.workspace.events_storage, read_only,
                                     check_storage)
        except BaseException:
            store.close()
            raise
        workspace = cls(root, config, store)
        if not read_only:
            from accountlens.governance.config_watch import record_config_change

            record_config_change(root, config, workspace.actor)
        return workspace

    def acting_as(self, principal: Principal, source: str) -> Workspace:
        """This workspace as `principal` sees it, from `source` (a client address): its actions
        are audited as theirs, and a restricted principal (`csm`) sees its book only — every
        metric, analysis, page and export through the returned object (store/scoped.py)."""
        view = copy.copy(self)
        view.actor = Actor(principal.name, principal.role, source)
        if principal.restricted:
            book = Book(principal.owner, principal.accounts)
            if book not in self._scoped:
                from accountlens.model import rollup

                rollup.ensure_fresh(self.store, settings=self.config.metrics)
                assert isinstance(self.store, DuckDBStore)
                self._scoped[book] = ScopedStore(self.store, book)
            view.store, view.book = self._scoped[book], book
        return view

    def close(self) -> None:
        for store in self._engines.values():
            store.close()
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def log_dir(self) -> Path:
        return self.root / LOG_DIR

    def log_floor(self) -> int:
        """New log segments are numbered from here: above every segment the store has loaded."""
        loaded = self.store.scalar(
            r"SELECT max(TRY_CAST(regexp_extract(segment, 'seg-([0-9]+)\.jsonl$', 1) AS UBIGINT))"
            " FROM ingest_segments")
        return int(loaded or 0) + 1

    def open_log(self) -> EventLog:
        return EventLog(self.log_dir, self.config.ingest.log_segment_bytes, floor=self.log_floor())

    def load_log(self) -> LoadResult:
        """Load whatever the collector acknowledged but had not loaded yet (e.g. after a crash)."""
        event_log = self.open_log()
        try:
            from accountlens.ingest.loader import load_pending

            return load_pending(self.store, self.config.ingest, event_log)
        finally:
            event_log.close()

    # --- imports ----------------------------------------------------------------------------
    def import_events(self, path: str | Path,
                      progress: Callable[[str, float], None] | None = None) -> LoadResult:
        """Import a JSONL, CSV or Parquet event file, whole or not at all. `progress(what,
        share_done)` is called as the import goes (a progress bar's feed)."""
        from accountlens.ingest import importers  # the ingestion path: imported when used

        result = importers.import_events(self.store, self.config.ingest, Path(path), progress)
        self.audit.record(self.actor, "import.events", Path(path).name,
                          {k: v for k, v in vars(result).items() if isinstance(v, int)})
        return result

    def import_entities(self, kind: str, path: str | Path) -> int:
        if kind not in ENTITIES:
            raise WorkspaceError(f"unknown import kind {kind!r}; use one of {', '.join(ENTITIES)}")
        from accountlens.ingest import importers

        rows = importers.import_entities(self.store, kind, Path(path))
        self.audit.record(self.actor, f"import.{kind}", Path(path).name, {"rows": rows})
        return rows

    # --- metrics and analyses: a Result each (results.py), or its DataFrame ----------------
    def analysis_result(self, name: str, cached: bool = True, parquet: str | Path | None = None,
                        **params: Any) -> Result:
        """Run a registered analysis (handoffs, collaboration, sequences, paths, champions).

        `engine="spark"` runs it on Spark over the Parquet export (`parquet`, default
        `[spark] parquet_dir`), as metrics do. A result is kept until the workspace's data or
        settings change; `cached=False` computes it anew.
        """
        from accountlens.analysis.registry import EngineUnavailable, request_for, run_analysis

        request_for(name, params)  # an engine the analysis does not run on: refused before it starts
        try:
            store = self.engine(params.get("engine", "duckdb"), parquet)
        except StoreError as exc:  # no export to read, no Java
            raise EngineUnavailable(str(exc)) from exc
        return run_analysis(store, self.config, name, cached=cached, **params)

    def analysis(self, name: str, cached: bool = True, **params: Any) -> pd.DataFrame:
        """`analysis_result(...)` as a DataFrame (its `attrs`: as_of, level, engine, notes)."""
        return self.analysis_result(name, cached=cached, **params).to_frame()

    # --- attribution rule sets (docs/attribution.md, "Rule sets") -------------------------
    def attribution_rules(self, version: int | None = None) -> RuleVersion | None:
        """Rule set version `version` (default: the active one; None when none is active, and
        the built-in defaults apply). An unknown version raises UnknownRuleVersion."""
        from accountlens.analysis import rule_versions

        if version is not None:
            rule_versions.rules_for(self.store, version)  # the error lists the versions
        return rule_versions.get_version(self.store, version)

    def attribution_rule_versions(self) -> list[dict[str, Any]]:
        """Every rule set version: version, name, active, created_by, created_at, activated_at,
        note, based_on."""
        from accountlens.analysis import rule_versions

        return rule_versions.list_versions(self.store)

    def attribution_rule_history(self, version: int | None = None) -> list[dict[str, Any]]:
        """Every change of the rule sets (or of one version): version, action, actor, at, detail."""
        from accountlens.analysis import rule_versions

        return rule_versions.history(self.store, version)

    def create_attribution_rules(self, rules: Mapping[str, Any] | None = None, name: str | None = None,
                                 note: str | None = None, based_on: int | None = None) -> RuleVersion:
        """A new rule set version: the defaults (or version `based_on`'s rules) with the fields
        of `rules` replaced; not active until activated. Audited as `attribution.rules.create`."""
        from accountlens.analysis import rule_versions

        made = rule_versions.create_version(self.store, rules, self.actor.name, name, note, based_on)
        self.audit.record(self.actor, "attribution.rules.create", f"version {made.version}", {
            "version": made.version, "based_on": based_on, "fields": sorted(rules or {})})
        return made

    def edit_attribution_rules(self, version: int, changes: Mapping[str, Any],
                               note: str | None = None) -> RuleVersion:
        """Replace fields of a version never activated. Audited as `attribution.rules.edit`."""
        from accountlens.analysis import rule_versions

        edited = rule_versions.edit_version(self.store, version, changes, self.actor.name, note)
        self.audit.record(self.actor, "attribution.rules.edit", f"version {version}",
                          {"version": version, "fields": sorted(changes)})
        return edited

    def activate_attribution_rules(self, version: int) -> RuleVersion:
        """Make `version` the active rule set (the one dashboards use). Audited as
        `attribution.rules.activate`, with the version it replaced."""
        from accountlens.analysis import rule_versions

        previous = rule_versions.active_version(self.store)
        active = rule_versions.activate(self.store, version, self.actor.name)
        self.audit.record(self.actor, "attribution.rules.activate", f"version {version}",
                          {"version": version, "previous": previous})
        return active

    def attribution_diff(self, v1: int | None, v2: int | None, **request: Any) -> pd.DataFrame:
        """How credit moves between rule set versions `v1` and `v2` (None: the active one),
        the other attribution parameters (outcome, model, by, as_of, since) the same."""
        from accountlens.analysis import rule_versions

        return rule_versions.diff(self.store, self.config, v1, v2, **request)

    def account_detail(self, account_id: str, as_of: Any = None) -> AccountDetail:
        """One account as of a day (default: the default as-of): record, hierarchy, units,
        users, contract and timeline (docs/web-api.md). Raises EntityNotFound (a LookupError)
        when there is no such account or nothing of it is known by then."""
        from accountlens.analysis.account_detail import account_detail

        return account_detail(self.store, self.config, account_id, as_of)

    def account_review(self, account_id: str, as_of: Any = None) -> str:
        """The account review for a customer meeting as one self-contained HTML page
        (docs/report.md); EntityNotFound as `account_detail`."""
        from accountlens.report.account_review import account_review

        html = account_review(self.store, self.config, account_id, as_of)
        self.audit.record(self.actor, "export.account_review", account_id,
                          {"as_of": str(as_of) if as_of else None})
        return html

    def user_detail(self, user_id: str, as_of: Any = None) -> UserDetail:
        """One user as of a day: record, memberships, accounts, daily activity and top events
        (docs/web-api.md). Raises EntityNotFound (a LookupError) for an unknown user."""
        from accountlens.analysis.user_detail import user_detail

        return user_detail(self.store, self.config, user_id, as_of)

    def metric_result(self, name: str, level: str | None = None, as_of: Any = None,
                      engine: str = "duckdb", parquet: str | Path | None = None,
                      filters: Mapping[str, Any] | None = None,
                      params: Mapping[str, Any] | None = None, **kwargs: Any) -> Result:
        """A registered metric at `level` as of a day. Account filters come as `filters` or
        as keywords (`industry="retail"`), metric parameters as `params` or as the other
        keywords (`period="month"`). `engine="spark"` runs it on Spark over the Parquet
        export (`parquet`, docs/spark.md)."""
        from accountlens.metrics.registry import metric_request, run

        filters, params = _split(filters, params, kwargs)
        request = metric_request(name, level, as_of, filters, params)
        return run(self.engine(engine, parquet), self.config.metrics, self.config.analysis,
                   request)

    def metric(self, name: str, level: str | None = None, as_of: Any = None,
               engine: str = "duckdb", parquet: str | Path | None = None,
               **kwargs: Any) -> pd.DataFrame:
        """`metric_result(...)` as a DataFrame:
        `ws.metric("seat_utilization", level="account", as_of="2024-03-31", industry="retail")`."""
        return self.metric_result(name, level, as_of, engine, parquet, **kwargs).to_frame()

    def metrics_table_result(self, names: list[str], level: str | None = None,
                             as_of: Any = None, engine: str = "duckdb",
                             parquet: str | Path | None = None,
                             filters: Mapping[str, Any] | None = None, **kwargs: Any) -> Result:
        """Several metrics as one table (one row per entity, their columns side by side),
        computed as one query; account filters as `filters` or keywords (docs/metrics.md)."""
        from accountlens.metrics.registry import as_date, normalize_filters
        from accountlens.metrics.table import run_table

        filters, _ = _split(filters, None, kwargs, params_allowed=False)
        return run_table(self.engine(engine, parquet), self.config.metrics, self.config.analysis,
                         list(names), level, as_date(as_of), normalize_filters(filters))

    def metrics_table(self, names: list[str], level: str | None = None, as_of: Any = None,
                      engine: str = "duckdb", parquet: str | Path | None = None,
                      **filters: Any) -> pd.DataFrame:
        """`metrics_table_result(...)` as a DataFrame."""
        return self.metrics_table_result(names, level, as_of, engine, parquet,
                                         **filters).to_frame()

    # --- engines and Parquet export (docs/spark.md) ------------------------------------------
    def export_parquet(self, directory: str | Path, partition: str = "day",
                       overwrite: bool = False) -> dict[str, Any]:
        """Write the tables metrics read as Parquet (events partitioned by date); the manifest."""
        from accountlens.model import rollup
        from accountlens.store.parquet import MODEL_TABLES

        # the materialized tables, else engines compute them from the events
        current = rollup.ensure_fresh(self.store, settings=self.config.metrics)
        tables = (*MODEL_TABLES, *rollup.MATERIALIZED) if current else MODEL_TABLES
        manifest = self.store.export_parquet(Path(directory), tables, partition, overwrite)
        self.audit.record(self.actor, "export.parquet", str(directory),
                          {"tables": {name: entry.get("rows") for name, entry
                                      in manifest.get("tables", {}).items()}})
        return manifest

    def engine(self, name: str = "duckdb", parquet: str | Path | None = None) -> Store:
        """The store metrics run on: this workspace's DuckDB, or engine `name` over a Parquet
        export (`parquet`, default `[<name>] parquet_dir`; the engine's settings: that section)."""
        if name == "duckdb" and parquet is None:
            return self.store
        settings = getattr(self.config, name, None) if name in PARQUET_ENGINES else None
        location = parquet
        events_lake = lake.of(getattr(self.store, "base", self.store))
        if location is None and settings is not None and events_lake is not None:
            location = events_lake.dir  # the lake itself: its events are always current
            self.publish_lake(when_changed=True)
        elif location is None and settings is not None:
            location = settings.parquet_dir  # relative to the workspace folder unless a URI
            location = location if is_uri(location) else self.root / location
        key = (name, str(location), self.book)
        if key not in self._engines:
            options = settings.model_dump(exclude={"parquet_dir"}) if settings else {}
            if isinstance(self.store, ScopedStore):  # the engine binds the book's rows only
                options["scope"] = (self.store.book_accounts(), self.store.book_users())
            self._engines[key] = open_parquet_engine(name, str(location), **options)
        return self._engines[key]

    # --- events as a lake (docs/lake.md) ---------------------------------------------------
    def lake_status(self) -> dict[str, Any]:
        """How the events are stored: `mode` (table | lake), and for a lake its folder, files,
        bytes, days (first and last), events and file moves still owed."""
        events_lake = lake.of(getattr(self.store, "base", self.store))
        if events_lake is not None:
            return events_lake.status(self.store)
        return {"mode": "table", "path": None, "files": 0, "bytes": 0, "days": 0,
                "first_day": None, "last_day": None,
                "events": int(self.store.scalar("SELECT count(*) FROM events")),
                "pending_moves": 0}

    def enable_lake(self) -> dict[str, Any]:
        """Move the events into the lake and set `[workspace] events_storage = "lake"`: the
        events first (one transaction), then the setting, so a crash between the two leaves
        a workspace that `enable_lake` finishes. Audited as `lake.enable`."""
        moved = 0
        store = self.store
        assert isinstance(store, DuckDBStore)
        with store.write_lock:
            if lake.of(store) is None:
                events_lake = lake.Lake(self.root)
                moved = events_lake.enable(store)
                store.lake = events_lake
            self._set_events_storage("lake")
        status = self.lake_status()
        self.audit.record(self.actor, "lake.enable", str(status["path"]),
                          {"moved": moved, "files": status["files"], "days": status["days"]})
        return {**status, "moved": moved}

    def disable_lake(self) -> dict[str, Any]:
        """Move the lake's events back into the DuckDB table and set `events_storage =
        "table"` (the same order as `enable_lake`). Audited as `lake.disable`."""
        moved = 0
        store = self.store
        assert isinstance(store, DuckDBStore)
        with store.write_lock:
            events_lake = lake.of(store)
            if events_lake is not None:
                moved = events_lake.disable(store)
                store.lake = None
                events_lake.unpublish()
                events_lake.remove_empty()
            self._set_events_storage("table")
        status = self.lake_status()
        self.audit.record(self.actor, "lake.disable", str(self.root / lake.LAKE_DIR),
                          {"moved": moved})
        return {**status, "moved": moved}

    def _set_events_storage(self, mode: str) -> None:
        from accountlens.config import set_workspace_setting

        if self.config.workspace.events_storage != mode:
            set_workspace_setting(self.root / CONFIG_FILE, "events_storage", mode)
            self.config = load_config(self.root / CONFIG_FILE)

    def publish_lake(self, when_changed: bool = False) -> dict[str, Any] | None:
        """Write the tables besides the events into the lake for Spark (the daily rollup when
        current; store/lake.py `publish`); with `when_changed`, only when the store changed
        since this object last did. None when the events are not a lake."""
        from accountlens.model import rollup
        from accountlens.store.parquet import EVENTS, MODEL_TABLES

        store = getattr(self.store, "base", self.store)  # a book's view: the workspace's own
        events_lake = lake.of(store)
        if events_lake is None:
            return None
        assert isinstance(store, DuckDBStore)
        stamp = (store.instance, store.data_version)
        if when_changed and getattr(self, "_lake_published", None) == stamp:
            return None
        current = rollup.ensure_fresh(store, settings=self.config.metrics)
        tables = [t for t in MODEL_TABLES if t != EVENTS]
        tables += list(rollup.MATERIALIZED) if current else []
        manifest = events_lake.publish(store, tables, SCHEMA_VERSION)
        self._lake_published = (store.instance, store.data_version)
        return manifest

    # --- governance (docs/governance.md, retention.md, privacy.md) ----------------------------
    def create_token(self, role: str, owner: str | None = None, accounts: list[str] | None = None,
                     expires: Any = None, name: str = "") -> dict[str, Any]:
        """A new API token (`{"token": SECRET, ...}`: the secret is shown this once), audited
        as this object's actor; `owner` / `accounts` set a csm token's book."""
        from accountlens.governance.token_admin import create_token

        return create_token(self.tokens, self.audit, self.actor, role, owner, accounts or (),
                            expires, name)

    def rotate_token(self, token_id: str) -> dict[str, Any]:
        """A new secret for the token (returned once); the old one stops working."""
        from accountlens.governance.token_admin import rotate_token

        return rotate_token(self.tokens, self.audit, self.actor, token_id)

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        from accountlens.governance.token_admin import revoke_token

        return revoke_token(self.tokens, self.audit, self.actor, token_id)

    def apply_retention(self, dry_run: bool = False) -> dict[str, Any]:
        """Remove raw data older than `[retention]` allows (the rollups stay); with `dry_run`,
        only count what would go. Recorded in the audit log."""
        from accountlens.governance.retention import apply_retention

        return apply_retention(self.store, self.config, self.root, self.actor, dry_run=dry_run)

    def delete_user(self, user_id: str | None = None, email: str | None = None,
                    load_log: bool = True) -> dict[str, Any]:
        """Delete a person (GDPR): every event, identity, membership, profile and quarantined
        event of theirs, corrected rollups, a suppression entry against re-ingestion, and a
        proof in the audit log. `load_log` loads acknowledged events first (a served
        workspace's loader is flushed by the server instead)."""
        from accountlens.governance.deletion import delete_user

        if load_log:
            self.load_log()
        result = delete_user(self.store, self.config, self.root, self.actor,
                             user_id=user_id, email=email)
        self.publish_lake()  # a lake's tables for Spark: written again without the person
        return result

    # --- status and quarantine --------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        # one count per imported entity's table (model/entities.py), then the events'
        entity_counts = "".join(f"(SELECT count(*) FROM {table}) AS {table},\n" for table in ENTITY_TABLES)
        counts = self.store.rows(
            f"""SELECT {entity_counts}
                (SELECT count(*) FROM events) AS events,
                (SELECT count(*) FROM events WHERE actor_kind = 'automation') AS automation_events,
                (SELECT count(*) FROM events WHERE attribution = 'unattributed') AS unattributed,
                (SELECT count(*) FROM quarantine WHERE replayed_at IS NULL) AS quarantined,
                (SELECT strftime(max(timestamp), '%Y-%m-%dT%H:%M:%S.%fZ') FROM events)
                    AS last_event_at"""
        )[0]
        counts["workspace"] = self.config.workspace.name
        counts["attribution"] = {r["rule"]: r["events"] for r in unattributed_summary(self.store)}
        counts["ingest_warnings"] = self.ingest_warnings()
        counts["unloaded_log_bytes"] = sum(p.stat().st_size for p in log_segments(self.log_dir))
        counts.update(self.disk_space())
        return counts

    def ingest_warnings(self) -> dict[str, dict[str, int]]:
        """Events stored with a correction (e.g. a future timestamp set to the receive time),
        per warning and per client that sent them (SDK name and version, else `collector`,
        `replay` or the import): `{"timestamp in the future": {"analytics-python 2.3.0": 3}}`."""
        counts: dict[str, dict[str, int]] = {}
        for row in self.store.rows("SELECT warning, client, count(*) AS n FROM ingest_warnings "
                                   "GROUP BY ALL ORDER BY warning, n DESC, client"):
            counts.setdefault(row["warning"], {})[row["client"]] = row["n"]
        return counts

    def disk_space(self) -> dict[str, Any]:
        """Free space for the log and the store, and whether either disk counts as full (less
        than LOW_SPACE_BYTES left); `accountlens serve` adds what its log and loader met."""
        space = {"log_free_bytes": free_bytes(self.log_dir), "store_free_bytes": free_bytes(self.root)}
        low = [f"{what} ({where}: {space[key]} bytes free)"
               for what, where, key in (("the event log's disk", self.log_dir, "log_free_bytes"),
                                        ("the store's disk", self.root, "store_free_bytes"))
               if space[key] < LOW_SPACE_BYTES]
        return {**space, "disk_full": bool(low),
                "ingest_paused_reason": f"disk full: {' and '.join(low)}" if low else None}

    def quarantine(self, include_replayed: bool = False, limit: int = 100) -> list[dict]:
        return self.store.arrow(
            """SELECT quarantine_id, message_id, reason, source,
                      strftime(quarantined_at, '%Y-%m-%dT%H:%M:%SZ') AS quarantined_at,
                      strftime(replayed_at, '%Y-%m-%dT%H:%M:%SZ') AS replayed_at,
                      CAST(raw AS VARCHAR) AS raw
               FROM quarantine WHERE ? OR replayed_at IS NULL
               ORDER BY quarantine_id LIMIT ?""",
            [include_replayed, limit],
        ).to_pylist()

    def replay_quarantine(self, ids: list[int] | None = None, patch: dict | None = None) -> LoadResult:
        """Run quarantined events through the pipeline again, optionally merging `patch` into each.

        Events that now load are marked replayed (kept for audit); the others stay quarantined.
        An id that names no quarantined event, or one already replayed, is an error: nothing
        is replayed.
        """
        from accountlens.ingest.pipeline import STAGING, run_pipeline

        try:
            patch_json = orjson.dumps(patch or {}).decode()
        except (orjson.JSONEncodeError, TypeError) as exc:
            raise WorkspaceError(f"the patch cannot be stored as JSON: {exc}") from exc
        with self.store.transaction():
            if ids is not None:  # an id that names nothing replayable: said, nothing replayed
                unknown = self.store.arrow(
                    """SELECT i.id, CAST(q.replayed_at AS VARCHAR) AS replayed_at
                       FROM (SELECT DISTINCT unnest(CAST(? AS BIGINT[])) AS id) i
                       LEFT JOIN quarantine q ON q.quarantine_id = i.id
                       WHERE q.quarantine_id IS NULL OR q.replayed_at IS NOT NULL ORDER BY i.id""",
                    [[i for i in ids if -2**63 <= i < 2**63]],
                ).to_pylist()
                missing = [str(r["id"]) for r in unknown if r["replayed_at"] is None]
                missing += [str(i) for i in dict.fromkeys(ids) if not -2**63 <= i < 2**63]  # beyond BIGINT: no such id
                done = [f"{r['id']} (at {r['replayed_at']})" for r in unknown if r["replayed_at"]]
                reasons = ([f"no quarantined event with id{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)}"] if missing else [])
                reasons += [f"already replayed: {', '.join(done)}"] if done else []
                if reasons:
                    raise WorkspaceError("; ".join(reasons) + " (see `accountlens quarantine list`"
                                         ", with --include-replayed for replayed ones)")
            self.store.execute(
                f"""CREATE OR REPLACE TEMP TABLE {STAGING} AS
                    SELECT quarantine_id AS line_no,
                           json_merge_patch(json_merge_patch(raw, json_object('messageId', message_id)),
                                            CAST(? AS JSON)) AS raw,
                           'replay:' || quarantine_id AS source,
                           coalesce(received_at, now()) AS received_fallback
                    FROM quarantine
                    WHERE replayed_at IS NULL AND (? OR list_contains(?, quarantine_id))""",
                [patch_json, ids is None, ids or []],
            )
            replayed = [r["line_no"] for r in self.store.arrow(f"SELECT line_no FROM {STAGING}").to_pylist()]
            result = run_pipeline(self.store, self.config.ingest)
            self.store.execute(f"DROP TABLE {STAGING}")
            self.store.execute(
                """UPDATE quarantine SET replayed_at = now()
                   WHERE list_contains(?, quarantine_id)
                     AND message_id IN (SELECT message_id FROM events)""",
                [replayed],
            )
        return result


    # --- experiments (docs/experiments.md) ----------------------------------------------------
    def experiments(self, as_of: Any = None) -> list[dict[str, Any]]:
        """Every experiment known (created by `assign_experiment`, or seen in exposures up to
        `as_of`), one row per variant: accounts assigned and exposed, first and last exposure."""
        from accountlens.analysis.experiments import experiments_list
        from accountlens.metrics.registry import as_date

        return experiments_list(self.store, as_date(as_of))

    def assign_experiment(self, experiment: str, variants: list[str],
                          weights: list[float] | None = None, stratify: str | None = None,
                          accounts: str = "all", description: str | None = None) -> dict[str, Any]:
        """Assign accounts to the variants of `experiment`: deterministic by account (a salted
        hash through the cumulative `weights`), balanced within strata with `stratify`
        (size_band or arr), persisted; a rerun assigns only accounts new since. Audited."""
        from accountlens.analysis.experiments import assign

        done = assign(self.store, self.config, experiment, variants, weights, stratify,
                      accounts, self.actor.name, description)
        self.audit.record(self.actor, "experiment.assign", done["experiment"],
                          {"variants": done["variants"], "weights": done["weights"],
                           "stratify_by": done["stratify_by"], "assigned": done["assigned"],
                           "kept": done["kept"]})
        return done

    def experiment_power(self, accounts_per_arm: int | None = None, effect: float | None = None,
                         users_per_account: float | None = None, icc: float | None = None,
                         sd: float | None = None, metric: str | None = None,
                         unit: str = "account", alpha: float = 0.05, power: float = 0.8,
                         as_of: Any = None) -> dict[str, Any]:
        """The minimum detectable effect with `accounts_per_arm` accounts per arm, or the
        accounts per arm needed to detect `effect`; with `metric`, the sd (and with
        unit="user" the users per account and ICC) estimated from the data as of `as_of`."""
        from accountlens.analysis.experiments import power as experiment_power
        from accountlens.metrics.registry import as_date

        return experiment_power(self.store, self.config, accounts_per_arm, effect,
                                users_per_account, icc, sd, metric, unit, alpha, power,
                                as_date(as_of))


def _split(filters: Mapping[str, Any] | None, params: Mapping[str, Any] | None,
           kwargs: dict[str, Any], params_allowed: bool = True) -> tuple[dict, dict]:
    """Account filters and metric parameters, given apart or as keywords (a filter's name
    says which: FILTERS of metrics/levels.py)."""
    from accountlens.metrics.levels import FILTERS
    from accountlens.metrics.registry import MetricError

    filters = {**(filters or {}), **{k: v for k, v in kwargs.items() if k in FILTERS}}
    params = {**(params or {}), **{k: v for k, v in kwargs.items() if k not in FILTERS}}
    if params and not params_allowed:
        raise MetricError(f"unknown filter {next(iter(params))!r}; use one of {', '.join(FILTERS)}")
    return ({k: v for k, v in filters.items() if v is not None},
            {k: v for k, v in params.items() if v is not None})


def open(root: str | Path, read_only: bool = False) -> Workspace:
    """Open a workspace folder: `ws = accountlens.open("DIR")`."""
    return Workspace.open(root, read_only=read_only)


def init(root: str | Path, name: str | None = None) -> Workspace:
    return Workspace.init(root, name)
