"""The demo simulator: deterministic, complete, loaded through the real paths, with planted
effects; its history covers its contracts, and its outcomes follow the accounts' behaviour."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from accountlens.demo.simulator import generate_demo
from accountlens.workspace import Workspace, WorkspaceError

DECISIONS = ("renewal", "expansion", "contraction", "churn")

CHECKSUM_SQL = """
SELECT count(*) AS events,
       md5(string_agg(message_id || '|' || type || '|' || coalesce(name, '') || '|'
                      || coalesce(account_id, '') || '|' || CAST(timestamp AS VARCHAR),
                      ',' ORDER BY message_id)) AS checksum
FROM events
"""


def _fingerprint(root: Path) -> dict:
    with Workspace.open(root, read_only=True) as ws:
        return ws.store.arrow(CHECKSUM_SQL).to_pylist()[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict, list]:
    root = tmp_path_factory.mktemp("demo") / "small"
    stages: list[tuple[str, float]] = []
    counts = generate_demo(root, accounts=12, seed=3, progress=lambda s, f: stages.append((s, f)))
    return root, counts, stages


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> Workspace:
    """The demo as `accountlens demo` makes it (60 accounts, seed 7)."""
    root = tmp_path_factory.mktemp("demo") / "default"
    generate_demo(root)
    ws = Workspace.open(root, read_only=True)
    yield ws
    ws.close()


def rows(ws: Workspace, sql: str) -> list[dict]:
    return ws.store.arrow(sql).to_pylist()


def test_same_seed_same_data_and_other_seed_differs(small, tmp_path):
    root, counts, _ = small
    again = generate_demo(tmp_path / "again", accounts=12, seed=3)
    assert again == counts
    assert _fingerprint(tmp_path / "again") == _fingerprint(root)
    generate_demo(tmp_path / "other", accounts=12, seed=4)
    assert _fingerprint(tmp_path / "other")["checksum"] != _fingerprint(root)["checksum"]


def test_counts_progress_and_csv_exports(small):
    root, counts, stages = small
    assert counts["accounts"] == 12
    for key in ("org_units", "users", "memberships", "subscriptions", "outcomes", "events",
                "automation_events", "quarantined", "duplicates"):
        assert counts[key] > 0, key
    assert 10_000 < counts["events"] < 150_000
    assert stages[-1] == ("done", 1.0)
    assert [f for _, f in stages] == sorted(f for _, f in stages)
    for kind in ("accounts", "units", "users", "memberships", "subscriptions", "outcomes"):
        assert (root / "demo-data" / f"{kind}.csv").stat().st_size > 0
    with pytest.raises(WorkspaceError, match="already a workspace"):
        generate_demo(root, accounts=2, seed=3)


def test_every_kind_of_entity_and_event(small):
    root, _, _ = small
    with Workspace.open(root, read_only=True) as ws:
        units = {r["kind"] for r in rows(ws, "SELECT DISTINCT kind FROM org_units")}
        assert units == {"business_unit", "department", "team"}
        roles = {r["role"] for r in rows(ws, "SELECT DISTINCT role FROM memberships")}
        assert roles >= {"admin", "editor", "approver", "viewer", "trainer", "executive", "analyst"}
        sources = {r["source"] for r in rows(ws, "SELECT DISTINCT source FROM memberships")}
        assert {"sdk", "import"} <= sources  # CRM memberships and SDK identify/group both used
        types = {r["type"] for r in rows(ws, "SELECT DISTINCT type FROM events")}
        assert types == {"track", "page", "identify", "group"}
        names = {r["name"] for r in rows(ws, "SELECT DISTINCT name FROM events")}
        assert names >= {"Signed Up", "Report Created", "Report Shared", "Report Approved",
                         "Dashboard Viewed", "Workflow Created", "Workflow Submitted",
                         "Workflow Approved", "Training Completed", "Plan Approved",
                         "Module Used", "User Invited", "Sync Completed"}
        entitlements = rows(ws, "SELECT json_extract(entitlements, '$.modules') AS m "
                                "FROM subscriptions WHERE json_extract(entitlements, '$.api_calls') > 0")
        assert entitlements
        gmail = rows(ws, "SELECT count(*) AS n FROM users WHERE email LIKE '%@gmail.com'")[0]["n"]
        assert gmail > 0


def test_automation_and_attribution(small):
    root, counts, _ = small
    with Workspace.open(root, read_only=True) as ws:
        auto = rows(ws, """SELECT count(*) FILTER (WHERE user_id IS NULL) AS accountwide,
                                  count(*) FILTER (WHERE user_id IS NOT NULL) AS on_behalf
                           FROM events WHERE actor_kind = 'automation'""")[0]
        assert auto["accountwide"] > 0 and auto["on_behalf"] > 0
        share = rows(ws, "SELECT avg(CAST(attribution <> 'unattributed' AS DOUBLE)) AS s FROM events")
        assert share[0]["s"] > 0.97
        rules = {r["attribution"] for r in rows(ws, "SELECT DISTINCT attribution FROM events")}
        assert {"explicit", "membership", "unattributed"} <= rules
        reasons = {r["reason"] for r in rows(ws, "SELECT DISTINCT reason FROM quarantine")}
        assert "track without event name" in reasons
        assert "no userId, anonymousId or groupId" in reasons
        # skewed device clocks were corrected: original and stored timestamps differ by minutes
        skewed = rows(ws, """SELECT count(*) AS n FROM events
                             WHERE abs(epoch(original_timestamp) - epoch(timestamp)) > 300""")
        assert skewed[0]["n"] > 0
        late = rows(ws, "SELECT max(timestamp) AS t FROM events")[0]["t"]
        assert str(late) < "2025-07-01 01"


def test_membership_history(small, default):
    for ws in (Workspace.open(small[0], read_only=True), default):
        changed = rows(ws, """SELECT count(*) AS n FROM (
                                SELECT user_id, account_id FROM memberships GROUP BY ALL
                                HAVING count(DISTINCT role) > 1)""")[0]["n"]
        left = rows(ws, "SELECT count(*) AS n FROM memberships WHERE valid_to IS NOT NULL")[0]["n"]
        assert changed > 0 and left > 0
        if ws is not default:
            ws.close()
    multi = rows(default, """SELECT count(*) AS n FROM (SELECT user_id FROM memberships
                            GROUP BY user_id HAVING count(DISTINCT account_id) > 1)""")[0]["n"]
    assert multi > 0
    parents = rows(default, "SELECT count(*) AS n FROM accounts WHERE parent_account_id IS NOT NULL")
    assert parents[0]["n"] > 0


def test_outcomes_and_planted_sequence(default):
    kinds = {r["kind"] for r in rows(default, "SELECT DISTINCT kind FROM outcomes")}
    assert {"renewal", "expansion", "contraction", "churn"} <= kinds
    by_sequence = rows(default, """
        WITH cases AS (
            SELECT account_id, kind, CAST(date AS TIMESTAMPTZ) AS at FROM outcomes
            WHERE kind IN ('renewal', 'expansion', 'contraction', 'churn')
        ),
        planted AS (
            SELECT DISTINCT c.account_id FROM cases c
            JOIN events t ON t.account_id = c.account_id AND t.role = 'trainer'
                         AND t.name = 'Training Completed'
            JOIN events p ON p.account_id = c.account_id AND p.role = 'executive'
                         AND p.name = 'Plan Approved'
                         AND p.timestamp BETWEEN t.timestamp AND t.timestamp + INTERVAL 30 DAY
            WHERE t.timestamp >= c.at - INTERVAL 180 DAY AND p.timestamp < c.at
        )
        SELECT account_id IN (SELECT account_id FROM planted) AS has_sequence,
               avg(CAST(kind IN ('renewal', 'expansion') AS DOUBLE)) AS renewed, count(*) AS n
        FROM cases GROUP BY ALL""")
    rates = {r["has_sequence"]: r for r in by_sequence}
    assert rates[True]["n"] >= 3 and rates[False]["n"] >= 3
    assert rates[True]["renewed"] > rates[False]["renewed"] + 0.3


def test_finance_approvals_are_slow_and_some_objects_stall(default):
    latency = rows(default, """
        WITH steps AS (
            SELECT name, unit_id, timestamp,
                   lag(timestamp) OVER (PARTITION BY object_id ORDER BY timestamp) AS previous
            FROM events WHERE object_id IS NOT NULL
        )
        SELECT d.name = 'Finance' AS finance,
               median(epoch(s.timestamp) - epoch(s.previous)) / 3600 AS hours
        FROM steps s JOIN org_units t ON t.unit_id = s.unit_id
        JOIN org_units d ON d.unit_id = t.parent_unit_id AND d.kind = 'department'
        WHERE s.name IN ('Workflow Approved', 'Report Approved') GROUP BY ALL""")
    hours = {r["finance"]: r["hours"] for r in latency}
    assert hours[True] > 3 * hours[False]
    stalled = rows(default, """SELECT count(*) AS n FROM (
        SELECT object_id FROM events WHERE object_id LIKE 'wf-%' GROUP BY object_id
        HAVING count(*) FILTER (WHERE name = 'Workflow Approved') = 0
           AND max(timestamp) < TIMESTAMPTZ '2025-06-01')""")[0]["n"]
    assert stalled > 0


def test_invites_internal_and_external(default):
    invites = rows(default, """
        SELECT split_part(properties->>'invitee_email', '@', 2) = a.domain AS internal, count(*) AS n
        FROM events e JOIN accounts a USING (account_id)
        WHERE e.name = 'User Invited' GROUP BY ALL""")
    assert {r["internal"] for r in invites} == {True, False}
    referred = rows(default, """
        SELECT count(*) AS n FROM events e JOIN users u ON u.email = e.properties->>'invitee_email'
        JOIN memberships m ON m.user_id = u.user_id AND m.account_id <> e.account_id
        WHERE e.name = 'User Invited'""")
    assert referred[0]["n"] > 0


# --- history and outcomes ------------------------------------------------------------------------
def frame(ws: Workspace, sql: str) -> pd.DataFrame:
    return ws.store.arrow(sql).to_pandas()


@pytest.fixture(scope="module")
def decisions(default) -> pd.DataFrame:
    """Each renewal decision (an outcome on the end day D of a paid subscription) with what the
    account looked like a month before, computed with pandas from the raw tables: users active
    in the 30 days before D − 30 ÷ the seats in force on D − 30 ([start, end)), and the change
    of those users against the same 30 days three months earlier."""
    subs = frame(default, "SELECT account_id, seats, arr, start_date, end_date FROM subscriptions")
    for column in ("start_date", "end_date"):
        subs[column] = pd.to_datetime(subs[column])
    outcomes = frame(default, "SELECT account_id, kind, date, arr_delta FROM outcomes")
    outcomes["date"] = pd.to_datetime(outcomes["date"])
    events = frame(default, """SELECT account_id, user_id, timestamp FROM events
                               WHERE type IN ('track', 'page', 'screen') AND actor_kind = 'human'
                                 AND user_id IS NOT NULL AND account_id IS NOT NULL""")
    events["day"] = events["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    paid_ends = subs[subs["arr"] > 0][["account_id", "end_date"]]
    found = outcomes[outcomes["kind"].isin(DECISIONS)].merge(
        paid_ends, left_on=["account_id", "date"], right_on=["account_id", "end_date"])

    def active(account: str, since: pd.Timestamp, until: pd.Timestamp) -> int:
        mine = events[(events["account_id"] == account) & (events["day"] >= since)
                      & (events["day"] < until)]
        return mine["user_id"].nunique()

    month = pd.Timedelta(days=30)
    rows = []
    for d in found.itertuples():
        seen = d.date - month
        now, before = active(d.account_id, seen - month, seen), active(
            d.account_id, seen - 4 * month, seen - 3 * month)
        seats = subs[(subs["account_id"] == d.account_id) & (subs["start_date"] <= seen)
                     & (subs["end_date"] > seen)]["seats"].sum()
        rows.append({"account_id": d.account_id, "kind": d.kind, "date": d.date,
                     "arr_delta": d.arr_delta, "utilization": now / seats,
                     "user_trend": (now - before) / max(before, 1)})
    return pd.DataFrame(rows)


def test_history_covers_every_contract(default):
    first, last = rows(default, "SELECT min(timestamp) AS f, max(timestamp) AS l FROM events")[0].values()
    assert first.date() < dt.date(2023, 7, 15) and last.date() == dt.date(2025, 6, 30)  # two years
    contracts = frame(default, "SELECT account_id, min(start_date) AS first_contract "
                               "FROM subscriptions GROUP BY ALL")
    assert len(contracts) == 60
    assert (contracts["first_contract"] >= first.date()).all()  # acquired while tracked ...
    assert (contracts["first_contract"] <= first.date() + dt.timedelta(days=560)).all()  # ~18 months


def test_activation_and_time_to_value_are_measured_from_acquisition(default):
    activation = default.metric_result("activation", level="all")
    assert activation.as_of == dt.date(2025, 6, 30) and activation.notes == []  # none predates
    assert activation.frame["activation_rate"].iloc[0] > 0.5
    ttv = default.metric_result("time_to_value", level="all")
    assert ttv.notes == [] and ttv.frame["median_days"].iloc[0] < 45


def test_enough_renewal_decisions_spread_over_the_last_year(decisions):
    kinds = decisions["kind"].value_counts()
    assert len(decisions) >= 40 and kinds["churn"] >= 12
    assert {"renewal", "expansion", "contraction"} <= set(kinds.index)
    assert decisions["date"].min() >= pd.Timestamp("2024-07-01")
    assert decisions["date"].dt.to_period("M").nunique() >= 9


def test_renewals_follow_on_the_end_day_and_churn_ends_everything(default, decisions):
    subs = frame(default, "SELECT account_id, seats, start_date, end_date FROM subscriptions")
    for column in ("start_date", "end_date"):
        subs[column] = pd.to_datetime(subs[column])
    ending = subs.rename(columns={"seats": "old_seats", "start_date": "old_start"})
    following = subs.rename(columns={"seats": "new_seats", "start_date": "date"})
    cases = (decisions.merge(ending, left_on=["account_id", "date"],
                             right_on=["account_id", "end_date"])[["account_id", "kind", "date",
                                                                   "arr_delta", "old_seats"]]
             .merge(following[["account_id", "date", "new_seats"]], how="left"))
    assert len(cases) == len(decisions)
    churned = cases[cases["kind"] == "churn"]
    assert churned["new_seats"].isna().all() and (churned["arr_delta"] < 0).all()
    kept = cases[cases["kind"] != "churn"]
    assert kept["new_seats"].notna().all()  # the next contract starts on the end day: [start, end)
    by_kind = {k: (g["new_seats"] - g["old_seats"]) for k, g in kept.groupby("kind")}
    assert (by_kind["expansion"] > 0).all() and (by_kind["contraction"] < 0).all()
    assert (by_kind["renewal"] == 0).all()
    last = frame(default, "SELECT account_id, max(timestamp) AS last FROM events GROUP BY ALL")
    stopped = churned.merge(last, on="account_id")
    assert (stopped["last"].dt.tz_convert("UTC").dt.tz_localize(None) < stopped["date"]).all()


def test_churn_follows_idle_seats_and_shrinking_use(decisions):
    by_kind = decisions.groupby("kind")[["utilization", "user_trend"]].median()
    renewed = decisions[decisions["kind"].isin(["renewal", "expansion"])]
    churned = decisions[decisions["kind"] == "churn"]
    assert churned["utilization"].median() < renewed["utilization"].median() - 0.15
    assert churned["user_trend"].median() < renewed["user_trend"].median() - 0.1
    assert by_kind.loc["expansion", "utilization"] > max(by_kind.loc["renewal", "utilization"], 0.9)


def test_champions_leave_before_some_churns(default, decisions):
    admins_left = frame(default, "SELECT account_id, valid_to FROM memberships "
                                 "WHERE role = 'admin' AND valid_to IS NOT NULL")
    admins_left["valid_to"] = admins_left["valid_to"].dt.tz_convert("UTC").dt.tz_localize(None)
    churned = decisions[decisions["kind"] == "churn"].merge(admins_left, on="account_id")
    before = churned[(churned["valid_to"] < churned["date"])
                     & (churned["valid_to"] >= churned["date"] - pd.Timedelta(days=180))]
    assert before["account_id"].nunique() >= 3
