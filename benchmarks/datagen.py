"""Synthetic Segment-format events for benchmarks, generated vectorized (numpy draws, DuckDB text).

`generate(n, folder)` writes the same events as JSONL and flattened Parquet; `entities` writes
matching CRM/billing CSVs for metric benchmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from benchmarks.registry import Context, Row, benchmark

EVENT_NAMES = (
    "Report Created", "Report Viewed", "Report Shared", "Dashboard Viewed", "Dashboard Shared",
    "Document Edited", "Comment Added", "Task Completed", "Workflow Run", "Workflow Approved",
    "Plan Approved", "Export Downloaded", "Integration Connected", "User Invited", "Search Performed",
    "Filter Applied", "Alert Created", "API Key Created", "Settings Updated", "File Uploaded",
)
AUTOMATION_NAMES = ("Sync Completed", "Workflow Run", "Export Downloaded", "Webhook Delivered")
PAGES = ("/home", "/reports", "/reports/view", "/dashboards", "/settings", "/billing", "/docs")
PRODUCTS = ("core", "analytics", "api")
ROLES = ("analyst", "engineer", "manager", "director", "admin")
INDUSTRIES = ("software", "finance", "healthcare", "retail", "manufacturing", "education")
PLANS = ("starter", "team", "business", "enterprise")
# Kinds of generated events and their shares.
KINDS = ("track", "automation", "page", "identify", "group")
KIND_SHARES = (0.82, 0.03, 0.11, 0.03, 0.01)
END = "2025-06-30 00:00:00+00"
DAYS = 180


@dataclass(frozen=True)
class Dataset:
    events: int
    accounts: int
    users: int
    jsonl: Path
    parquet: Path | None
    jsonl_seconds: float
    parquet_seconds: float
    draw_seconds: float


def connect(path: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection without the progress bar (it would clutter the benchmark log)."""
    con = duckdb.connect(path)
    con.execute("SET enable_progress_bar = false")
    return con


def scale(events: int) -> tuple[int, int]:
    """(accounts, users) for `events`: 5,000 / 100,000 at 1M events and above, fewer below."""
    users = int(min(100_000, max(20, events // 10)))
    accounts = int(min(5_000, max(2, users // 20)))
    return accounts, users


def _skewed(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    weights = rng.lognormal(0.0, sigma, size)
    return weights / weights.sum()


def _user_accounts(rng: np.random.Generator, population: int) -> np.ndarray:
    """The account of each user (population of `scale(population)`): a few large accounts and
    many small ones."""
    n_accounts, n_users = scale(population)
    return rng.choice(n_accounts, n_users, p=_skewed(rng, n_accounts, 1.0))


def draw(events: int, seed: int = 7, population: int | None = None) -> pa.Table:
    """Numeric draws, one row per event: who, which account, what kind, when (sorted).

    The accounts and users are those of `scale(population)` (default: `events`), so a smaller
    sample of the same population can be drawn for scaling comparisons."""
    rng = np.random.default_rng(seed)
    population = population or events
    n_accounts, n_users = scale(population)
    user_account = _user_accounts(rng, population)
    # A few heavy users and many light ones.
    user = rng.choice(n_users, events, p=_skewed(rng, n_users, 1.2)).astype(np.int32)
    kind = rng.choice(len(KINDS), events, p=KIND_SHARES).astype(np.int8)
    account = user_account[user].astype(np.int32)
    automation = kind == KINDS.index("automation")
    account[automation] = rng.integers(0, n_accounts, int(automation.sum()))
    seconds = np.sort(rng.integers(0, DAYS * 86_400_000, events)).astype(np.int64)
    return pa.table({
        "i": np.arange(events, dtype=np.int64),
        "kind": kind,
        "user_no": user,
        "account_no": account,
        "name_no": rng.integers(0, len(EVENT_NAMES), events, dtype=np.int16),
        "object_no": rng.integers(0, 40, events, dtype=np.int16),
        "product_no": rng.choice(len(PRODUCTS), events, p=(0.7, 0.2, 0.1)).astype(np.int8),
        "with_group": rng.random(events) < 0.5,
        "duration_ms": rng.integers(5, 5_000, events, dtype=np.int32),
        "offset_ms": seconds,
    })


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _flat_sql(seed: int) -> str:
    """The generated events as flattened Segment columns (`context.groupId` …), from `_draws`."""
    kinds = _list(KINDS)
    return f"""
    WITH d AS (
        SELECT *, {kinds}[kind + 1] AS k, md5('{seed}-' || i) AS h,
               'acct-' || account_no AS account_id, 'user-' || user_no AS user_id
        FROM _draws
    )
    SELECT
        CASE k WHEN 'automation' THEN 'track' ELSE k END AS "type",
        substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-'
            || substr(h, 17, 4) || '-' || substr(h, 21, 12) AS "messageId",
        CASE WHEN k <> 'automation' THEN user_id END AS "userId",
        CASE k WHEN 'track' THEN {_list(EVENT_NAMES)}[name_no + 1]
               WHEN 'automation' THEN {_list(AUTOMATION_NAMES)}[name_no % 4 + 1] END AS "event",
        CASE WHEN k = 'page' THEN {_list(PAGES)}[name_no % 7 + 1] END AS "name",
        CASE WHEN k = 'group' THEN account_id END AS "groupId",
        strftime(TIMESTAMPTZ '{END}' - INTERVAL {DAYS} DAY + to_milliseconds(offset_ms),
                 '%Y-%m-%dT%H:%M:%S.%gZ') AS "timestamp",
        CASE WHEN k = 'automation' OR (k IN ('track', 'page') AND with_group) THEN account_id
             END AS "context.groupId",
        CASE WHEN k = 'automation' THEN 'accountlens-bench-bot' ELSE 'analytics-python' END
            AS "context.library.name",
        CASE WHEN k IN ('track', 'automation')
             THEN account_id || '-obj-' || (object_no * 7 + name_no % 7) END
            AS "properties.object_id",
        CASE WHEN k IN ('track', 'automation', 'page') THEN {_list(PRODUCTS)}[product_no + 1] END
            AS "properties.product",
        CASE WHEN k IN ('track', 'automation') THEN duration_ms END AS "properties.duration_ms",
        CASE WHEN k = 'automation' THEN 'automation' END AS "properties.actor_kind",
        CASE WHEN k = 'page' THEN 'https://app.example.com' || {_list(PAGES)}[name_no % 7 + 1] END
            AS "properties.url",
        CASE WHEN k = 'identify' THEN user_id || '@' || account_id || '.example.com' END
            AS "traits.email",
        CASE k WHEN 'identify' THEN 'User ' || user_no WHEN 'group' THEN 'Account ' || account_no
               END AS "traits.name",
        CASE WHEN k = 'identify' THEN {_list(ROLES)}[user_no % 5 + 1] END AS "traits.role",
        CASE WHEN k = 'group' THEN account_id || '.example.com' END AS "traits.domain",
        CASE WHEN k = 'group' THEN {_list(INDUSTRIES)}[account_no % 6 + 1] END AS "traits.industry",
        CASE WHEN k = 'group' THEN {_list(PLANS)}[account_no % 4 + 1] END AS "traits.plan",
        CASE WHEN k = 'group' THEN 10 + (account_no * 37) % 5000 END AS "traits.employees"
    FROM d ORDER BY i
    """


def _json_sql(columns: list[str]) -> str:
    """One Segment JSON object per flattened row; json_merge_patch drops the null fields."""
    tree: dict = {}
    for column in columns:
        node = tree
        *parents, leaf = column.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = column

    def leaves(node: dict) -> list[str]:
        return [c for sub in node.values() for c in (leaves(sub) if isinstance(sub, dict) else [sub])]

    def build(node: dict) -> str:
        parts = []
        for key, sub in node.items():
            if isinstance(sub, dict):
                # An object whose fields are all null is left out, not written as `{}`.
                present = " OR ".join(f'f."{c}" IS NOT NULL' for c in leaves(sub))
                parts.append(f'"{key}" := CASE WHEN {present} THEN {build(sub)} END')
            else:
                parts.append(f'"{key}" := f."{sub}"')
        return "struct_pack(" + ", ".join(parts) + ")"

    return ("SELECT CAST(json_merge_patch('{}', to_json(" + build(tree) + ")) AS VARCHAR) AS line"
            " FROM _flat f")


def generate(events: int, folder: Path, seed: int = 7, parquet: bool = True,
             population: int | None = None) -> Dataset:
    """Write `events.jsonl` (and `events.parquet`) with `events` synthetic Segment events."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    draws = draw(events, seed, population)
    draw_seconds = time.perf_counter() - started
    con = connect()
    try:
        con.register("_draws", draws)
        con.execute(f"CREATE TEMP VIEW _flat AS {_flat_sql(seed)}")
        columns = [r[0] for r in con.execute("DESCRIBE SELECT * FROM _flat").fetchall()]
        jsonl = folder / "events.jsonl"
        started = time.perf_counter()
        # CSV without quoting writes each JSON text verbatim, one per line.
        con.execute(
            f"COPY ({_json_sql(columns)}) TO ? (FORMAT csv, HEADER false, QUOTE '', ESCAPE '',"
            " DELIMITER '\t')",
            [str(jsonl)],
        )
        jsonl_seconds = time.perf_counter() - started + draw_seconds
        parquet_path, parquet_seconds = None, 0.0
        if parquet:
            parquet_path = folder / "events.parquet"
            started = time.perf_counter()
            con.execute("COPY (SELECT * FROM _flat) TO ? (FORMAT parquet, COMPRESSION zstd)",
                        [str(parquet_path)])
            parquet_seconds = time.perf_counter() - started + draw_seconds
    finally:
        con.close()
    accounts, users = scale(population or events)
    return Dataset(events, accounts, users, jsonl, parquet_path, jsonl_seconds, parquet_seconds,
                   draw_seconds)


def entities(population: int, folder: Path, seed: int = 7) -> dict[str, Path]:
    """accounts / memberships / subscriptions CSVs matching `generate(…, seed, population)`
    (`population` defaults to the number of events there)."""
    n_accounts, n_users = scale(population)
    user_account = _user_accounts(np.random.default_rng(seed), population)
    con = connect()
    paths = {kind: folder / f"{kind}.csv" for kind in ("accounts", "memberships", "subscriptions")}
    try:
        con.register("_users", pa.table({"user_no": np.arange(n_users),
                                         "account_no": user_account.astype(np.int32)}))
        con.execute(
            f"""COPY (SELECT 'acct-' || a AS account_id, 'Account ' || a AS name,
                      'acct-' || a || '.example.com' AS domain,
                      {_list(INDUSTRIES)}[a % 6 + 1] AS industry, {_list(PLANS)}[a % 4 + 1] AS plan,
                      10 + (a * 37) % 5000 AS employees
               FROM range({n_accounts}) t(a)) TO ? (HEADER)""", [str(paths["accounts"])])
        con.execute(
            f"""COPY (SELECT 'user-' || user_no AS user_id, 'acct-' || account_no AS account_id,
                      {_list(ROLES)}[user_no % 5 + 1] AS role,
                      TIMESTAMPTZ '{END}' - INTERVAL {DAYS + 30} DAY AS valid_from
               FROM _users) TO ? (HEADER)""", [str(paths["memberships"])])
        con.execute(
            f"""COPY (SELECT 'sub-' || a AS subscription_id, 'acct-' || a AS account_id,
                      'core' AS product, {_list(PLANS)}[a % 4 + 1] AS plan,
                      5 + (a * 13) % 200 AS seats, 1000.0 * (5 + (a * 13) % 200) AS arr,
                      -- Half started a year before the events (a revenue cohort), half with
                      -- them (activation); every seventh ended two months before the last day.
                      DATE '{END[:10]}' - CASE WHEN a % 2 = 0 THEN 400 ELSE {DAYS} END AS start,
                      DATE '{END[:10]}' + CASE WHEN a % 7 = 0 THEN -60 ELSE 185 END AS "end",
                      CASE WHEN a % 7 = 0 THEN 'ended' ELSE 'active' END AS status
               FROM range({n_accounts}) t(a)) TO ? (HEADER)""", [str(paths["subscriptions"])])
    finally:
        con.close()
    return paths


def dataset(ctx: Context, events: int | None = None, population: int | None = None,
            parquet: bool = True) -> Dataset:
    """The run's shared dataset of `events` (default `ctx.ingest_events`) events drawn from the
    population of `population` events, generated on first use."""
    events = events or ctx.ingest_events
    population = population or events
    # Keyed by the population drawn from: 1M events of a 10M population are the 1M dataset.
    name = f"data-{events}" + ("-of-{}-{}".format(*scale(population))
                               if scale(population) != scale(events) else "")
    return ctx.cached(name, lambda: generate(events, ctx.data_dir / name, parquet=parquet,
                                             population=population))


@benchmark("datagen", "Data generation", order=10)
def datagen_benchmark(ctx: Context) -> list[Row]:
    """Synthetic Segment events (track, page, identify, group; `context.groupId` on about half,
    automation events without `userId`, `properties.object_id`) for the scaled account/user
    population, drawn with numpy and rendered to JSON and Parquet by DuckDB. Every later
    benchmark reads these files."""
    data = dataset(ctx)
    size = data.jsonl.stat().st_size
    rows = [
        Row("datagen.events", "events generated", data.events, "events",
            note=f"{data.accounts:,} accounts, {data.users:,} users"),
        Row("datagen.jsonl_rate", "JSONL generation rate", data.events / data.jsonl_seconds,
            "events/s", note=f"{data.jsonl_seconds:.1f} s incl. {data.draw_seconds:.1f} s of draws"),
        Row("datagen.jsonl_size", "JSONL size", size / 1e6, "MB",
            note=f"{size / data.events:.0f} bytes/event"),
    ]
    if data.parquet is not None:
        rows += [
            Row("datagen.parquet_rate", "Parquet generation rate",
                data.events / data.parquet_seconds, "events/s",
                note=f"{data.parquet_seconds:.1f} s, flattened columns"),
            Row("datagen.parquet_size", "Parquet size", data.parquet.stat().st_size / 1e6, "MB"),
        ]
    return rows
