"""The hand-written DuckDB baseline of the metrics benchmark: one SQL query for the account
metrics table and one for the account-level AARRR funnel, straight from the raw workspace tables
(events, accounts, users, memberships, subscriptions) — not the engine's daily rollup.

Settings arrive as bound parameters (`params(settings)`), never as SQL text.
"""

from __future__ import annotations

from typing import Any

from accountlens.config import MetricsSection

# Shared head: as_of (the latest day with an active event), the active events up to it, and the
# accounts known on it with their acquisition moment.
_HEAD = """
WITH
day AS (SELECT max(CAST(timestamp AS DATE)) AS d FROM events
        WHERE type IN ('track', 'page', 'screen')),
act AS (
    SELECT e.account_id, e.user_id, e.unit_id, e.role, e.name, e.product, e.actor_kind,
           e.timestamp, CAST(e.timestamp AS DATE) AS day,
           e.actor_kind = 'human' AND e.user_id IS NOT NULL AS human,
           CAST(e.timestamp AS DATE) > day.d - 30 AS in30
    FROM events e, day
    WHERE e.type IN ('track', 'page', 'screen') AND e.account_id IS NOT NULL
      AND CAST(e.timestamp AS DATE) <= day.d),
first_sub AS (
    SELECT account_id, CAST(min(start_date) AS TIMESTAMPTZ) AS first_sub
    FROM subscriptions, day WHERE start_date <= day.d GROUP BY account_id),
first_event AS (SELECT account_id, min(timestamp) AS first_event FROM act GROUP BY account_id),
known AS (
    SELECT account_id FROM accounts, day WHERE CAST(created_at AS DATE) <= day.d
    UNION SELECT account_id FROM first_sub
    UNION SELECT account_id FROM first_event),
acq AS (
    SELECT k.account_id, least(s.first_sub, f.first_event) AS acquired_at
    FROM known k LEFT JOIN first_sub s USING (account_id) LEFT JOIN first_event f USING (account_id))
"""

TABLE_SQL = _HEAD + """,
per AS (
    SELECT account_id,
           count(DISTINCT user_id) FILTER (human AND day = (SELECT d FROM day)) AS dau,
           count(DISTINCT user_id) FILTER (human AND day > (SELECT d FROM day) - 7) AS wau,
           count(DISTINCT user_id) FILTER (human AND in30) AS mau,
           CAST(bool_or(day = (SELECT d FROM day)) AS INTEGER) AS active_1d,
           CAST(bool_or(day > (SELECT d FROM day) - 7) AS INTEGER) AS active_7d,
           CAST(bool_or(in30) AS INTEGER) AS active_30d,
           count(DISTINCT name) FILTER (in30) AS event_names,
           count(*) FILTER (human AND in30) AS active_events
    FROM act GROUP BY account_id),
all_names AS (SELECT count(DISTINCT name) AS all_event_names FROM act WHERE in30),
daily AS (
    SELECT account_id, sum(users) / 30.0 AS mean_dau
    FROM (SELECT account_id, day, count(DISTINCT user_id) AS users FROM act
          WHERE human AND in30 GROUP BY account_id, day) GROUP BY account_id),
user_firsts AS (  -- each user's first event and first value event in each account
    SELECT account_id, user_id, min(timestamp) AS first_at,
           min(timestamp) FILTER (name IN $value_events) AS first_value_at
    FROM act WHERE human GROUP BY account_id, user_id),
value_users AS (
    SELECT u.account_id, u.user_id, u.first_value_at,
           row_number() OVER (PARTITION BY u.account_id ORDER BY u.first_value_at, u.user_id)
               AS rank_all,
           u.first_value_at < a.acquired_at + to_days($activation_days) AS within
    FROM user_firsts u JOIN acq a USING (account_id) WHERE u.first_value_at IS NOT NULL),
activation AS (
    SELECT account_id, count(*) AS value_users,
           max(first_value_at) FILTER (rank_within = $min_users) AS activated_at
    FROM (SELECT *, row_number() OVER (PARTITION BY account_id
                                        ORDER BY first_value_at, user_id) AS rank_within
          FROM value_users WHERE within) GROUP BY account_id),
reached_value AS (
    SELECT account_id, max(first_value_at) FILTER (rank_all = $min_users) AS value_at
    FROM value_users GROUP BY account_id),
early AS (
    SELECT u.account_id, count(DISTINCT u.user_id) AS early_users
    FROM user_firsts u JOIN acq a USING (account_id)
    WHERE u.first_at < a.acquired_at + to_days($velocity_days) GROUP BY u.account_id),
live AS (SELECT s.* FROM subscriptions s, day
         WHERE s.start_date <= day.d AND (s.end_date IS NULL OR s.end_date >= day.d)),
contracts AS (SELECT account_id, sum(seats) AS seats, sum(coalesce(arr, 0)) AS arr
              FROM live GROUP BY account_id),
period_start AS (  -- ARR on the first day of the revenue period
    SELECT s.account_id, sum(coalesce(s.arr, 0)) AS start_arr
    FROM subscriptions s, day
    WHERE s.start_date <= day.d - $period_days
      AND (s.end_date IS NULL OR s.end_date >= day.d - $period_days)
    GROUP BY s.account_id),
members AS (
    SELECT m.account_id, count(DISTINCT m.user_id) AS members
    FROM memberships m, day
    WHERE m.valid_from < CAST(day.d + 1 AS TIMESTAMPTZ)
      AND (m.valid_to IS NULL OR m.valid_to >= CAST(day.d + 1 AS TIMESTAMPTZ))
    GROUP BY m.account_id),
invites AS (
    SELECT e.rowid AS invite, e.account_id, e.timestamp,
           lower(json_extract_string(e.properties, $email_path)) AS email
    FROM events e, day
    WHERE e.type = 'track' AND e.name = $referral_event AND e.actor_kind = 'human'
      AND e.account_id IS NOT NULL AND e.timestamp < CAST(day.d + 1 AS TIMESTAMPTZ)),
invitees AS (
    SELECT i.*, u.user_id AS invitee_id,
           coalesce(split_part(i.email, '@', 2) = lower(a.domain), false)
           OR EXISTS (SELECT 1 FROM memberships m, day
                      WHERE m.user_id = u.user_id AND m.account_id = i.account_id
                        AND m.valid_from < CAST(day.d + 1 AS TIMESTAMPTZ)) AS internal
    FROM invites i LEFT JOIN accounts a USING (account_id)
    LEFT JOIN users u ON lower(u.email) = i.email),
referrals AS (
    SELECT i.account_id, count(DISTINCT i.invite) AS invites,
           count(DISTINCT i.invite) FILTER (i.internal) AS internal,
           count(DISTINCT i.invite) FILTER (NOT i.internal) AS external,
           count(DISTINCT m.account_id) AS referred_accounts
    FROM invitees i LEFT JOIN (SELECT m.* FROM memberships m, day
                               WHERE m.valid_from < CAST(day.d + 1 AS TIMESTAMPTZ)) m
        ON NOT i.internal AND m.user_id = i.invitee_id AND m.account_id <> i.account_id
           AND m.valid_from >= i.timestamp
    GROUP BY i.account_id)
SELECT
    k.account_id AS account,
    coalesce(p.dau, 0) AS dau, coalesce(p.wau, 0) AS wau, coalesce(p.mau, 0) AS mau,
    coalesce(p.active_1d, 0) AS active_1d, coalesce(p.active_7d, 0) AS active_7d,
    coalesce(p.active_30d, 0) AS active_30d,
    coalesce(c.seats, 0) AS seats,
    CASE WHEN c.seats > 0 THEN coalesce(p.mau, 0) / c.seats END AS seat_utilization,
    coalesce(p.event_names, 0) AS event_names,
    CASE WHEN p.event_names > 0 THEN n.all_event_names END AS all_event_names,
    CASE WHEN p.event_names > 0 AND n.all_event_names > 0
         THEN p.event_names / n.all_event_names END AS breadth,
    coalesce(p.active_events, 0) AS active_events, coalesce(p.mau, 0) AS active_users,
    CASE WHEN p.mau > 0 THEN p.active_events / p.mau END AS depth,
    coalesce(dd.mean_dau, 0.0) AS mean_dau,
    CASE WHEN p.mau > 0 THEN dd.mean_dau / p.mau END AS stickiness,
    1 AS accounts, coalesce(mb.members, 0) AS members,
    CAST(coalesce(p.mau, 0) AS DOUBLE) AS users_per_account,
    CAST(coalesce(mb.members, 0) AS DOUBLE) AS members_per_account,
    CAST(a.acquired_at AS DATE) AS acquired_on,
    coalesce(ac.value_users, 0) AS value_users,
    CAST(ac.activated_at AS DATE) AS activated_on, ac.activated_at IS NOT NULL AS activated,
    (epoch(CAST(rv.value_at AS TIMESTAMP)) - epoch(CAST(a.acquired_at AS TIMESTAMP))) / 86400
        AS time_to_value_days,
    coalesce(ea.early_users, 0) AS early_users,
    coalesce(ea.early_users, 0) / ($velocity_days / 7.0) AS adoption_velocity,
    coalesce(r.invites, 0) AS invites, coalesce(r.internal, 0) AS internal,
    coalesce(r.external, 0) AS external, coalesce(r.referred_accounts, 0) AS referred_accounts,
    CAST(coalesce(c.arr, 0) > 0 AS INTEGER) AS paying_accounts, coalesce(c.arr, 0.0) AS arr,
    ps.start_arr, CASE WHEN ps.account_id IS NOT NULL THEN coalesce(c.arr, 0.0) END AS end_arr,
    coalesce(c.arr, 0.0) / ps.start_arr AS nrr,
    CASE WHEN ps.account_id IS NOT NULL THEN least(coalesce(c.arr, 0.0), ps.start_arr) END
        AS retained_arr,
    least(coalesce(c.arr, 0.0), ps.start_arr) / ps.start_arr AS grr,
    CASE WHEN ps.account_id IS NOT NULL THEN 1 END AS start_accounts,
    CASE WHEN ps.account_id IS NOT NULL THEN CAST(coalesce(c.arr, 0) > 0 AS INTEGER) END
        AS retained_accounts,
    CASE WHEN ps.account_id IS NOT NULL THEN CAST(coalesce(c.arr, 0) > 0 AS DOUBLE) END
        AS logo_retention
FROM known k
CROSS JOIN all_names n
LEFT JOIN per p USING (account_id) LEFT JOIN daily dd USING (account_id)
LEFT JOIN acq a USING (account_id) LEFT JOIN activation ac USING (account_id)
LEFT JOIN reached_value rv USING (account_id) LEFT JOIN early ea USING (account_id)
LEFT JOIN contracts c USING (account_id) LEFT JOIN members mb USING (account_id)
LEFT JOIN referrals r USING (account_id)
LEFT JOIN (SELECT * FROM period_start WHERE start_arr > 0) ps USING (account_id)
ORDER BY account
"""

# A stage is reached at the first qualifying event at or after the previous stage (+ delay).
FUNNEL_SQL = _HEAD + """,
s1 AS (SELECT account_id, acquired_at AS reached_at FROM acq WHERE acquired_at IS NOT NULL),
s2 AS (SELECT s.account_id, any_value(s.reached_at) AS prev_at, min(m.timestamp) AS reached_at
       FROM s1 s JOIN act m USING (account_id)
       WHERE m.name IN $value_events AND m.timestamp >= s.reached_at GROUP BY s.account_id),
s3 AS (SELECT s.account_id, any_value(s.reached_at) AS prev_at, min(m.timestamp) AS reached_at
       FROM s2 s JOIN act m USING (account_id)
       WHERE m.timestamp >= s.reached_at + to_days($retention_days) GROUP BY s.account_id),
s4 AS (SELECT s.account_id, any_value(s.reached_at) AS prev_at, min(m.timestamp) AS reached_at
       FROM s3 s JOIN act m USING (account_id)
       WHERE m.name = $referral_event AND m.timestamp >= s.reached_at GROUP BY s.account_id),
s5 AS (SELECT s.account_id, any_value(s.reached_at) AS prev_at,
              min(CAST(p.start_date AS TIMESTAMPTZ)) AS reached_at
       FROM s4 s JOIN subscriptions p USING (account_id), day
       WHERE p.arr > 0 AND p.start_date <= day.d
         AND CAST(p.start_date AS TIMESTAMPTZ) >= s.reached_at
       GROUP BY s.account_id),
stages AS (
    SELECT 1 AS stage_order, 'acquisition' AS stage, count(*) AS reached,
           CAST(NULL AS DOUBLE) AS days FROM s1
    UNION ALL SELECT 2, 'activation', count(*), median(epoch(reached_at) - epoch(prev_at)) FROM s2
    UNION ALL SELECT 3, 'retention', count(*), median(epoch(reached_at) - epoch(prev_at)) FROM s3
    UNION ALL SELECT 4, 'referral', count(*), median(epoch(reached_at) - epoch(prev_at)) FROM s4
    UNION ALL SELECT 5, 'revenue', count(*), median(epoch(reached_at) - epoch(prev_at)) FROM s5)
SELECT stage_order, stage, reached,
       CASE WHEN stage_order > 1 AND lag(reached) OVER (ORDER BY stage_order) > 0
            THEN reached / lag(reached) OVER (ORDER BY stage_order) END AS conversion,
       days / 86400 AS median_days_from_previous
FROM stages ORDER BY stage_order
"""

FUNNEL_STAGES = ["acquisition", "activation", "retention", "referral", "revenue"]


def params(settings: MetricsSection) -> dict[str, Any]:
    """The settings the queries read, as named parameters."""
    return {
        "value_events": list(settings.value_events), "min_users": settings.min_users,
        "activation_days": settings.account_activation_days,
        "velocity_days": 7 * settings.velocity_weeks, "referral_event": settings.referral_event,
        "email_path": "$." + settings.referral_email_property,
        "period_days": settings.revenue_period_days,
    }


def funnel_params(settings: MetricsSection) -> dict[str, Any]:
    if settings.funnel_stages != FUNNEL_STAGES:
        raise ValueError(f"the SQL baseline writes out the default funnel {FUNNEL_STAGES}")
    return {"value_events": list(settings.value_events), "referral_event": settings.referral_event,
            "retention_days": settings.retention_after_days}
