"""Contract test: every registered metric equals an independent pandas computation from the raw
tables (tests/pandas_reference.py) on a generated workspace, at the levels listed there; every
metric also runs at a sample of its other levels; a metric without a pandas version fails."""

from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pandas as pd
import pytest

from accountlens.config import MetricsSection
from accountlens.metrics.registry import load_all
from accountlens.workspace import Workspace
from tests.pandas_reference import REFERENCES, Raw

AS_OF = dt.date(2024, 3, 31)
VALUE = ["Report Created", "Report Shared", "Workflow Approved", "Plan Approved"]
NAMES = VALUE + ["Dashboard Viewed", "Search", "Export", "API Called", "Order Completed",
                 "User Invited"]
ACCOUNTS = [f"a{i}" for i in range(12)]  # a10: no subscription; a11: automation only
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _crm(rng: random.Random) -> dict[str, list[str]]:
    """CSV rows of accounts, units, users, memberships, subscriptions and outcomes."""
    csv = {
        "accounts": ["account_id,domain,industry,region,employees,created_at"],
        "units": ["unit_id,account_id,kind,name,parent_unit_id"],
        "users": ["user_id,email"],
        "memberships": ["user_id,account_id,unit_id,role,valid_from,valid_to"],
        "subscriptions": ["subscription_id,account_id,plan,seats,arr,start,end,entitlements"],
        "outcomes": ["account_id,kind,date,arr_delta"],
    }
    for i, a in enumerate(ACCOUNTS):
        created = "" if i % 4 else f"2023-0{1 + i % 9}-15"
        csv["accounts"].append(f"{a},{a}.com,{rng.choice(['retail', 'energy', ''])},"
                               f"{rng.choice(['emea', 'amer'])},{rng.choice(['', 10, 800])},{created}")
        if i < 10:
            parent = f"{a}-bu" if i % 2 else ""
            csv["units"] += ([f"{a}-bu,{a},business_unit,BU,"] if i % 2 else []) + [
                f"{a}-d,{a},department,Dept,{parent}", f"{a}-t1,{a},team,T1,{a}-d",
                f"{a}-t2,{a},team,T2,{a}-d"]
            start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(420))
            end = "" if rng.random() < 0.6 else str(start + dt.timedelta(days=rng.randrange(30, 400)))
            ent = json.dumps({"api_calls": rng.choice([5, 50]), "modules": ["core", "reports"]})
            ent = '"' + ent.replace('"', '""') + '"'
            csv["subscriptions"].append(
                f"s{i},{a},{rng.choice(['pro', 'ent'])},{rng.choice([0, 3, 10, ''])},"
                f"{rng.choice([1000, 5000])},{start},{end},{ent}")
            if end and rng.random() < 0.6:  # renewed, at a new price
                csv["subscriptions"].append(f"r{i},{a},pro,5,{rng.choice([0, 800, 7000])},{end},,")
            csv["outcomes"].append(f"{a},{rng.choice(['renewal', 'expansion', 'churn'])},"
                                   f"{start + dt.timedelta(days=200)},{rng.choice([-500, 0, 900, ''])}")
    for u in range(50):
        home = ACCOUNTS[u % 11]
        domain = f"{home}.com" if u % 5 else "freelance.org"
        csv["users"].append(f"u{u},u{u}@{domain}")
        unit = rng.choice(["", f"{home}-d", f"{home}-t1", f"{home}-t2"]) if home != "a10" else ""
        if u % 6 == 0:  # role change mid-window
            csv["memberships"] += [f"u{u},{home},{unit},viewer,2023-12-01,2024-03-10",
                                   f"u{u},{home},{unit},editor,2024-03-10,"]
        else:
            csv["memberships"].append(f"u{u},{home},{unit},{rng.choice(['viewer', 'admin'])},2023-12-01,")
        if u % 9 == 4:  # joins a second account later (an external invitee's referred account)
            csv["memberships"].append(f"u{u},{ACCOUNTS[(u + 3) % 10]},,editor,2024-02-20,")
    return csv


def _events(rng: random.Random) -> list[dict]:
    events, n = [], 0

    def at(minutes: int) -> str:
        return (START + dt.timedelta(minutes=minutes)).isoformat()

    for u in range(50):
        first = rng.randrange(80 * 24 * 60)
        for _ in range(rng.randrange(1, 40)):
            n += 1
            minute = first + int(rng.expovariate(1 / (20 * 24 * 60))) if _ else first
            kind = rng.choice(["track"] * 6 + ["page", "identify"])
            event = {"type": kind, "messageId": f"m{n}", "userId": f"u{u}", "timestamp": at(minute),
                     "event": rng.choice(NAMES), "name": rng.choice(["Home", "Page Viewed"]),
                     "properties": {"product": rng.choice(["core", "reports", "billing"])}}
            if event["event"] == "User Invited":
                event["properties"]["invitee_email"] = rng.choice(
                    [f"u{rng.randrange(50)}@a{rng.randrange(11)}.com", f"U{rng.randrange(50)}@freelance.org",
                     "someone@elsewhere.io"])
            if u % 7 == 3 and rng.random() < 0.3:  # explicit second account
                event["context"] = {"groupId": ACCOUNTS[(u + 1) % 11]}
            events.append(event)
    for _ in range(60):
        n += 1
        events.append({"type": "track", "messageId": f"m{n}", "timestamp": at(rng.randrange(91 * 24 * 60)),
                       "event": rng.choice(["Sync Run", "API Called"]),
                       "context": {"groupId": rng.choice(["a11", "a3"])}})
    return events


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    rng = random.Random(11)
    root = tmp_path_factory.mktemp("contract")
    ws = Workspace.init(root / "ws", name="contract")
    for kind, rows in _crm(rng).items():
        (root / f"{kind}.csv").write_text("\n".join(rows) + "\n")
        ws.import_entities(kind, root / f"{kind}.csv")
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _events(rng)))
    ws.import_events(root / "events.jsonl")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def raw(generated) -> Raw:
    return Raw.load(generated, AS_OF)


# ---- comparing ---------------------------------------------------------------------------------
KEYS = ("account_id", "user_id", "account", "user", "cohort", "period", "stage_order", "stage",
        "entitlement", "kind")


def _plain(value):
    """One comparable value: dates and timestamps as naive UTC timestamps, NaN/NaT as None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (dt.date, pd.Timestamp)):
        stamp = pd.Timestamp(value)
        return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return float(value) if isinstance(value, (int, float, np.number)) else value


def _nothing(values: dict) -> bool:
    return all(v in (None, 0, 0.0, False) for v in values.values())


def assert_matches(got: pd.DataFrame, expected: pd.DataFrame, level: str, label: str) -> None:
    """Same rows and values, except that a row with only zeros / empties may be on one side.
    The references name the level's column after the level; the engine's is its key column
    (`account_id`, `user_id`, `unit_id` for units, `scope` for all)."""
    from accountlens.metrics.registry import key_column

    expected = expected.rename(columns={"scope" if level == "all" else level: key_column(level)})
    level = key_column(level)
    keys = [c for c in expected.columns if c in KEYS or c == level]
    values = [c for c in expected.columns if c not in keys]
    assert not set(values) - set(got.columns), (label, set(values) - set(got.columns))

    def rows(frame):
        return {tuple(_plain(r[k]) for k in keys): {c: _plain(r[c]) for c in values}
                for r in frame.to_dict(orient="records")}

    mine, theirs = rows(got), rows(expected)
    assert len(mine) == len(got), f"{label}: duplicate keys"
    for key in mine.keys() | theirs.keys():
        a, b = mine.get(key), theirs.get(key)
        if a is None or b is None:
            assert _nothing(a or b), f"{label} {key}: engine {a}, pandas {b}"
            continue
        for column in values:
            x, y = a[column], b[column]
            same = x == pytest.approx(y, rel=1e-9, abs=1e-9) if isinstance(y, float) and x is not None else x == y
            assert same, f"{label} {key} {column}: engine {x!r}, pandas {y!r}"


CASES = [(name, level, params) for name, ref in sorted(REFERENCES.items())
         for level in ref.levels for params in ref.params]


@pytest.mark.parametrize(("name", "level", "params"), CASES,
                         ids=[f"{n}-{lv}{'-' + '-'.join(p.values()) if p else ''}" for n, lv, p in CASES])
def test_metric_matches_pandas(generated, raw, name, level, params) -> None:
    got = generated.metric(name, level=level, as_of=AS_OF, **params)
    expected = REFERENCES[name].compute(raw, level, **params)
    assert_matches(got, expected, level, f"{name}@{level}{params or ''}")


ALTERNATIVE = MetricsSection(
    funnel_stages=["awareness", "acquisition", "revenue", "referral", "activation"],
    min_users=1, account_activation_days=10, activation_days=3, velocity_weeks=2,
    retention_after_days=3, module_events={"reports": ["Export"]}, quota_window_days=7,
    revenue_period_days=90)


@pytest.mark.parametrize("name", ["funnel", "activation", "time_to_value", "adoption_velocity",
                                  "contract_alignment", "nrr", "arr_movements"])
def test_metric_matches_pandas_with_other_settings(generated, name) -> None:
    generated.config.metrics = ALTERNATIVE
    try:
        raw = Raw.load(generated, AS_OF)
        for level in REFERENCES[name].levels[:2 if name == "funnel" else 1]:
            got = generated.metric(name, level=level, as_of=AS_OF)
            assert_matches(got, REFERENCES[name].compute(raw, level), level, f"{name}@{level} (alt)")
    finally:
        generated.config.metrics = MetricsSection()


def test_every_metric_has_a_pandas_reference() -> None:
    missing = sorted(set(load_all()) - set(REFERENCES))
    assert not missing, f"add a pandas version to tests/pandas_reference.py for {missing}"
    assert not set(REFERENCES) - set(load_all()), "a pandas version of an unregistered metric"


def test_levels_without_a_pandas_version_run(generated) -> None:
    """Every level no pandas version covers runs for two metrics (rotating through them)."""
    metrics = sorted(load_all().items())
    for i, level in enumerate(("plan", "size_band", "maturity", "deployment_scale")):
        offered = [name for name, m in metrics if level in m.levels]
        for name in (offered[i], offered[-1 - i]):
            frame = generated.metric(name, level=level, as_of=AS_OF)
            assert level in frame.columns and len(frame.columns) > 1, (name, level)


def test_generated_workspace_has_the_edge_cases(raw) -> None:
    ev = raw.active()
    assert set(ev[ev.user_id.isna()].account_id) == {"a3", "a11"}  # automation
    assert ev.groupby("user_id").account_id.nunique().max() > 1  # a user in two accounts
    assert raw.memberships.groupby("user_id").role.nunique().max() > 1  # role change
    assert not raw.live_subscriptions(AS_OF).seats.fillna(0).min()  # an account with no seats
    assert len(ev[ev.name == "User Invited"]) > 5


def test_funnel_stage_moment_inside_a_day(tmp_path) -> None:
    ws = Workspace.init(tmp_path / "ws", name="straddle")

    def track(mid: str, name: str, hour: int) -> dict:
        return {"type": "track", "messageId": mid, "userId": "x", "event": name,
                "timestamp": f"2024-03-01T{hour:02d}:00:00Z", "properties": {"invitee_email": "y@z.io"}}

    # activation 10:00; invites at 09:00 and 11:00 (one rollup row); an order at 10:30.
    events = [track("1", "Dashboard Viewed", 8), track("2", "Report Created", 10),
              track("3", "User Invited", 9), track("4", "User Invited", 11),
              {**track("5", "Order Completed", 10), "timestamp": "2024-03-01T10:30:00Z"}]
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(tmp_path / "e.jsonl")
    ws.config.metrics = MetricsSection(funnel_stages=["acquisition", "activation", "referral", "revenue"])
    frame = ws.metric("funnel", level="user", as_of="2024-03-31").set_index("stage")
    ws.close()
    # Referral is reached at 11:00, one hour after activation; the 10:30 order came before it.
    assert frame.loc["referral", "median_days_from_previous"] == pytest.approx(1 / 24)
    assert frame.loc["revenue", "reached"] == 0
