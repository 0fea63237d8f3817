"""Champion risk: is an account's most active (or admin) user leaving or going quiet?

The champion of an account is its most active human user over `roles.champion_lookback_days`
ending on as_of. The champion has *left* when their membership in the account ended on or
before as_of, and is *quiet* when they have no activity in the last `roles.champion_quiet_days`.
Risk is `high` when a champion carrying at least a quarter of the account's activity left or went
quiet, `medium` for a smaller champion or an admin who left, else `low`.
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
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

CHAMPIONS_SQL = """
WITH activity AS (
    SELECT account_id, user_id, count(*) AS events, max(timestamp) AS last_ts,
           arg_max(role, timestamp) AS last_role
    FROM events
    WHERE type IN ('track', 'page', 'screen') AND actor_kind = 'human'
      AND user_id IS NOT NULL AND account_id IS NOT NULL
      AND timestamp >= $start AND timestamp < $end
      AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
    GROUP BY ALL
),
ranked AS (
    SELECT *, events / sum(events) OVER (PARTITION BY account_id) AS share,
           row_number() OVER (PARTITION BY account_id ORDER BY events DESC, user_id) AS rank
    FROM activity
),
membership AS (  -- per (account, user): had any membership, and one valid at as_of
    SELECT account_id, user_id,
           bool_or(valid_from < $end AND (valid_to IS NULL OR valid_to >= $end)) AS current,
           max(valid_to) AS ended_at
    FROM memberships GROUP BY ALL
),
admins AS (
    SELECT account_id,
           count(DISTINCT user_id) FILTER (WHERE current) AS admins,
           count(DISTINCT user_id) FILTER (WHERE NOT current) AS admins_left
    FROM (SELECT m.account_id, m.user_id,
                 bool_or(m.valid_from < $end AND (m.valid_to IS NULL OR m.valid_to >= $end)) AS current
          FROM memberships m WHERE m.role = 'admin' AND m.valid_from < $end GROUP BY ALL)
    GROUP BY ALL
),
champions AS (
    SELECT r.*, m.current, m.ended_at,
           CASE WHEN m.current IS NOT NULL AND NOT m.current THEN 'left'
                WHEN r.last_ts < $quiet_since THEN 'quiet'
                ELSE 'active' END AS status
    FROM ranked r LEFT JOIN membership m USING (account_id, user_id)
    WHERE r.rank = 1
)
SELECT c.account_id, c.user_id AS champion, c.last_role AS role, c.events,
       round(c.share, 4) AS share_of_activity,
       strftime(c.last_ts, '%Y-%m-%d') AS last_seen,
       CAST(floor(epoch($end - c.last_ts) / 86400) AS BIGINT) AS days_since_seen,
       c.status,
       CASE WHEN c.status = 'left' THEN strftime(c.ended_at, '%Y-%m-%d') END AS left_on,
       coalesce(a.admins, 0) AS admins, coalesce(a.admins_left, 0) AS admins_left,
       CASE WHEN c.status <> 'active' AND c.share >= 0.25 THEN 'high'
            WHEN c.status <> 'active' OR coalesce(a.admins_left, 0) > 0 THEN 'medium'
            ELSE 'low' END AS risk
FROM champions c LEFT JOIN admins a USING (account_id)
ORDER BY CASE risk WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
         share_of_activity DESC, c.account_id
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
    return store.df(CHAMPIONS_SQL, {
        "start": minus_days(end, request.lookback_days or cfg.champion_lookback_days),
        "end": end,
        "quiet_since": minus_days(end, request.quiet_days or cfg.champion_quiet_days),
        "account": request.account,
        "limit": request.limit,
    })


register(Analysis(
    name="champions",
    summary="Each account's champion (most active user), whether they left or went quiet, "
            "admins who left, and the resulting risk.",
    request=ChampionsRequest,
    run=run,
))
