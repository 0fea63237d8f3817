"""PostHog's group-aggregated funnel and retention test cases, replayed through accountlens.

Each case cites the PostHog test it comes from. Its events are sent the way a PostHog client
sends them (capture events with `$groups`, groups created by `$groupidentify`), normalized by
our PostHog capture path and loaded into a fresh workspace, where a PostHog group is an account.
Where our definitions coincide we assert PostHog's numbers; where they differ we assert ours and
say why (docs/metrics.md, "Compared with PostHog").
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from accountlens.config import MetricsSection
from accountlens.ingest.normalize import posthog_events
from accountlens.workspace import Workspace

FUNNEL_TESTS = "PostHog/posthog ee/clickhouse/views/test/funnel/test_clickhouse_funnel.py"
RETENTION_TESTS = "PostHog/posthog posthog/hogql_queries/insights/test/test_retention_query_runner.py"
GROUP_TYPES = ("organization", "company")  # PostHog group type indexes 0 and 1
GROUPS = {"organization": {"org:5": {"industry": "finance"}, "org:6": {"industry": "technology"}},
          "company": {"company:1": {}, "company:2": {}}}
# A two-step PostHog funnel ("user signed up" → "paid") as our stages: awareness → activation.
SIGNUP_THEN_PAID = MetricsSection(funnel_stages=["awareness", "activation"],
                                  awareness_events=["user signed up"], value_events=["paid"])


def capture(person: str, event: str, at: dt.datetime, **groups: str) -> dict:
    """A PostHog capture event; `groups` as PostHog's `$group_N` test properties."""
    properties = {"$groups": {GROUP_TYPES[int(k[-1])]: v for k, v in groups.items()}} if groups else {}
    return {"event": event, "distinct_id": person, "timestamp": at.isoformat() + "Z",
            "properties": properties}


def posthog_workspace(root: Path, events: list[dict], account_group_type: str,
                      metrics: MetricsSection | None = None) -> Workspace:
    """A workspace whose events came through our PostHog capture normalization."""
    identify = [{"event": "$groupidentify", "distinct_id": "setup", "timestamp": "2020-01-01T00:00:00Z",
                 "properties": {"$group_type": kind, "$group_key": key, "$group_set": traits}}
                for kind, groups in GROUPS.items() if kind == account_group_type
                for key, traits in groups.items()]
    batch = [{**e, "uuid": f"e{i}"} for i, e in enumerate(identify + events)]
    _, normalized = posthog_events({"api_key": "k", "batch": batch}, "2021-01-01T00:00:00Z",
                                   account_group_type)
    ws = Workspace.init(root, name="posthog")
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in normalized))
    ws.import_events(root / "events.jsonl")
    if metrics is not None:
        ws.config.metrics = metrics
    return ws


def funnel_steps(frame) -> list[tuple[int, float | None, float | None]]:
    """(count, conversion, seconds from the previous step) per step, like PostHog's result."""
    return [(int(r.reached), None if r.conversion != r.conversion else r.conversion,
             None if r.median_days_from_previous != r.median_days_from_previous
             else r.median_days_from_previous * 86400)
            for r in frame.sort_values("stage_order").itertuples()]


# ---- funnels: ClickhouseTestFunnelGroups --------------------------------------------------------
def jan(day: int, hour: int = 14) -> dt.datetime:
    return dt.datetime(2020, 1, day, hour)


def test_funnel_aggregation_with_groups(tmp_path) -> None:
    """FUNNEL_TESTS ClickhouseTestFunnelGroups.test_funnel_aggregation_with_groups: one person
    signs up in two groups, another person pays in the first group — aggregated by group, that
    is two groups entering and one converting after exactly a day. Coincides."""
    ws = posthog_workspace(tmp_path / "ws", [
        capture("user_1", "user signed up", jan(2), group_0="org:5"),
        capture("user_1", "user signed up", jan(10), group_0="org:6"),
        capture("user_2", "paid", jan(3), group_0="org:5"),
    ], "organization", SIGNUP_THEN_PAID)
    frame = ws.metric("funnel", level="account", as_of="2020-01-14")
    assert funnel_steps(frame) == [(2, None, None), (1, 0.5, 86400)]  # average_conversion_time
    ws.close()


def test_funnel_group_aggregation_with_groups_entity_filtering(tmp_path) -> None:
    """FUNNEL_TESTS ...test_funnel_group_aggregation_with_groups_entity_filtering: step 1 is
    filtered to events of group org:5. We have no per-step property filters; an account filter
    (which applies to every stage) gives PostHog's numbers here because the paying step is in
    org:5 too. Without it, org:6's sign-up enters our funnel."""
    ws = posthog_workspace(tmp_path / "ws", [
        capture("user_1", "user signed up", jan(2), group_0="org:5"),
        capture("user_2", "paid", jan(3), group_0="org:5"),
        capture("user_3", "user signed up", jan(10), group_0="org:6"),
    ], "organization", SIGNUP_THEN_PAID)
    filtered = ws.metric("funnel", level="account", as_of="2020-01-14", account="org:5")
    assert funnel_steps(filtered) == [(1, None, None), (1, 1.0, 86400)]
    unfiltered = ws.metric("funnel", level="account", as_of="2020-01-14")
    assert funnel_steps(unfiltered) == [(2, None, None), (1, 0.5, 86400)]  # ours, not PostHog's
    ws.close()


def test_funnel_with_groups_entity_filtering(tmp_path) -> None:
    """FUNNEL_TESTS ...test_funnel_with_groups_entity_filtering: aggregated by person, step 1
    filtered to org:5; the paying event in org:6 still converts the person. Our user-level
    funnel ignores accounts, so the unfiltered funnel coincides."""
    ws = posthog_workspace(tmp_path / "ws", [
        capture("user_1", "user signed up", jan(2), group_0="org:5"),
        capture("user_1", "paid", jan(3), group_0="org:6"),
        capture("user_1", "user signed up", jan(2), group_0="org:6"),
        capture("user_1", "paid", jan(3), group_0="org:6"),
    ], "organization", SIGNUP_THEN_PAID)
    frame = ws.metric("funnel", level="user", as_of="2020-01-14")
    assert funnel_steps(frame) == [(1, None, None), (1, 1.0, 86400)]
    ws.close()


def test_funnel_with_groups_global_filtering(tmp_path) -> None:
    """FUNNEL_TESTS ...test_funnel_with_groups_global_filtering: aggregated by person with a
    global filter on the group property industry = finance (org:5). Events of other groups
    drop out, so user_1's payment in org:6 does not convert and user_2 never enters. Our
    industry filter keeps the activity of finance accounts only. Coincides."""
    ws = posthog_workspace(tmp_path / "ws", [
        capture("user_1", "user signed up", jan(2), group_0="org:5"),
        capture("user_1", "paid", jan(3), group_0="org:6"),
        capture("user_2", "user signed up", jan(2), group_0="org:6"),
        capture("user_2", "paid", jan(3), group_0="org:5"),
    ], "organization", SIGNUP_THEN_PAID)
    frame = ws.metric("funnel", level="user", as_of="2020-01-14", industry="finance")
    assert [step[0] for step in funnel_steps(frame)] == [1, 0]
    ws.close()


# ---- retention: TestClickhouseRetentionGroupAggregation -------------------------------------
def june(day: int, month: int = 0) -> dt.datetime:
    """PostHog's `_date(day, month=...)` of the retention tests: 2020-(6+month)-(10+day) 05:00."""
    return dt.datetime(2020, 6 + month, 10 + day, 5)


RETENTION_EVENTS = [  # TestClickhouseRetentionGroupAggregation._create_groups_and_events
    ("person1", june(0), {"group_0": "org:5", "group_1": "company:1"}),
    ("person2", june(0), {"group_0": "org:6"}),
    ("person3", june(0), {}),
    ("person1", june(1), {"group_0": "org:5"}),
    ("person2", june(1), {"group_0": "org:6"}),
    ("person1", june(7), {"group_0": "org:5"}),
    ("person2", june(7), {"group_0": "org:6"}),
    ("person1", june(14), {"group_0": "org:5"}),
    ("person1", june(-6, month=1), {"group_0": "org:5", "group_1": "company:1"}),
    ("person2", june(-6, month=1), {"group_0": "org:6"}),
    ("person2", june(1, month=1), {"group_0": "org:6"}),
    ("person1", june(1, month=1), {"group_0": "org:5"}),
    ("person2", june(15, month=1), {"group_0": "org:6", "group_1": "company:1"}),
]
DATE_TO = dt.date(2020, 7, 20)  # PostHog: dateRange.date_to = _date(10, month=1, hour=0)
END_OF_LAST_WEEK = dt.date(2020, 7, 25)  # PostHog's last weekly interval runs to here


@pytest.fixture(scope="module", params=GROUP_TYPES)
def retention_ws(request, tmp_path_factory):
    events = [capture(p, "$pageview", at, **groups) for p, at, groups in RETENTION_EVENTS]
    ws = posthog_workspace(tmp_path_factory.mktemp(request.param) / "ws", events, request.param)
    yield request.param, ws
    ws.close()


def retained_by_period(frame) -> dict[int, int]:
    return {int(p): int(r) for p, r in zip(frame.period, frame.retained)}


def test_groups_aggregating(retention_ws) -> None:
    """RETENTION_TESTS TestClickhouseRetentionGroupAggregation.test_groups_aggregating (weekly,
    7 intervals), aggregated by organization and by company.

    PostHog's first row — the cohort of the first week — coincides with our account cohort
    table: every group is first seen that week ([2, 2, 1, 2, 2, 0, 1] for organizations,
    [1, 0, 0, 1, 0, 0, 1] for company:1). Its later rows are *recurring* cohorts (everyone
    active in that week); ours are acquisition cohorts, so we have no rows for those weeks.
    PostHog weeks start on Sunday and ours (ISO) on Monday; no event here falls in between.
    """
    group_type, ws = retention_ws
    if group_type == "organization":
        frame, first_row = ws.metric("retention", level="account", as_of=END_OF_LAST_WEEK), [2, 2, 1, 2, 2, 0, 1]
    else:
        # Events with only an organization fall back to it as their account (our ingestion takes
        # a sole group of another type); PostHog's company aggregation skips them, so we filter.
        frame = ws.metric("retention", level="account", as_of=END_OF_LAST_WEEK, account="company:1")
        first_row = [1, 0, 0, 1, 0, 0, 1]
    assert frame.cohort.nunique() == 1 and str(frame.cohort[0])[:10] == "2020-06-08"
    assert frame.cohort_size[0] == first_row[0]
    # Periods nobody was active in are absent from our table (PostHog shows 0).
    assert retained_by_period(frame) == {k: n for k, n in enumerate(first_row) if n}


def test_groups_aggregating_last_period_ends_at_as_of(retention_ws) -> None:
    """RETENTION_TESTS ...test_groups_aggregating with date_to itself as our as_of: PostHog
    counts the whole week containing date_to (org:6's and company:1's event of 2020-07-25);
    our windows end at as_of, so period 6 is empty."""
    group_type, ws = retention_ws
    account = {} if group_type == "organization" else {"account": "company:1"}
    frame = ws.metric("retention", level="account", as_of=DATE_TO, **account)
    expected = {0: 2, 1: 2, 2: 1, 3: 2, 4: 2} if group_type == "organization" else {0: 1, 3: 1}
    assert retained_by_period(frame) == expected


def test_groups_in_period(retention_ws) -> None:
    """RETENTION_TESTS ...test_groups_in_period: the periods each organization appears in —
    org:5 [0, 1, 2, 3, 4], org:6 [0, 1, 3, 4, 6] — are our retained periods of each account."""
    group_type, ws = retention_ws
    if group_type != "organization":
        pytest.skip("PostHog's case aggregates by organization only")
    for account, periods in (("org:5", [0, 1, 2, 3, 4]), ("org:6", [0, 1, 3, 4, 6])):
        frame = ws.metric("retention", level="account", as_of=END_OF_LAST_WEEK, account=account)
        assert sorted(retained_by_period(frame)) == periods, account
