"""Contract test: every registered metric runs at every level on a generated workspace, and the
core metrics equal an independent pandas computation from the raw tables (not the rollup)."""

from __future__ import annotations

import datetime as dt
import json
import random

import pandas as pd
import pytest

from accountlens.metrics.registry import load_all
from accountlens.workspace import Workspace

AS_OF = dt.date(2024, 3, 31)
VALUE = ["Report Created", "Report Shared", "Workflow Approved", "Plan Approved"]
NAMES = VALUE + ["Dashboard Viewed", "Search", "Export"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    rng = random.Random(11)
    root = tmp_path_factory.mktemp("contract")
    ws = Workspace.init(root / "ws", name="contract")
    accounts = [f"a{i}" for i in range(12)]
    (root / "accounts.csv").write_text("account_id,domain,industry,region,employees\n" + "".join(
        f"{a},{a}.com,{rng.choice(['retail', 'energy', ''])},{rng.choice(['emea', 'amer'])},"
        f"{rng.choice(['', 10, 120, 800, 4000])}\n" for a in accounts))
    subs = ["subscription_id,account_id,plan,seats,arr,start,end"]
    for i, a in enumerate(accounts[:10]):
        start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(420))
        end = "" if rng.random() < 0.7 else str(start + dt.timedelta(days=rng.randrange(30, 400)))
        subs.append(f"s{i},{a},{rng.choice(['pro', 'ent'])},{rng.choice([0, 3, 10])},"
                    f"{rng.choice([1000, 5000])},{start},{end}")
    (root / "subscriptions.csv").write_text("\n".join(subs) + "\n")
    members, events = ["user_id,account_id,unit_id,role,valid_from,valid_to"], []
    users = []
    for u in range(50):
        user, home = f"u{u}", rng.choice(accounts[:11])  # a11: automation only
        users.append((user, home))
        if rng.random() < 0.2:  # role change mid-way
            members.append(f"{user},{home},,viewer,2023-12-01,2024-03-10")
            members.append(f"{user},{home},,editor,2024-03-10,")
        else:
            members.append(f"{user},{home},,{rng.choice(['viewer', 'editor', 'admin'])},2023-12-01,")
    (root / "memberships.csv").write_text("\n".join(members) + "\n")
    n = 0
    for user, home in users:
        second = rng.choice(accounts[:11]) if rng.random() < 0.15 else None  # explicit other account
        for _ in range(rng.randrange(1, 40)):
            n += 1
            ts = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randrange(91 * 24 * 60))
            event = {"type": rng.choice(["track"] * 5 + ["page", "identify"]), "messageId": f"m{n}",
                     "userId": user, "timestamp": ts.isoformat(), "event": rng.choice(NAMES),
                     "name": rng.choice(["Home", "Settings"])}
            if second and rng.random() < 0.3:
                event["context"] = {"groupId": second}
            events.append(event)
    for _ in range(60):
        n += 1
        ts = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randrange(91 * 24 * 60))
        events.append({"type": "track", "messageId": f"m{n}", "event": "Sync Run",
                       "timestamp": ts.isoformat(), "context": {"groupId": rng.choice(["a11", "a3"])}})
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    for kind in ("accounts", "subscriptions", "memberships"):
        ws.import_entities(kind, root / f"{kind}.csv")
    ws.import_events(root / "events.jsonl")
    yield ws
    ws.close()


def raw(ws) -> pd.DataFrame:
    ev = ws.store.df("SELECT * EXCLUDE (properties, traits, context) FROM events "
                     "WHERE type IN ('track', 'page', 'screen')")
    ev["day"] = pd.to_datetime(ev.timestamp, utc=True).dt.date
    return ev[ev.day <= AS_OF]


def window(ev: pd.DataFrame, days: int) -> pd.DataFrame:
    return ev[(ev.day > AS_OF - dt.timedelta(days=days)) & (ev.day <= AS_OF)]


def as_dict(frame: pd.DataFrame, key: str, column: str) -> dict:
    return {k: (None if pd.isna(v) else float(v)) for k, v in zip(frame[key], frame[column])}


def test_every_metric_runs_at_its_levels(generated) -> None:
    sample = ("user", "account", "role", "department", "maturity", "deployment_scale", "all")
    for name, metric in load_all().items():
        for level in [lv for lv in metric.levels if lv in sample]:
            frame = generated.metric(name, level=level, as_of=AS_OF)
            assert isinstance(frame, pd.DataFrame), (name, level)


def test_active_users_match_pandas(generated) -> None:
    ev = raw(generated)
    human = ev[(ev.actor_kind == "human") & ev.user_id.notna() & ev.account_id.notna()]
    for name, days in (("dau", 1), ("wau", 7), ("mau", 30)):
        expected = window(human, days).groupby("account_id").user_id.nunique().to_dict()
        got = as_dict(generated.metric(name, level="account", as_of=AS_OF), "account", name)
        assert {k: v for k, v in got.items() if v} == expected, name
    by_role = window(ev[(ev.actor_kind == "human") & ev.user_id.notna()], 30)
    expected = by_role.fillna({"role": "(none)"}).groupby("role").user_id.nunique().to_dict()
    got = as_dict(generated.metric("mau", level="role", as_of=AS_OF), "role", "mau")
    assert {k: v for k, v in got.items() if v} == expected


def test_accounts_breadth_depth_stickiness_match_pandas(generated) -> None:
    ev = raw(generated)
    attributed = ev[ev.account_id.notna()]
    recent = window(attributed, 30)
    got = as_dict(generated.metric("active_accounts", level="all", as_of=AS_OF), "scope", "active_7d")
    assert got == {"all": window(attributed, 7).account_id.nunique()}
    names = recent.name.nunique()
    expected = (recent.groupby("account_id").name.nunique() / names).to_dict()
    got = as_dict(generated.metric("breadth", level="account", as_of=AS_OF), "account", "breadth")
    assert {k: v for k, v in got.items() if v} == pytest.approx(expected)
    human = window(ev[(ev.actor_kind == "human") & ev.user_id.notna()], 30)
    expected = (human.groupby("user_id").size() / 1).to_dict()
    got = as_dict(generated.metric("depth", level="user", as_of=AS_OF), "user", "depth")
    assert {k: v for k, v in got.items() if v is not None} == pytest.approx(expected)
    h = human[human.account_id.notna()]
    daily = h.groupby(["account_id", "day"]).user_id.nunique().groupby("account_id").sum() / 30
    expected = (daily / h.groupby("account_id").user_id.nunique()).to_dict()
    got = as_dict(generated.metric("stickiness", level="account", as_of=AS_OF), "account", "stickiness")
    assert {k: v for k, v in got.items() if v is not None} == pytest.approx(expected)


def test_seats_and_revenue_match_pandas(generated) -> None:
    ev = raw(generated)
    subs = generated.store.df("SELECT * FROM subscriptions")

    def live(day):
        return subs[(subs.start_date <= day) & (subs.end_date.isna() | (subs.end_date >= day))]

    mau = window(ev[(ev.actor_kind == "human") & ev.user_id.notna() & ev.account_id.notna()], 30)
    mau = mau.groupby("account_id").user_id.nunique()
    seats = live(AS_OF).groupby("account_id").seats.sum()
    expected = {a: (mau.get(a, 0) / s if s > 0 else None) for a, s in seats.items()}
    got = as_dict(generated.metric("seat_utilization", level="account", as_of=AS_OF), "account",
                  "seat_utilization")
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    start = live(AS_OF - dt.timedelta(days=365)).groupby("account_id").arr.sum()
    start = start[start > 0]
    end = live(AS_OF).groupby("account_id").arr.sum().reindex(start.index).fillna(0)
    nrr = generated.metric("nrr", level="all", as_of=AS_OF)
    grr = generated.metric("grr", level="all", as_of=AS_OF)
    logo = generated.metric("logo_retention", level="all", as_of=AS_OF)
    if len(start):
        assert nrr.nrr[0] == pytest.approx(end.sum() / start.sum())
        assert grr.grr[0] == pytest.approx(pd.concat([end, start], axis=1).min(axis=1).sum() / start.sum())
        assert logo.logo_retention[0] == pytest.approx((end > 0).sum() / len(start))
    arr = generated.metric("arr", level="all", as_of=AS_OF).arr[0]
    assert arr == pytest.approx(live(AS_OF).arr.sum())


def test_activation_and_retention_match_pandas(generated) -> None:
    ev = raw(generated)
    human = ev[(ev.actor_kind == "human") & ev.user_id.notna()]
    first = human.groupby("user_id").timestamp.min()
    first_value = human[human.name.isin(VALUE)].groupby("user_id").timestamp.min()
    ttv = ((first_value - first.reindex(first_value.index)).dt.total_seconds() / 86400).to_dict()
    got = as_dict(generated.metric("time_to_value", level="user", as_of=AS_OF), "user",
                  "time_to_value_days")
    assert {k: v for k, v in got.items() if v is not None} == pytest.approx(ttv)
    activated = {u: bool(u in ttv and ttv[u] <= 14) for u in first.index}
    frame = generated.metric("activation", level="user", as_of=AS_OF)
    assert dict(zip(frame.user, frame.activated.astype(bool))) == activated
    cohort_of = human.groupby("user_id").day.min().map(lambda d: d - dt.timedelta(days=d.weekday()))
    h = human.assign(cohort=human.user_id.map(cohort_of))
    h["period"] = h.apply(lambda r: ((r.day - dt.timedelta(days=r.day.weekday())) - r.cohort).days // 7,
                          axis=1)
    expected = h.groupby(["cohort", "period"]).user_id.nunique().to_dict()
    frame = generated.metric("retention", level="user", as_of=AS_OF)
    got = {(pd.Timestamp(c).date(), p): r for c, p, r in zip(frame.cohort, frame.period, frame.retained)}
    assert got == expected
