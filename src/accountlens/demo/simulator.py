"""`generate_demo`: simulate a B2B SaaS company's year and load it through the real ingestion paths.

CRM/billing data goes in as CSV imports; events are sent the way the collector stores them
(Segment JSON lines appended to the durable log, with `sentAt`/`receivedAt` and some client
clock skew) and then loaded by the loader. The same seed always gives the same workspace.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from accountlens.demo.activity import ActivitySimulator, EventBuffer
from accountlens.demo.world import World, build_world
from accountlens.ingest.loader import load_pending
from accountlens.ingest.normalize import Limits, encode_events
from accountlens.ingest.pipeline import LoadResult
from accountlens.workspace import Workspace

CHUNK_EVENTS = 50_000
RETRY_SHARE = 0.003  # events a flaky client sends twice (dedup must keep one)
IMPORT_ORDER = ("accounts", "units", "users", "memberships", "subscriptions", "outcomes")
PRODUCT = "accountlens-cloud"

Progress = Callable[[str, float], None]


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d")


def _iso_ms(seconds: np.ndarray) -> np.ndarray:
    millis = np.round(seconds * 1000.0).astype(np.int64).astype("datetime64[ms]")
    return np.char.add(np.datetime_as_string(millis, unit="ms"), "Z")


# --------------------------------------------------------------------------------------------
# CRM / billing exports
# --------------------------------------------------------------------------------------------
def crm_tables(world: World) -> dict[str, list[dict]]:
    """Rows of each CRM/billing CSV, keyed by import kind (columns as in model/entities.py ENTITIES)."""
    tables: dict[str, list[dict]] = {kind: [] for kind in IMPORT_ORDER}
    crm_users: dict[str, dict] = {}
    for account in world.accounts:
        tables["accounts"].append({
            "account_id": account.account_id, "name": account.name, "domain": account.domain,
            "industry": account.industry, "region": account.region, "employees": account.employees,
            "plan": account.plan, "parent_account_id": account.parent_account_id or "",
            "created_at": _iso(account.created_at),
        })
        for sub in account.subscriptions:
            tables["subscriptions"].append({
                "subscription_id": sub.subscription_id, "account_id": sub.account_id,
                "product": PRODUCT, "plan": sub.plan, "seats": sub.seats, "arr": sub.arr,
                "start": _day(sub.start), "end": _day(sub.end), "status": sub.status,
                "entitlements": json.dumps(sub.entitlements),
            })
        for outcome in account.outcomes:
            tables["outcomes"].append({
                "account_id": outcome.account_id, "kind": outcome.kind, "date": _day(outcome.at),
                "arr_delta": outcome.arr_delta, "source": outcome.source,
            })
        if not account.crm_roles:  # this customer tells us roles only through the SDK
            continue
        for unit in account.units:
            tables["units"].append({
                "unit_id": unit.unit_id, "account_id": unit.account_id, "kind": unit.kind,
                "name": unit.name, "parent_unit_id": unit.parent.unit_id if unit.parent else "",
            })
        for user in account.users:
            crm_users.setdefault(user.user_id, {
                "user_id": user.user_id, "email": user.email, "name": user.name,
                "created_at": _iso(user.joined),
            })
            for stint in user.stints:
                if stint.account_id == account.account_id:
                    tables["memberships"].append({
                        "user_id": user.user_id, "account_id": stint.account_id,
                        "unit_id": stint.team.unit_id, "role": stint.role,
                        "valid_from": _iso(stint.start),
                        "valid_to": _iso(stint.end) if stint.end is not None else "",
                    })
    tables["users"] = list(crm_users.values())
    return tables


def write_csvs(tables: dict[str, list[dict]], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, rows in tables.items():
        path = folder / f"{kind}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        paths[kind] = path
    return paths


# --------------------------------------------------------------------------------------------
# events on the wire
# --------------------------------------------------------------------------------------------
def wire_events(buffer: EventBuffer, rng: np.random.Generator, ids: random.Random) -> list[dict]:
    """Stamp messageId, timestamp, sentAt and receivedAt; order as the collector received them.

    Clients batch and flush a few seconds later (a few are offline for hours); a skewed device
    clock shifts `timestamp` and `sentAt` alike, which the loader's correction removes.
    """
    n = len(buffer.events)
    true_time = np.asarray(buffer.times)
    skew = np.asarray(buffer.skews)
    delay = rng.exponential(2.0, n) + np.where(rng.random(n) < 0.01, rng.uniform(600, 6 * 3600, n), 0.0)
    network = rng.uniform(0.03, 0.4, n)
    stamped = _iso_ms(true_time + skew)
    sent = _iso_ms(true_time + delay + skew)
    received = true_time + delay + network
    received_text = _iso_ms(received)
    for i, event in enumerate(buffer.events):
        event["messageId"] = str(uuid.UUID(int=ids.getrandbits(128), version=4))
        event["timestamp"] = str(stamped[i])
        event["sentAt"] = str(sent[i])
        event["receivedAt"] = str(received_text[i])
    order = np.argsort(received, kind="stable")
    return [buffer.events[i] for i in order]


def chunks_with_retries(events: list[dict], rng: np.random.Generator) -> list[list[dict]]:
    """Split into load chunks; a few events are resent (same messageId) in the next chunk."""
    chunks = [events[i:i + CHUNK_EVENTS] for i in range(0, len(events), CHUNK_EVENTS)]
    for index, chunk in enumerate(chunks):
        resent = [dict(chunk[i]) for i in np.flatnonzero(rng.random(len(chunk)) < RETRY_SHARE)]
        chunks[min(index + 1, len(chunks) - 1)].extend(resent)
    return chunks


def send_events(ws: Workspace, chunks: list[list[dict]], report: Progress) -> LoadResult:
    """Append each chunk to the durable log (as the collector does), then load it."""
    cfg = ws.config.ingest
    limits = Limits(cfg.max_event_bytes, cfg.max_batch_bytes)
    total = LoadResult()
    event_log = ws.open_log()
    try:
        for index, chunk in enumerate(chunks):
            event_log.append(encode_events(chunk, limits)).result()
            total.add(load_pending(ws.store, cfg, event_log))
            report(f"loading events ({index + 1}/{len(chunks)})", 0.45 + 0.5 * (index + 1) / len(chunks))
    finally:
        event_log.close()
    return total


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def generate_demo(root: Path, accounts: int = 60, seed: int = 7,
                  progress: Progress | None = None) -> dict:
    """Create a demo workspace at `root` (must not exist yet) and return counts of what it holds."""
    report = progress or (lambda stage, fraction: None)
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = random.Random(seed)
    report("simulating accounts and people", 0.02)
    world = build_world(rng, accounts)
    report("simulating product usage", 0.1)
    buffer = ActivitySimulator(world, rng).run(invalid=6 + accounts // 6, rand=ids)
    events = wire_events(buffer, rng, ids)
    chunks = chunks_with_retries(events, rng)
    report("writing CRM and billing exports", 0.3)
    ws = Workspace.init(root, name="demo")
    try:
        paths = write_csvs(crm_tables(world), root / "demo-data")
        for step, kind in enumerate(IMPORT_ORDER):
            report(f"importing {kind}", 0.32 + 0.02 * step)
            ws.import_entities(kind, paths[kind])
        loaded = send_events(ws, chunks, report)
        status = ws.status()
    finally:
        ws.close()
    report("done", 1.0)
    return {
        "accounts": status["accounts"], "org_units": status["org_units"], "users": status["users"],
        "memberships": status["memberships"], "subscriptions": status["subscriptions"],
        "outcomes": status["outcomes"], "events": status["events"],
        "automation_events": status["automation_events"], "unattributed": status["unattributed"],
        "quarantined": status["quarantined"], "sent": loaded.received,
        "duplicates": loaded.duplicates,
    }
