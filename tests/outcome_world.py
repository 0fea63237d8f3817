"""A generated workspace with a planted churn driver, for the prediction and backtest tests.

~200 accounts sign annual contracts spread over a year (from 2022-07), so renewal decisions fall
on every cut-off from mid-2023 to the end of 2024. Every seat is a user; a user is active in a
month with the account's engagement probability. Planted:

- the driver: in ~30 % of contract years the account *declines* — its users' activity falls from
  their usual level to ~10 % over the 180 days before the renewal — and a declining account
  churns at the renewal with probability 0.7, any other with 0.07. So low seat utilization and a
  falling active-user count at a cut-off foretell a churn in the following 90 days.
- the null: every account has a numeric trait `shoe_size` (imported with the accounts CSV),
  drawn independently of everything else.

The health score is configured (in the workspace's accountlens.toml) to read the null and the
member count only, so it cannot see the driver. Everything is drawn from one seed; `truncate_at`
rewrites what happened after a day (outcomes flipped, later events, contracts and memberships
dropped, later end dates moved) for the leakage test.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accountlens.workspace import Workspace

START = dt.date(2022, 7, 1)
END = dt.date(2024, 12, 31)  # the last day with activity
FEATURES = ["Report Created", "Dashboard Viewed", "Workflow Created", "Export Run",
            "Comment Added", "Filter Applied"]
DECLINE_DAYS = 180
EVENTS_PER_ACTIVE_MONTH = 1
DECLINING_SHARE = 0.3
CHURN_IF_DECLINING = 0.75
CHURN_OTHERWISE = 0.05

HEALTH_TOML = """
[health.factors.shoe_size]
input = "trait:shoe_size"
weight = 1
points = [[36, 0], [46, 100]]

[health.factors.members]
input = "members"
weight = 1
points = [[2, 0], [15, 100]]
"""


@dataclass
class World:
    accounts: list[str] = field(default_factory=lambda: [
        "account_id,name,industry,region,employees,plan,shoe_size"])
    subscriptions: list[tuple] = field(default_factory=list)  # (id, account, plan, seats, arr, start, end)
    memberships: list[tuple] = field(default_factory=list)  # (user, account, role, valid_from, valid_to)
    outcomes: list[tuple] = field(default_factory=list)  # (account, kind, date, arr_delta)
    events: list[dict] = field(default_factory=list)
    decliners: set[tuple[str, dt.date]] = field(default_factory=set)  # (account, renewal day)


def generate(accounts: int = 400, seed: int = 17, end: dt.date = END) -> World:
    rng = np.random.default_rng(seed)
    world = World()
    seq = 0
    for a in range(accounts):
        acc = f"acc{a:03d}"
        seats = int(rng.integers(3, 11))
        arr = float(seats * 1200)
        shoe = int(rng.integers(36, 47))
        world.accounts.append(
            f"{acc},Account {a},{rng.choice(['retail', 'energy', 'software'])},"
            f"{rng.choice(['emea', 'amer', 'apac'])},{int(rng.integers(20, 2000))},pro,{shoe}")
        first = START + dt.timedelta(days=int(rng.integers(0, 365)))
        usual = float(rng.uniform(0.6, 0.95))
        users = [f"{acc}-u{i}" for i in range(seats)]
        term, start, churned_on = 0, first, None
        while start <= end:
            renewal = start + dt.timedelta(days=365)
            declining = bool(rng.random() < DECLINING_SHARE)
            churns = bool(rng.random() < (CHURN_IF_DECLINING if declining else CHURN_OTHERWISE))
            if declining:
                world.decliners.add((acc, renewal))
            world.subscriptions.append((f"{acc}-s{term}", acc, "pro", seats, arr, start, renewal))
            month = start
            while month < min(renewal, end + dt.timedelta(days=1)):
                days_left = (renewal - month).days
                p = usual
                if declining and days_left < DECLINE_DAYS:
                    p = usual - (usual - 0.05) * (DECLINE_DAYS - days_left) / DECLINE_DAYS
                for user in users:
                    if rng.random() >= p:
                        continue
                    for _ in range(EVENTS_PER_ACTIVE_MONTH):
                        when = dt.datetime.combine(month, dt.time(9), tzinfo=dt.UTC) + dt.timedelta(
                            days=int(rng.integers(0, 30)), minutes=int(rng.integers(0, 600)))
                        if when.date() > end or when.date() >= renewal:
                            continue
                        seq += 1
                        world.events.append({
                            "type": "track", "messageId": f"m{seq}", "userId": user,
                            "event": FEATURES[int(rng.integers(len(FEATURES)))],
                            "timestamp": when.isoformat()})
                month += dt.timedelta(days=30)
            if renewal > end:
                break
            if churns:
                world.outcomes.append((acc, "churn", renewal, -arr))
                churned_on = renewal
                break
            world.outcomes.append((acc, "renewal", renewal, 0.0))
            if rng.random() < 0.2:
                world.outcomes.append((acc, "expansion", renewal, 2400.0))
            term, start = term + 1, renewal
        for user in users:
            world.memberships.append((user, acc, "editor", first, churned_on))
    return world


def truncate_at(world: World, day: dt.date) -> World:
    """What a workspace holding only what was known on `day` could look like, with the future
    rewritten: outcomes after `day` flipped (churn ↔ renewal, expansions dropped), events after
    it dropped, contracts and memberships starting after it dropped, later end dates moved to
    the day after `day` (still after it: the state on `day` is the same)."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    moved = day + dt.timedelta(days=1)
    flip = {"churn": "renewal", "renewal": "churn"}
    out = World(accounts=list(world.accounts), decliners=set(world.decliners))
    out.subscriptions = [(*s[:6], s[6] if s[6] is None or s[6] <= day else moved)
                         for s in world.subscriptions if s[5] <= day]
    out.memberships = [(*m[:4], m[4] if m[4] is None or m[4] <= day else moved)
                       for m in world.memberships if m[3] <= day]
    out.outcomes = [o if o[2] <= day else (o[0], flip[o[1]], o[2], o[3])
                    for o in world.outcomes if o[2] <= day or o[1] in flip]
    out.events = [e for e in world.events if dt.datetime.fromisoformat(e["timestamp"]) < end]
    return out


def configure(text: str, prediction: dict[str, int]) -> str:
    """accountlens.toml with the health factors of HEALTH_TOML (instead of the built-in ones)
    and the given `[prediction]` keys."""
    lines, skipping = [], False
    for line in text.splitlines():
        if line.startswith("[health.factors."):
            skipping = True
        elif skipping and (not line.strip() or line.startswith("[")):
            skipping = False
        if line == "[prediction]":
            lines += HEALTH_TOML.strip().splitlines() + [""]
        if not skipping:
            lines.append(line)
    text = "\n".join(lines) + "\n"
    for key, value in prediction.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        assert found == 1, key
    return text


def write(world: World, root: Path, name: str = "outcomes",
          prediction: dict[str, int] | None = None) -> Workspace:
    """The world as a workspace at `root / "ws"` (health as in HEALTH_TOML, `[prediction]`
    keys as given)."""
    ws = Workspace.init(root / "ws", name=name)
    config = ws.root / "accountlens.toml"
    config.write_text(configure(config.read_text(), prediction or {}))
    ws.close()
    ws = Workspace.open(root / "ws")
    assert sorted(ws.config.health.factors) == ["members", "shoe_size"]

    def day(value: dt.date | None) -> str:
        return "" if value is None else value.isoformat()

    tables = {
        "accounts": world.accounts,
        "subscriptions": ["subscription_id,account_id,plan,seats,arr,start,end"] + [
            f"{s[0]},{s[1]},{s[2]},{s[3]},{s[4]},{day(s[5])},{day(s[6])}" for s in world.subscriptions],
        "memberships": ["user_id,account_id,role,valid_from,valid_to"] + [
            f"{m[0]},{m[1]},{m[2]},{day(m[3])},{day(m[4])}" for m in world.memberships],
        "outcomes": ["account_id,kind,date,arr_delta"] + [
            f"{o[0]},{o[1]},{day(o[2])},{o[3]}" for o in world.outcomes],
    }
    for kind, lines in tables.items():
        (root / f"{kind}.csv").write_text("\n".join(lines) + "\n")
        ws.import_entities(kind, root / f"{kind}.csv")
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in world.events))
    ws.import_events(root / "events.jsonl")
    return ws


def build(root: Path, accounts: int = 400, seed: int = 17, truncate: dt.date | None = None,
          prediction: dict[str, int] | None = None) -> Workspace:
    world = generate(accounts, seed)
    if truncate is not None:
        world = truncate_at(world, truncate)
    return write(world, root, prediction=prediction)
