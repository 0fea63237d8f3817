"""`generate_demo`: simulate two years of a B2B SaaS company and load them through the real
ingestion paths.

The steps: the customer base and its people (world.py); their contracts and the outcome at each
contract end, drawn from how the account behaved before it (here); their product telemetry
(activity.py); then CRM/billing data goes in as CSV imports and events are sent the way the
collector stores them (Segment JSON lines appended to the durable log, with `sentAt`/`receivedAt`
and some client clock skew) and loaded by the loader. The same seed always gives the same
workspace.
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
from accountlens.demo.world import (
    CONSULTANCY_DOMAINS,
    CONTRACT_DAYS,
    DAY,
    END,
    LEAD_DAYS,
    MOMENTUM,
    REGIONS,
    SEAT_PRICE,
    START,
    TRIAL_DAYS,
    Account,
    Behaviour,
    Names,
    Outcome,
    Stint,
    Subscription,
    User,
    World,
    add_people,
    build_world,
    day_start,
    expected_mau,
    joiner_roles,
    leave,
    sigmoid,
)
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
# contracts and outcomes
# --------------------------------------------------------------------------------------------
def settle(rng: np.random.Generator, world: World) -> None:
    """Every account's contracts and outcomes; then who referred whom and the consultants
    (both need to know which accounts are still customers)."""
    for account in world.accounts:
        _contracts(rng, world.names, account)
    _referrals(rng, world.accounts)
    world.consultants = _consultants(rng, world.names, world.accounts)


def observe(account: Account, seats: int, end: float) -> Behaviour:
    """What the account looked like a month before its contract ends on `end`."""
    at = end - LEAD_DAYS * DAY
    now, before = expected_mau(account, at), expected_mau(account, at - 90 * DAY)
    champion = account.champion
    assert champion is not None  # every account has one once its people exist
    left = champion.stints[-1].end is not None and champion.stints[-1].end <= at
    quiet = champion.quiet_from is not None and champion.quiet_from <= at
    return Behaviour(utilization=now / seats, user_trend=(now - before) / max(before, 1.0),
                     champion_gone=left or quiet, stall_share=account.stall_share,
                     habit=account.has_sequence)


def renewal_kind(rng: np.random.Generator, b: Behaviour) -> str:
    """Churn is likelier with idle seats, shrinking use, the champion gone and stalled work
    (and less likely with the habit); expansion with seats near their cap and growing use;
    contraction with many idle seats; else renewal."""
    risk = (-2.1 + 4.0 * (0.6 - min(b.utilization, 1.0)) + 5.0 * max(-b.user_trend, 0.0)
            + 2.4 * b.champion_gone + 4.0 * (b.stall_share - 0.1) - 1.2 * b.habit)
    if rng.random() < sigmoid(risk):
        return "churn"
    growth = -2.0 + 8.0 * (b.utilization - 0.85) + 3.0 * max(b.user_trend, 0.0) + 0.8 * b.habit
    if rng.random() < sigmoid(growth):
        return "expansion"
    return "contraction" if b.utilization < 0.5 and rng.random() < 0.7 else "renewal"


def _stop(account: Account, at: float) -> None:
    """The account churned at `at`: nothing of it happens afterwards (the CRM keeps the
    memberships it had then)."""
    account.active_until = at
    for user in account.users:
        user.stints = [s for s in user.stints if s.account_id != account.account_id or s.start < at]
        for stint in user.stints:
            if stint.account_id == account.account_id and stint.end is not None and stint.end > at:
                stint.end = None
    account.users = [u for u in account.users if u.stints]


class _Ledger:
    """An account's subscriptions and outcomes, numbered in order."""

    def __init__(self, account: Account, entitlements: dict):
        self.account, self.entitlements = account, entitlements

    def subscribe(self, plan: str, seats: int, arr: float, start: float, status: str,
                  days: int = CONTRACT_DAYS, entitlements: dict | None = None) -> None:
        account = self.account
        account.subscriptions.append(Subscription(
            f"sub-{account.account_id[4:]}-{len(account.subscriptions) + 1}", account.account_id,
            plan, seats, round(arr, 2), start, start + days * DAY, status,
            entitlements if entitlements is not None else self.entitlements))

    def outcome(self, kind: str, at: float, arr_delta: float, source: str) -> None:
        self.account.outcomes.append(Outcome(self.account.account_id, kind, at,
                                             round(arr_delta, 2), source))


def _contracts(rng: np.random.Generator, names: Names, account: Account) -> None:
    """A trial (converted or not), the first annual contract and, when it ends inside the
    history, the renewal decision drawn from the account's behaviour, and its consequences."""
    seats = max(5, int(round(account.initial_staff * account.headroom)))
    price = SEAT_PRICE[account.plan] * float(rng.uniform(0.85, 1.1))
    entitlements: dict = {"api_calls": account.api_quota, "modules": account.modules}
    if account.api_quota == 0:
        entitlements = {"modules": account.modules}
    ledger = _Ledger(account, entitlements)
    start = day_start(account.created_at)
    if account.trial:
        trial_end = start + TRIAL_DAYS * DAY
        # a trial converts unless few of its people took it up
        engaged = expected_mau(account, trial_end) / account.initial_staff
        converts = rng.random() >= sigmoid(-3.0 + 8.0 * (0.6 - engaged))
        ledger.subscribe("trial", seats, 0.0, start, "converted" if converts else "expired",
                         TRIAL_DAYS, {"modules": account.modules})
        ledger.outcome("conversion" if converts else "churn", trial_end,
                       seats * price if converts else 0.0, "crm")
        if not converts:
            _stop(account, trial_end)
            return
        start = trial_end
    end, arr = start + CONTRACT_DAYS * DAY, seats * price
    if end >= END:
        ledger.subscribe(account.plan, seats, arr, start, "active")
        return
    account.behaviour = behaviour = observe(account, seats, end)
    kind = renewal_kind(rng, behaviour)
    ledger.subscribe(account.plan, seats, arr, start, "churned" if kind == "churn" else "renewed")
    if kind == "churn":
        ledger.outcome("churn", end, -arr, "billing")
        _stop(account, end)
        return
    new_seats, ents = seats, entitlements
    if kind == "expansion":
        new_seats = max(seats + 2, int(round(seats * float(rng.uniform(1.2, 1.5)))))
        if "workflows" not in account.modules:
            ents = dict(entitlements, modules=account.modules + ["workflows"])
    elif kind == "contraction":
        in_use = expected_mau(account, end - LEAD_DAYS * DAY)
        new_seats = max(3, min(int(round(seats * 0.85)), int(round(in_use * 1.15))))
    uplift = float(rng.uniform(1.0, 1.05)) if kind == "renewal" else 1.0
    new_arr = new_seats * price * 1.03 * uplift
    ledger.subscribe(account.plan, new_seats, new_arr, end, "active", entitlements=ents)
    ledger.outcome(kind, end, new_arr - arr, "billing")
    _after_renewal(rng, names, account, kind, end, seats - new_seats)


def _after_renewal(rng: np.random.Generator, names: Names, account: Account, kind: str,
                   end: float, seats_cut: int) -> None:
    """An expansion brings new people and more use; a contraction lets idle people go."""
    renewed_use = min(max(MOMENTUM[account.momentum], 0.7), 1.0)  # a decline partly recovers
    account.factor_after = {"expansion": 1.3, "contraction": 0.8}.get(kind, renewed_use)
    if kind == "expansion" and end + 10 * DAY < END:
        n = max(2, int(rng.poisson(account.initial_staff * 0.3)))
        stop = min(end + 120 * DAY, END - 5 * DAY)
        add_people(rng, names, account, joiner_roles(rng, n),
                   [float(rng.uniform(end, stop)) for _ in range(n)])
    elif kind == "contraction":
        idle = [u for u in account.users[1:] if u.dormant or u.quiet_from is not None]
        for user in idle[:max(1, seats_cut)]:
            when = end + float(rng.uniform(0, 20)) * DAY
            if when < END:
                leave(user, account, when)


def _referrals(rng: np.random.Generator, accounts: list[Account]) -> None:
    """Some accounts were referred: a user elsewhere invited their first admin earlier."""
    for account in accounts:
        if account.created_at <= START + 45 * DAY or rng.random() < 0.65:
            continue
        inviters = [u for a in accounts if a is not account and a.created_at < account.created_at - 30 * DAY
                    and a.active_until > account.created_at for u in a.users[:6] if not u.dormant]
        if inviters:
            inviter = inviters[rng.integers(len(inviters))]
            account.referred_by = inviter.user_id
            account.users[0].invited_by = inviter.user_id


def _consultants(rng: np.random.Generator, names: Names, accounts: list[Account]) -> list[User]:
    """A few outside consultants who work in two customer accounts at once."""
    crm = [a for a in accounts if a.crm_roles and a.created_at < START + 300 * DAY
           and a.active_until >= END]
    found = []
    for index in range(max(1, len(accounts) // 20)):
        if len(crm) < 2:
            break
        first, second = (crm[i] for i in rng.choice(len(crm), 2, replace=False))
        full_name, email = names.person(CONSULTANCY_DOMAINS[index % len(CONSULTANCY_DOMAINS)])
        user = User(f"c-{index + 1:03d}", email, full_name, engagement=1.3,
                    utc_offset=REGIONS[first.region], clock_skew=0.0)
        start = max(first.created_at, second.created_at) + float(rng.uniform(10, 120)) * DAY
        for account in (first, second):
            team = account.teams[rng.integers(len(account.teams))]
            user.stints.append(Stint(account.account_id, team, "analyst", start))
            account.users.append(user)
            start += float(rng.uniform(5, 40)) * DAY
        user.is_consultant = True
        found.append(user)
    return found


# --------------------------------------------------------------------------------------------
# CRM / billing exports
# --------------------------------------------------------------------------------------------
# The customer-success managers who own the demo's accounts (the CRM's `owner`: a csm token's
# book, docs/governance.md); a subsidiary is in its parent's book through the hierarchy.
DEMO_CSMS = ("ana.lima@vendor.example", "ben.okafor@vendor.example", "chloe.martin@vendor.example")


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
            "owner": DEMO_CSMS[int(account.account_id.rsplit("-", 1)[1]) % len(DEMO_CSMS)],
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
    settle(rng, world)
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
