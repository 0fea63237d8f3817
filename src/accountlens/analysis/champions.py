"""Champion risk: is an account's most active (or admin) user leaving or going quiet?

Read point-in-time from the effective memberships (model/memberships.py: CRM and SDK rows merged,
ends after as_of not yet known). With L = `roles.champion_lookback_days`:

- Every human user active in the account is ranked by their active events over L days: the L days
  ending at their departure when they left the account within the L days before the end of
  as_of, else the L days ending on as_of. So a champion who left 60 days ago is compared on their
  activity before leaving, not on the little they did since the window began. The champion is the
  user with the most events (ties: the smaller user id); `share_of_activity` is their events ÷
  all human active events of the account in the same window.
- Status: `left` when the champion has memberships in the account and none stands at the end of
  as_of (`left_on`, the day the last one ended, ≤ as_of); `quiet` when their last event in the
  window is older than `roles.champion_quiet_days`; `active` otherwise; `none` when the account
  has no human activity to rank (no champion).
- Every account known on as_of gets a row: created before its end, a subscription started by
  then, a membership, or an event before its end.
- `admins`: users with an admin membership standing at the end of as_of; `admins_left`: users who
  held the admin role and left the account within the L days.
- Risk: `high` when a champion carrying ≥ 25 % of the activity left or went quiet, or when a
  customer (a subscription in force on as_of) has no human activity at all; `medium` for a
  smaller champion who left or went quiet, or when an admin left; else `low`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from accountlens.analysis.registry import (
    Analysis,
    AnalysisRequest,
    day_end,
    minus_days,
    register,
    resolve_as_of,
)
from accountlens.model.memberships import effective_memberships_sql
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

HIGH_SHARE = 0.25  # a champion carrying this share of the activity is the account's lifeline

CHAMPIONS_SQL = f"""
WITH effective AS ({effective_memberships_sql("$end")}),
members AS (  -- per (account, user) at the end of as_of: still a member, else when they left
    SELECT account_id, user_id, bool_or(valid_to IS NULL) AS current, max(valid_to) AS last_end,
           bool_or(role = 'admin' AND valid_to IS NULL) AS admin, bool_or(role = 'admin') AS was_admin
    FROM effective GROUP BY ALL
),
departed AS (SELECT account_id, user_id, last_end AS left_at FROM members WHERE NOT current),
activity AS (  -- wide enough for the window of a user who left at the start of the lookback
    SELECT account_id, user_id, timestamp, role
    FROM events
    WHERE type IN ('track', 'page', 'screen') AND actor_kind = 'human'
      AND user_id IS NOT NULL AND account_id IS NOT NULL
      AND timestamp >= $wide_start AND timestamp < $end
      AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
),
windowed AS (  -- each event with the end of its user's ranking window
    SELECT a.*, CASE WHEN d.left_at >= $start THEN d.left_at ELSE $end END AS until
    FROM activity a LEFT JOIN departed d USING (account_id, user_id)
),
scored AS (
    SELECT account_id, user_id, until, count(*) AS events, max(timestamp) AS last_ts,
           arg_max(role, timestamp) AS last_role
    FROM windowed WHERE timestamp >= until - ($end - $start) AND timestamp < until
    GROUP BY ALL
),
totals AS (  -- the account's human activity in each window a user is ranked on
    SELECT w.account_id, w.until, count(*) AS account_events
    FROM (SELECT DISTINCT account_id, until FROM scored) w
    JOIN activity a ON a.account_id = w.account_id
     AND a.timestamp >= w.until - ($end - $start) AND a.timestamp < w.until
    GROUP BY ALL
),
champions AS (
    SELECT s.*, s.events / t.account_events AS share, d.left_at
    FROM scored s JOIN totals t USING (account_id, until)
    LEFT JOIN departed d USING (account_id, user_id)
    QUALIFY row_number() OVER (PARTITION BY s.account_id ORDER BY s.events DESC, s.user_id) = 1
),
admins AS (
    SELECT account_id, count(*) FILTER (WHERE admin) AS admins,
           count(*) FILTER (WHERE was_admin AND NOT current AND last_end >= $start) AS admins_left
    FROM members GROUP BY ALL
),
known_accounts AS (  -- accounts known on as_of
    SELECT account_id FROM accounts WHERE created_at < $end
    UNION SELECT account_id FROM subscriptions WHERE start_date <= $day
    UNION SELECT account_id FROM effective
    UNION SELECT account_id FROM events WHERE timestamp < $end AND account_id IS NOT NULL
),
customers AS (  -- a subscription in force on as_of: [start, end), from the dates alone
    SELECT DISTINCT account_id FROM subscriptions
    WHERE start_date <= $day AND (end_date IS NULL OR end_date > $day)
),
rows AS (
    SELECT k.account_id, c.user_id AS champion, c.last_role AS role, c.events, c.share,
           c.last_ts, c.left_at,
           CASE WHEN c.user_id IS NULL THEN 'none' WHEN c.left_at IS NOT NULL THEN 'left'
                WHEN c.last_ts < $quiet_since THEN 'quiet' ELSE 'active' END AS status,
           coalesce(a.admins, 0) AS admins, coalesce(a.admins_left, 0) AS admins_left,
           cu.account_id IS NOT NULL AS customer
    FROM known_accounts k LEFT JOIN champions c USING (account_id) LEFT JOIN admins a USING (account_id)
    LEFT JOIN customers cu USING (account_id)
    WHERE CAST($account AS VARCHAR) IS NULL OR k.account_id = $account
)
SELECT account_id, champion, role, events, round(share, 4) AS share_of_activity,
       strftime(last_ts, '%Y-%m-%d') AS last_seen,
       CAST(floor((epoch_us($end) - epoch_us(last_ts)) / 86400000000) AS BIGINT) AS days_since_seen,
       status, strftime(left_at, '%Y-%m-%d') AS left_on, admins, admins_left,
       CASE WHEN status IN ('left', 'quiet') AND share >= {HIGH_SHARE} THEN 'high'
            WHEN status = 'none' AND customer THEN 'high'
            WHEN status IN ('left', 'quiet') OR admins_left > 0 THEN 'medium'
            ELSE 'low' END AS risk,
       customer
FROM rows
ORDER BY CASE risk WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
         share_of_activity DESC NULLS LAST, account_id
LIMIT $limit
"""


class ChampionsRequest(AnalysisRequest):
    level: Literal["account"] = Field(default="account", description="one row per account (only level)")
    quiet_days: int | None = Field(default=None, ge=1, le=36500, description="days without activity = quiet")
    lookback_days: int | None = Field(default=None, ge=1, le=36500, description="days of activity to rank users")


def run(store: Store, settings, request: ChampionsRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    cfg = settings.roles
    end = day_end(as_of)
    lookback = request.lookback_days or cfg.champion_lookback_days
    frame = store.df(CHAMPIONS_SQL, {
        "day": as_of,
        "start": minus_days(end, lookback),
        "wide_start": minus_days(end, 2 * lookback),  # a window ending at the earliest departure
        "end": end,
        "quiet_since": minus_days(end, request.quiet_days or cfg.champion_quiet_days),
        "account": request.account,
        "limit": request.limit,
    })
    for column in ("events", "days_since_seen"):  # counts, empty for an account without champion
        frame[column] = frame[column].astype("Int64")
    return frame


register(Analysis(
    name="champions",
    summary="Each account's champion (most active user, ranked before their departure when they "
            "left), whether they left or went quiet, admins who left, and the resulting risk.",
    request=ChampionsRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
