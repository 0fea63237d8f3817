"""Reconciliation of CRM, billing and telemetry as of a day (docs/quality.md, "Reconciliation"):
one row per disagreement between what the contracts say and what the product sees.

Subscriptions count when in force on as_of by their dates (half-open `[start, end)`, never the
`status` column); activity is active events (track, page, screen) in the last
`anomalies.active_days` days before the end of as_of. Seats and ARR are compared between
sources (crm, billing) on the latest import of each source that holds the account
(`subscription_sources`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis.registry import (
    Analysis,
    AnalysisRequest,
    day_end,
    minus_days,
    register,
    resolve_as_of,
)
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

CHECKS = ("billed_never_seen", "active_without_contract", "users_above_seats",
          "domain_without_account", "seats_mismatch", "arr_mismatch",
          "subscription_unknown_account")
COLUMNS = ("check", "account_id", "domain", "detail", "value")

RECONCILE_SQL = """
WITH in_force AS (  -- subscriptions in force on the day, from their dates alone
    SELECT * FROM subscriptions
    WHERE start_date <= $day AND (end_date IS NULL OR end_date > $day)
),
contracts AS (
    SELECT account_id, sum(coalesce(seats, 0)) AS seats, count(*) AS subscriptions,
           sum(coalesce(arr, 0)) AS arr
    FROM in_force GROUP BY account_id
),
seen AS (SELECT DISTINCT account_id FROM events WHERE account_id IS NOT NULL AND timestamp < $end),
active AS (
    SELECT account_id, count(*) AS events,
           count(DISTINCT user_id) FILTER (WHERE actor_kind = 'human') AS users
    FROM events
    WHERE type IN ('track', 'page', 'screen') AND account_id IS NOT NULL
      AND timestamp >= $active_start AND timestamp < $end
    GROUP BY account_id
),
known AS (SELECT account_id FROM accounts),
latest AS (  -- per (source, account): the rows of the latest import of that source holding it
    SELECT * FROM subscription_sources
    WHERE start_date IS NULL OR start_date <= $day
    QUALIFY import_id = max(import_id) OVER (PARTITION BY source, account_id)
),
by_source AS (
    SELECT account_id, source,
           sum(coalesce(seats, 0)) FILTER (WHERE start_date <= $day
               AND (end_date IS NULL OR end_date > $day)) AS seats,
           sum(coalesce(arr, 0)) FILTER (WHERE start_date <= $day
               AND (end_date IS NULL OR end_date > $day)) AS arr
    FROM latest GROUP BY ALL
),
compared AS (
    SELECT account_id,
           string_agg(source || ': ' || coalesce(seats, 0) || ' seats', ', ' ORDER BY source)
               AS seats_text,
           string_agg(source || ': ' || printf('%,.2f', coalesce(arr, 0)) || ' ARR', ', '
                      ORDER BY source) AS arr_text,
           max(coalesce(seats, 0)) - min(coalesce(seats, 0)) AS seats_gap,
           max(coalesce(arr, 0)) - min(coalesce(arr, 0)) AS arr_gap,
           max(abs(coalesce(arr, 0))) AS arr_scale
    FROM by_source GROUP BY account_id HAVING count(DISTINCT source) >= 2
),
emails AS (
    SELECT lower(split_part(email, '@', -1)) AS domain, count(*) AS users, min(email) AS example
    FROM users
    WHERE email LIKE '%_@_%' AND (created_at IS NULL OR created_at < $end)
    GROUP BY 1
)
SELECT 'billed_never_seen' AS "check", c.account_id, NULL AS domain,
       c.subscriptions || ' subscription(s) in force (' || c.seats || ' seats, ARR '
           || printf('%,.2f', c.arr) || ') and no event of the account ever' AS detail,
       c.arr AS value
FROM contracts c ANTI JOIN seen s USING (account_id)
WHERE c.account_id IN (SELECT account_id FROM known)  -- else subscription_unknown_account
UNION ALL
SELECT 'active_without_contract', a.account_id, NULL,
       a.events || ' active events by ' || a.users || ' users in the last ' || $active_days
           || ' days and no subscription in force', a.events
FROM active a ANTI JOIN contracts c USING (account_id)
UNION ALL
SELECT 'users_above_seats', a.account_id, NULL,
       a.users || ' active users in the last ' || $active_days || ' days on ' || c.seats
           || ' seats in force', a.users - c.seats
FROM active a JOIN contracts c USING (account_id)
WHERE c.seats > 0 AND a.users > c.seats
UNION ALL
SELECT 'domain_without_account', NULL, e.domain,
       e.users || ' user(s) with an email at ' || e.domain || ' (e.g. ' || e.example
           || ') and no account with that domain', e.users
FROM emails e
WHERE NOT list_contains(CAST($free AS VARCHAR[]), e.domain)
  AND NOT EXISTS (SELECT 1 FROM accounts a WHERE lower(trim(a.domain)) = e.domain)
UNION ALL
SELECT 'seats_mismatch', account_id, NULL, 'seats in force differ: ' || seats_text, seats_gap
FROM compared WHERE seats_gap <> 0
UNION ALL
SELECT 'arr_mismatch', account_id, NULL, 'ARR in force differs: ' || arr_text, arr_gap
FROM compared WHERE arr_gap > $tolerance * arr_scale AND arr_gap > 0
UNION ALL
SELECT 'subscription_unknown_account', account_id, NULL,
       'subscription(s) ' || string_agg(DISTINCT subscription_id, ', ' ORDER BY subscription_id)
           || ' (' || string_agg(DISTINCT source, ', ' ORDER BY source)
           || ') name an account that is not in accounts', count(DISTINCT subscription_id)
FROM (SELECT subscription_id, account_id, coalesce(source, 'subscriptions') AS source
      FROM subscriptions WHERE start_date <= $day
      UNION ALL
      SELECT subscription_id, account_id, source FROM subscription_sources
      WHERE start_date IS NULL OR start_date <= $day) s
ANTI JOIN known k USING (account_id)
GROUP BY account_id
"""


class ReconcileRequest(AnalysisRequest):
    level: Literal["account"] = Field(default="account", description=(
        "one row per finding, by account (or email domain); the only level"))
    check: Literal[CHECKS] | None = Field(  # type: ignore[valid-type]
        default=None, description="only findings of this check")


def run(store: Store, settings: Any, request: ReconcileRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    cfg = settings.anomalies
    end = day_end(as_of)
    frame = store.df(RECONCILE_SQL, {
        "day": as_of, "end": end, "active_start": minus_days(end, cfg.active_days),
        "active_days": cfg.active_days, "free": [d.lower() for d in cfg.free_mail_domains],
        "tolerance": cfg.arr_tolerance,
    })
    if request.check:
        frame = frame[frame["check"] == request.check]
    if request.account:
        frame = frame[frame["account_id"] == request.account]
    order = {check: i for i, check in enumerate(CHECKS)}
    frame = frame.assign(_order=frame["check"].map(order)).sort_values(
        ["_order", "account_id", "domain"], na_position="last")
    frame = frame.drop(columns="_order").reset_index(drop=True)[list(COLUMNS)]
    frame["value"] = frame["value"].astype(float)
    for column in ("account_id", "domain"):  # None, not NaN, where a finding has none
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame.attrs["table_columns"] = ["check", "account_id", "domain", "detail"]
    return frame


register(Analysis(
    name="reconcile",
    summary="Reconciliation of CRM, billing and telemetry as of a day: accounts billed but never "
            "seen, active without a contract, users above seats, email domains of no account, "
            "seat or ARR mismatches between sources, subscriptions of unknown accounts.",
    request=ReconcileRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
