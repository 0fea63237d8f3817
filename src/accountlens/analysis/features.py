"""Account features as of a day, strictly point-in-time (SPEC §8): what health scores, predictions,
signals and renewals are computed from.

Everything is read as it was known on `as_of`: events up to that day (the metrics of
metrics/), subscriptions in force that day (half-open `[start, end)`, status derived from the
dates, never from the `status` column), memberships as they stood (an end after `as_of` is not
yet known), traits from the dated history (CSV-imported traits carry no date and are recorded
as known from the start; `group` calls from their timestamps), and no outcome at all.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import Field

from accountlens.analysis.registry import (
    MAX_ROWS,
    AnalysisRequest,
    day_end,
    days_before,
    run_analysis,
)
from accountlens.metrics.registry import metric_request, run
from accountlens.metrics.table import run_table
from accountlens.store.base import Store
from accountlens.store.cache import BoundedCache

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

# Account metrics (metrics/) taken as features, and the columns kept of them.
METRICS = ("mau", "seat_utilization", "breadth", "depth", "stickiness", "activation",
           "time_to_value", "adoption_velocity", "arr")
METRIC_COLUMNS = ("mau", "seats", "seat_utilization", "breadth", "depth", "stickiness",
                  "activated", "time_to_value_days", "adoption_velocity", "arr")
# Numeric features a model may learn from (segments and labels are not among them).
NUMERIC = ("arr", "seats", "mau", "active_user_trend", "events_30d", "event_trend",
           "seat_utilization", "breadth", "depth", "stickiness", "activated",
           "time_to_value_days", "adoption_velocity", "champion_present", "champion_share",
           "contract_alignment", "quota_alignment_max", "open_stalls", "open_stalls_per_user",
           "members", "users_left_90d", "days_since_active", "tenure_days")
SEGMENTS = ("plan", "industry", "region", "size_band", "owner")
TREND_DAYS = 30

_CACHE = BoundedCache(128)

_BASE_SQL = """
WITH live AS (  -- subscriptions in force on as_of: [start, end), from the dates alone
    SELECT account_id, sum(coalesce(arr, 0)) AS live_arr, count(*) AS subscriptions,
           arg_max(plan, coalesce(arr, 0)) AS live_plan
    FROM subscriptions
    WHERE start_date <= $day AND (end_date IS NULL OR end_date > $day)
    GROUP BY ALL
),
tenure AS (
    SELECT account_id, min(start_date) AS first_contract FROM subscriptions
    WHERE start_date <= $day GROUP BY ALL
),
activity AS (  -- active events (track, page, screen) before the end of as_of
    SELECT account_id, max(CAST(timestamp AS DATE)) AS last_day,
           count(*) FILTER (WHERE timestamp >= $end - INTERVAL 30 DAY) AS events_30d,
           count(*) FILTER (WHERE timestamp < $end - INTERVAL 30 DAY
                            AND timestamp >= $end - INTERVAL 60 DAY) AS events_prev_30d
    FROM events
    WHERE timestamp < $end AND account_id IS NOT NULL AND type IN ('track', 'page', 'screen')
    GROUP BY ALL
),
member_state AS (  -- per (account, user): a membership in force at the end of as_of, last end
    SELECT account_id, user_id,
           bool_or(valid_from < $end AND (valid_to IS NULL OR valid_to >= $end)) AS current,
           max(valid_to) FILTER (WHERE valid_to < $end) AS ended
    FROM memberships WHERE valid_from < $end GROUP BY ALL
),
members AS (
    SELECT account_id, count(*) FILTER (WHERE current) AS members,
           count(*) FILTER (WHERE NOT current AND ended >= $end - INTERVAL 90 DAY) AS users_left_90d
    FROM member_state GROUP BY ALL
)
SELECT a.account_id, a.parent_account_id, a.industry, a.region, a.employees,
       coalesce(l.live_plan, a.plan) AS plan, coalesce(l.subscriptions, 0) AS subscriptions,
       l.live_arr IS NOT NULL AS customer,
       CAST($day - t.first_contract AS BIGINT) AS tenure_days,
       CAST($day - act.last_day AS BIGINT) AS days_since_active,
       coalesce(act.events_30d, 0) AS events_30d, coalesce(act.events_prev_30d, 0) AS events_prev_30d,
       coalesce(m.members, 0) AS members, coalesce(m.users_left_90d, 0) AS users_left_90d
FROM accounts a
LEFT JOIN live l USING (account_id) LEFT JOIN tenure t USING (account_id)
LEFT JOIN activity act USING (account_id) LEFT JOIN members m USING (account_id)
WHERE l.live_arr IS NOT NULL OR act.last_day IS NOT NULL OR t.first_contract IS NOT NULL
      OR coalesce(a.created_at < $end, FALSE)  -- created_at: first seen by a `group` call
      OR a.account_id IN (SELECT parent_account_id FROM accounts)  -- a parent (undated CRM data)
"""

_TRAITS_SQL = """
SELECT account_id, CAST(traits AS VARCHAR) AS traits FROM account_traits_history
WHERE valid_from < $end ORDER BY account_id, valid_from, message_id NULLS FIRST
"""


class AccountFilters(AnalysisRequest):
    """Filters by account attributes (as of the request's day), shared by the outcome analyses."""

    industry: str | None = Field(default=None, description="only accounts of this industry")
    region: str | None = Field(default=None, description="only accounts of this region")
    plan: str | None = Field(default=None, description="only accounts on this plan")
    size_band: str | None = Field(default=None, description="only accounts of this size band")
    owner: str | None = Field(default=None, description="only accounts with this owner trait")


def filtered(frame: pd.DataFrame, request: AccountFilters) -> pd.DataFrame:
    """The rows of `frame` (features or a result with account_id) that pass the filters."""
    keep = frame
    for name in (*SEGMENTS, "account"):
        wanted = getattr(request, name, None)
        if wanted is None:
            continue
        column = "account_id" if name == "account" else name
        keep = keep[keep[column].astype("string") == wanted]
    return keep


def account_features(store: Store, settings: Any, as_of: dt.date) -> pd.DataFrame:
    """One row per account known on `as_of` (a contract or activity by then, or the parent of an
    account), with every feature as of that day. Kept while the store's data and the settings
    are unchanged."""
    key = (store.instance, store.data_version, as_of, settings.model_dump_json())
    return _CACHE.kept(key, lambda: _compute(store, settings, as_of)).copy()


def _compute(store: Store, settings: Any, as_of: dt.date) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    end = day_end(as_of)
    base = store.df(_BASE_SQL, {"day": as_of, "end": end})
    traits = _traits(store, end, base)
    base["owner"] = [t.get("owner") for t in traits]
    for name in _trait_inputs(settings):
        base[f"trait_{name}"] = pd.to_numeric(
            pd.Series([t.get(name) for t in traits], index=base.index), errors="coerce")
    base["size_band"] = _size_band(base["employees"], settings.metrics.size_bands)

    # A day before any data: the derived inputs are empty too, and not computed.
    def derived(compute: Callable[[], pd.DataFrame], *columns: str) -> pd.DataFrame:
        return pd.DataFrame(columns=["account_id", *columns]) if base.empty else compute()

    metrics = derived(lambda: _metrics(store, settings, METRICS, as_of), *METRIC_COLUMNS)
    before = derived(lambda: _metrics(store, settings, ("mau",), days_before(as_of, TREND_DAYS)),
                     "mau")
    frame = base.merge(metrics, on="account_id", how="left")
    frame = frame.merge(before.rename(columns={"mau": "mau_prev"}), on="account_id", how="left")
    for column in ("mau", "mau_prev", "arr", "seats"):
        frame[column] = frame[column].fillna(0.0).astype(float)
    frame["activated"] = frame["activated"].astype("float").fillna(0.0)
    frame["active_user_trend"] = (frame["mau"] - frame["mau_prev"]) / frame["mau_prev"].clip(lower=1)
    frame["event_trend"] = ((frame["events_30d"] - frame["events_prev_30d"])
                            / frame["events_prev_30d"].clip(lower=1))
    champions = derived(lambda: _champions(store, settings, as_of),
                        "champion_user_id", "champion_status", "champion_share")
    frame = frame.merge(champions, on="account_id", how="left")
    frame["champion_status"] = frame["champion_status"].fillna("none")
    frame["champion_present"] = (frame["champion_status"] == "active").astype(float)
    frame["champion_share"] = frame["champion_share"].fillna(0.0)
    alignment = derived(lambda: _alignment(store, settings, as_of),
                        "contract_alignment", "quota_alignment_max")
    frame = frame.merge(alignment, on="account_id", how="left")
    frame = frame.merge(derived(lambda: _stalls(store, settings, as_of), "open_stalls"),
                        on="account_id", how="left")
    frame["open_stalls"] = frame["open_stalls"].fillna(0).astype(int)
    frame["open_stalls_per_user"] = frame["open_stalls"] / frame["mau"].clip(lower=1)
    frame["as_of"] = as_of
    for column in NUMERIC:
        frame[column] = frame[column].astype(float)
    frame = frame.replace([np.inf, -np.inf], np.nan)
    return frame.sort_values("account_id").reset_index(drop=True)


def _metrics(store: Store, settings: Any, names: tuple[str, ...], day: dt.date) -> pd.DataFrame:
    result = run_table(store, settings.metrics, settings.analysis, list(names), "account", day)
    frame = result.frame
    return frame[["account_id", *[c for c in METRIC_COLUMNS if c in frame.columns]]]


def _champions(store: Store, settings: Any, day: dt.date) -> pd.DataFrame:
    rows = run_analysis(store, settings, "champions", as_of=day, limit=MAX_ROWS).frame
    return rows.rename(columns={"status": "champion_status", "share_of_activity": "champion_share",
                                "champion": "champion_user_id"})[
        ["account_id", "champion_user_id", "champion_status", "champion_share"]]


def _alignment(store: Store, settings: Any, day: dt.date) -> pd.DataFrame:
    request = metric_request("contract_alignment", "account", day, {}, {})
    rows = run(store, settings.metrics, settings.analysis, request).frame
    rows = rows[rows["alignment"].notna()]
    rows = rows.assign(capped=rows["alignment"].clip(upper=1.0))
    return rows.groupby("account_id").agg(contract_alignment=("capped", "mean"),
                                          quota_alignment_max=("alignment", "max")).reset_index()


def _stalls(store: Store, settings: Any, day: dt.date) -> pd.DataFrame:
    from accountlens.analysis.handoffs import stalled_per_account

    return stalled_per_account(store, settings, day)


def _trait_inputs(settings: Any) -> list[str]:
    """Account traits the health factors read (`input = "trait:NAME"`)."""
    return sorted({f.input.removeprefix("trait:") for f in settings.health.factors.values()
                   if f.input.startswith("trait:")})


def _traits(store: Store, end: dt.datetime, base: pd.DataFrame) -> list[dict]:
    """Each account's traits as known before `end`: the CSV import's (recorded as known from
    the start), then every dated `group` call's in order (a later value replaces an earlier)."""
    known: dict[str, dict] = {a: {} for a in base["account_id"]}
    for row in store.rows(_TRAITS_SQL, {"end": end}):
        if row["account_id"] in known:
            known[row["account_id"]].update(_loads(row["traits"]))
    return [known[a] for a in base["account_id"]]


def _loads(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _size_band(employees: pd.Series, edges: list[int]) -> pd.Series:
    import pandas as pd

    labels = ([f"<{edges[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])]
              + [f"{edges[-1]}+"])
    bands = pd.cut(employees.astype(float), [-float("inf"), *edges, float("inf")], right=False,
                   labels=labels)
    return bands.astype("string").fillna("(none)")
