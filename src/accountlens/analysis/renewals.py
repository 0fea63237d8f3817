"""Upcoming renewals in business terms (docs/renewals.md): each account whose contract comes up
for renewal in the next N days, with the ARR at stake, the renewal probability, the expected
renewal ARR and the ARR at risk, its health, top drivers and champion status; totals per segment.

The renewal date is the `end` of a subscription in force on as_of: the contract's term, known
when it was signed. Everything else (probability, health, champion) is computed as of the day,
point-in-time (analysis/features.py, analysis/predict.py).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis.features import SEGMENTS, AccountFilters, filtered
from accountlens.analysis.health import health_table
from accountlens.analysis.registry import Analysis, register, resolve_as_of
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

_DUE_SQL = """
SELECT account_id, min(end_date) AS renewal_date, sum(coalesce(arr, 0)) AS renewal_arr,
       CAST(sum(coalesce(seats, 0)) AS BIGINT) AS renewal_seats, count(*) AS contracts,
       list(subscription_id ORDER BY end_date, subscription_id) AS subscriptions
FROM subscriptions
WHERE start_date <= $day AND end_date > $day AND end_date <= $until
GROUP BY ALL
"""


class RenewalsRequest(AccountFilters):
    level: Literal["account"] = Field(default="account", description="accounts (the only level)")
    days: int = Field(default=90, ge=1, le=3660, description="renewals due in the next N days")
    view: Literal["accounts", "segments"] = Field(default="accounts", description=(
        "accounts: one row per renewal; segments: totals per segment (--by)"))
    by: Literal["plan", "industry", "region", "size_band", "owner", "grade"] = Field(
        default="plan", description="the segment of the segments view")


def renewal_probabilities(store: Store, settings: Any, as_of: dt.date) -> pd.DataFrame:
    """Per account the renewal probability as of `as_of`: the renewal model's, else one minus
    the churn model's (both fall back to the health score when it predicts better, analysis/
    predict.py); columns account_id, probability, source, drivers; notes in `attrs`."""
    import pandas as pd

    from accountlens.analysis.predict import probabilities

    notes: list[str] = []
    renewal = probabilities(store, settings, "renewal", as_of)
    if len(renewal):
        renewal = renewal.assign(source="renewal: " + renewal["source"].astype(str))
        renewal.attrs["notes"] = list(renewal.attrs.get("notes", []))
        return renewal
    notes += [f"renewal model: {n}" for n in renewal.attrs.get("notes", [])]
    churn = probabilities(store, settings, "churn", as_of)
    notes += [f"churn model: {n}" for n in churn.attrs.get("notes", [])]
    if len(churn):
        churn = churn.assign(probability=1.0 - churn["probability"],
                             source="1 − churn: " + churn["source"].astype(str))
        churn.attrs["notes"] = notes
        return churn
    empty = pd.DataFrame({"account_id": pd.Series(dtype=str),
                          "probability": pd.Series(dtype=float),
                          "source": pd.Series(dtype=str), "drivers": pd.Series(dtype=object)})
    empty.attrs["notes"] = [*notes, "no renewal probability: too few past outcomes to learn "
                                    "from; expected and at-risk ARR are left empty"]
    return empty


def upcoming(store: Store, settings: Any, as_of: dt.date, days: int) -> pd.DataFrame:
    """Every account with a contract ending in (as_of, as_of + days], in business terms."""
    import pandas as pd

    until = as_of + dt.timedelta(days=min(days, (dt.date.max - as_of).days))  # calendar's end
    due = store.df(_DUE_SQL, {"day": as_of, "until": until})
    table = health_table(store, settings, as_of)
    keep = ["account_id", *SEGMENTS, "arr", "seats", "mau", "score", "grade",
            "champion_status", "champion_user_id"]
    rows = due.merge(table[keep], on="account_id", how="left")
    probs = renewal_probabilities(store, settings, as_of)
    rows = rows.merge(probs[["account_id", "probability", "source", "drivers"]],
                      on="account_id", how="left")
    rows["renewal_date"] = pd.to_datetime(rows["renewal_date"]).dt.date
    rows["days_to_renewal"] = [(d - as_of).days for d in rows["renewal_date"]]
    rows["expected_renewal_arr"] = rows["probability"] * rows["renewal_arr"]
    rows["arr_at_risk"] = (1.0 - rows["probability"]) * rows["renewal_arr"]
    rows["top_drivers"] = [_top(d) for d in rows["drivers"]]
    rows = rows.rename(columns={"probability": "renewal_probability",
                                "source": "probability_source", "score": "health_score",
                                "grade": "health_grade", "arr": "total_arr"})
    rows["grade"] = rows["health_grade"]
    rows.attrs["notes"] = list(probs.attrs.get("notes", []))
    return rows


def _top(drivers: Any, n: int = 3) -> list[str]:
    """The strongest drivers as short text: `seat_utilization −0.42` (log-odds)."""
    if not isinstance(drivers, list):
        return []
    return [f"{d['feature']} {d['contribution']:+.2f}" for d in drivers[:n]
            if isinstance(d, dict) and d.get("contribution") is not None]


def _segments(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    import pandas as pd

    frame = rows.assign(segment=rows[by].astype("string").fillna("(none)"))
    total = frame.assign(segment="(all)")
    both = pd.concat([frame, total], ignore_index=True)
    out = both.groupby("segment", sort=False).agg(
        renewals=("account_id", "count"), renewal_arr=("renewal_arr", "sum"),
        expected_renewal_arr=("expected_renewal_arr", lambda s: s.sum(min_count=1)),
        arr_at_risk=("arr_at_risk", lambda s: s.sum(min_count=1)),
        mean_renewal_probability=("renewal_probability", "mean"),
        mean_health_score=("health_score", "mean"),
        poor_health=("health_grade", lambda s: int((s == "poor").sum())),
    ).reset_index()
    out.insert(0, "by", by)
    ordered = out[out["segment"] != "(all)"].sort_values("renewal_arr", ascending=False)
    return pd.concat([ordered, out[out["segment"] == "(all)"]], ignore_index=True)


COLUMNS = ("account_id", "renewal_date", "days_to_renewal", "renewal_arr", "renewal_seats",
           "renewal_probability", "expected_renewal_arr", "arr_at_risk", "probability_source",
           "health_score", "health_grade", "champion_status", "champion_user_id", "top_drivers",
           "drivers", "contracts", "subscriptions", "total_arr", "seats", "mau", *SEGMENTS)


def run(store: Store, settings: Any, request: RenewalsRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    rows = upcoming(store, settings, as_of, request.days)
    notes = rows.attrs.get("notes", [])
    rows = filtered(rows, request)
    if request.view == "segments":
        out = _segments(rows, request.by)
        out.attrs["table_columns"] = list(out.columns)
    else:
        out = rows.sort_values(["renewal_date", "arr_at_risk", "account_id"],
                               ascending=[True, False, True])[list(COLUMNS)]
        out = out.reset_index(drop=True)
        out.attrs["table_columns"] = [
            "account_id", "renewal_date", "renewal_arr", "renewal_probability",
            "expected_renewal_arr", "arr_at_risk", "health_score", "health_grade",
            "champion_status", "top_drivers"]
    out.attrs["notes"] = notes
    return out


register(Analysis(
    name="renewals",
    summary="Contracts up for renewal in the next N days: ARR, renewal probability, expected "
            "renewal ARR, ARR at risk, health, top drivers and champion status; totals per "
            "segment with --view segments.",
    request=RenewalsRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
