"""The demo simulator: deterministic, complete, loaded through the real paths, with planted effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from accountlens.demo.simulator import generate_demo
from accountlens.workspace import Workspace, WorkspaceError

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
def medium(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("demo") / "medium"
    generate_demo(root, accounts=30, seed=2)
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


def test_membership_history(small, medium):
    for ws in (Workspace.open(small[0], read_only=True), medium):
        changed = rows(ws, """SELECT count(*) AS n FROM (
                                SELECT user_id, account_id FROM memberships GROUP BY ALL
                                HAVING count(DISTINCT role) > 1)""")[0]["n"]
        left = rows(ws, "SELECT count(*) AS n FROM memberships WHERE valid_to IS NOT NULL")[0]["n"]
        assert changed > 0 and left > 0
        if ws is not medium:
            ws.close()
    multi = rows(medium, """SELECT count(*) AS n FROM (SELECT user_id FROM memberships
                            GROUP BY user_id HAVING count(DISTINCT account_id) > 1)""")[0]["n"]
    assert multi > 0
    parents = rows(medium, "SELECT count(*) AS n FROM accounts WHERE parent_account_id IS NOT NULL")
    assert parents[0]["n"] > 0


def test_outcomes_and_planted_sequence(medium):
    kinds = {r["kind"] for r in rows(medium, "SELECT DISTINCT kind FROM outcomes")}
    assert {"renewal", "expansion", "contraction", "churn"} <= kinds
    by_sequence = rows(medium, """
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


def test_finance_approvals_are_slow_and_some_objects_stall(medium):
    latency = rows(medium, """
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
    stalled = rows(medium, """SELECT count(*) AS n FROM (
        SELECT object_id FROM events WHERE object_id LIKE 'wf-%' GROUP BY object_id
        HAVING count(*) FILTER (WHERE name = 'Workflow Approved') = 0
           AND max(timestamp) < TIMESTAMPTZ '2025-06-01')""")[0]["n"]
    assert stalled > 0


def test_invites_internal_and_external(medium):
    invites = rows(medium, """
        SELECT split_part(properties->>'invitee_email', '@', 2) = a.domain AS internal, count(*) AS n
        FROM events e JOIN accounts a USING (account_id)
        WHERE e.name = 'User Invited' GROUP BY ALL""")
    assert {r["internal"] for r in invites} == {True, False}
    referred = rows(medium, """
        SELECT count(*) AS n FROM events e JOIN users u ON u.email = e.properties->>'invitee_email'
        JOIN memberships m ON m.user_id = u.user_id AND m.account_id <> e.account_id
        WHERE e.name = 'User Invited'""")
    assert referred[0]["n"] > 0
