"""Account signals that need no model (docs/signals.md): product-qualified accounts, expansion and
contraction signals per account as of a day, read strictly point-in-time (SPEC §8).

Each signal is a rule over what was known on `as_of`: active events before the end of that day,
the subscriptions in force on it by their dates (half-open `[start, end)`, never the `status`
column), and the account features of analysis/features.py (seats, MAU, plan, ARR). Thresholds
come from `[signals]` (config.SignalsSection).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from accountlens.analysis.features import AccountFilters, account_features, filtered
from accountlens.analysis.registry import (
    Analysis,
    AnalysisError,
    day_end,
    minus_days,
    register,
    resolve_as_of,
    unit_level_sql,
)
from accountlens.metrics.registry import MetricError, metric_request
from accountlens.metrics.registry import run as run_metric
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

# Every signal and its kind, in the order rows list them.
SIGNALS: dict[str, str] = {
    "pqa": "qualification",
    "seat_cap": "expansion",
    "new_unit": "expansion",
    "over_entitlement": "expansion",
    "unused_seats": "contraction",
}
KINDS = ("qualification", "expansion", "contraction")
_ONE_SIGNAL = "(" + "|".join(SIGNALS) + ")"
_SIGNAL_LIST = rf"^\s*{_ONE_SIGNAL}\s*(,\s*{_ONE_SIGNAL}\s*)*$"
# Org unit kinds a new unit is looked for at (walking up from the event's unit).
NEW_UNIT_KINDS = ("team", "department")
MAU_DAYS = 30  # seat_cap compares MAU (SPEC §5) with the seats

ROW_COLUMNS = ("account_id", "signal", "kind", "detail", "value", "threshold", "window_days",
               "active_users", "items", "customer", "plan", "arr", "seats", "mau")
ACCOUNT_COLUMNS = ("account_id", "customer", "plan", "arr", "seats", "mau", "seat_utilization",
                   *SIGNALS, "signals")

_ACTIVITY_SQL = """
-- per account, active events (track, page, screen) of the two windows, before the end of as_of
SELECT account_id,
       count(DISTINCT user_id) FILTER (WHERE actor_kind = 'human' AND timestamp >= $pqa_start)
           AS pqa_users,
       list(DISTINCT name ORDER BY name) FILTER (
           WHERE timestamp >= $pqa_start AND list_contains(CAST($paid AS VARCHAR[]), name))
           AS paid_used,
       count(DISTINCT user_id) FILTER (WHERE actor_kind = 'human' AND timestamp >= $unused_start)
           AS unused_window_users
FROM events
WHERE type IN ('track', 'page', 'screen') AND account_id IS NOT NULL
  AND timestamp >= least($pqa_start, $unused_start) AND timestamp < $end
  AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
GROUP BY ALL
"""

_LEVEL_UNIT_SQL = " UNION ALL ".join(
    f"SELECT unit_id, '{kind}' AS kind, level_unit_id, level_name FROM ({unit_level_sql(kind)})"
    for kind in NEW_UNIT_KINDS)

NEW_UNITS_SQL = f"""
WITH active AS (  -- each (account, org unit of the event): its first active event before the end
    SELECT account_id, unit_id, min(timestamp) AS first_at
    FROM events
    WHERE type IN ('track', 'page', 'screen') AND account_id IS NOT NULL AND unit_id IS NOT NULL
      AND timestamp < $end
      AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
    GROUP BY ALL
),
levelled AS (  -- the team / department each unit belongs to (itself, or up the tree)
    SELECT a.account_id, l.kind, l.level_unit_id AS unit_id, coalesce(l.level_name, l.level_unit_id) AS name,
           a.first_at
    FROM active a JOIN ({_LEVEL_UNIT_SQL}) l USING (unit_id)
),
firsts AS (
    SELECT account_id, kind, unit_id, any_value(name) AS name, min(first_at) AS first_at
    FROM levelled GROUP BY account_id, kind, unit_id
),
established AS (  -- accounts already active before the window: a new account's units are not expansion
    SELECT DISTINCT account_id FROM events
    WHERE type IN ('track', 'page', 'screen') AND account_id IS NOT NULL AND timestamp < $start
      AND (CAST($account AS VARCHAR) IS NULL OR account_id = $account)
)
SELECT f.account_id, f.kind, f.unit_id, f.name, strftime(f.first_at, '%Y-%m-%d') AS first_active_on
FROM firsts f SEMI JOIN established e ON e.account_id = f.account_id
WHERE f.first_at >= $start
ORDER BY f.account_id, f.first_at, f.kind DESC, f.unit_id
"""


class SignalsRequest(AccountFilters):
    level: Literal["account"] = Field(default="account", description="accounts (the only level)")
    view: Literal["signals", "accounts"] = Field(default="signals", description=(
        "signals: one row per (account, signal) that fires; accounts: one row per account with "
        "a true/false column per signal"))
    # The pattern documents the accepted values in the OpenAPI schema; the validator below
    # names what is wrong in words.
    signal: str | None = Field(default=None, pattern=_SIGNAL_LIST, description=(
        "only these signals, comma-separated: " + ", ".join(SIGNALS)))
    kind: Literal[KINDS] | None = Field(  # type: ignore[valid-type]
        default=None, description="only signals of this kind")

    @field_validator("signal", mode="before")  # before the pattern, to name the unknown one
    @classmethod
    def _known_signals(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in SIGNALS]
        if unknown or not names:
            # a PydanticCustomError keeps no Python exception (with its frames) in the error
            raise PydanticCustomError("unknown_signal", "unknown signal {name}; signals are {known}",
                                      {"name": ", ".join(unknown) or repr(value),
                                       "known": ", ".join(SIGNALS)})
        return ",".join(dict.fromkeys(names))

    def wanted(self) -> list[str]:
        """The signals the request asks for (by name and kind)."""
        names = self.signal.split(",") if self.signal else list(SIGNALS)
        return [n for n in SIGNALS if n in names and self.kind in (None, SIGNALS[n])]


# --- the signals (each: the accounts' features in, the rows of the accounts it fires for out) --
def _row(account: dict, signal: str, detail: str, value: float, threshold: float,
         window_days: int | None, active_users: int | None = None,
         items: list[str] | None = None) -> dict[str, Any]:
    return {"account_id": account["account_id"], "signal": signal, "kind": SIGNALS[signal],
            "detail": detail, "value": float(value), "threshold": float(threshold),
            "window_days": window_days, "active_users": active_users, "items": items}


def _count(value: float) -> str:
    """A count or quantity as text: 1,250 (no decimals when whole), else 2 decimals."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def pqa_rows(accounts: list[dict], cfg: Any) -> list[dict]:
    rows = []
    for a in accounts:
        users, paid = a["pqa_users"], a["paid_used"]
        if users >= cfg.pqa_min_active_users and len(paid) >= cfg.pqa_min_paid_features:
            detail = (f"{users} active users, {len(paid)} paid features: {', '.join(paid)} "
                      f"(last {cfg.pqa_window_days} days)")
            rows.append(_row(a, "pqa", detail, users, cfg.pqa_min_active_users,
                             cfg.pqa_window_days, users, list(paid)))
    return rows


def seat_cap_rows(accounts: list[dict], cfg: Any) -> list[dict]:
    rows = []
    for a in accounts:
        seats, mau = a["seats"], a["mau"]
        if seats > 0 and mau / seats >= cfg.seat_cap_utilization:
            detail = (f"{_count(mau)} monthly active users on {_count(seats)} seats "
                      f"({mau / seats:.0%} of seats; cap at {cfg.seat_cap_utilization:.0%})")
            rows.append(_row(a, "seat_cap", detail, mau / seats, cfg.seat_cap_utilization,
                             MAU_DAYS, int(mau)))
    return rows


def new_unit_rows(accounts: list[dict], cfg: Any, units: pd.DataFrame) -> list[dict]:
    by_account: dict[str, list[dict]] = {}
    for unit in units.to_dict(orient="records"):
        by_account.setdefault(unit["account_id"], []).append(unit)
    rows = []
    for a in accounts:
        found = by_account.get(a["account_id"])
        if not found:
            continue
        detail = "; ".join(f"new {u['kind']} {u['name']} (first active {u['first_active_on']})"
                           for u in found)
        rows.append(_row(a, "new_unit", detail, len(found), 1, cfg.new_unit_days,
                         items=[f"{u['kind']}: {u['name']}" for u in found]))
    return rows


def over_entitlement_rows(accounts: list[dict], alignment: pd.DataFrame) -> list[dict]:
    over = alignment[alignment["alignment"] > 1].sort_values(["account_id", "alignment"],
                                                             ascending=[True, False])
    by_account: dict[str, list[dict]] = {}
    for entitlement in over.to_dict(orient="records"):
        by_account.setdefault(entitlement["account_id"], []).append(entitlement)
    rows = []
    for a in accounts:
        found = by_account.get(a["account_id"])
        if not found:
            continue
        detail = "; ".join(f"{e['entitlement']}: {_count(e['used'])} used of "
                           f"{_count(e['entitled'])} ({e['alignment']:.0%})" for e in found)
        rows.append(_row(a, "over_entitlement", detail, max(e["alignment"] for e in found), 1.0,
                         None, items=[e["entitlement"] for e in found]))
    return rows


def unused_seats_rows(accounts: list[dict], cfg: Any) -> list[dict]:
    rows = []
    for a in accounts:
        seats, users = a["seats"], a["unused_window_users"]
        unused = max(seats - users, 0)
        if seats > 0 and unused >= cfg.unused_seat_share * seats:
            detail = (f"{_count(unused)} of {_count(seats)} seats unused: {users} active users "
                      f"in the last {cfg.unused_seat_days} days")
            rows.append(_row(a, "unused_seats", detail, unused, cfg.unused_seat_share * seats,
                             cfg.unused_seat_days, users))
    return rows


# --- running ---------------------------------------------------------------------------------
def signal_rows(store: Store, settings: Any, as_of: dt.date, accounts: pd.DataFrame,
                wanted: list[str], account: str | None = None) -> pd.DataFrame:
    """The signals of `wanted` that fire for `accounts` (feature rows) as of `as_of`: one row
    per (account, signal), ROW_COLUMNS."""
    import pandas as pd

    cfg = settings.signals
    end = day_end(as_of)
    activity = store.df(_ACTIVITY_SQL, {
        "pqa_start": minus_days(end, cfg.pqa_window_days),
        "unused_start": minus_days(end, cfg.unused_seat_days),
        "end": end, "paid": list(cfg.paid_features), "account": account})
    merged = accounts.merge(activity, on="account_id", how="left")
    merged["pqa_users"] = merged["pqa_users"].fillna(0).astype(int)
    merged["unused_window_users"] = merged["unused_window_users"].fillna(0).astype(int)
    merged["paid_used"] = [list(v) if isinstance(v, list | tuple) or hasattr(v, "tolist") else []
                           for v in merged["paid_used"]]
    records = merged.to_dict(orient="records")
    rows: list[dict] = []
    if "pqa" in wanted:
        rows += pqa_rows(records, cfg)
    if "seat_cap" in wanted:
        rows += seat_cap_rows(records, cfg)
    if "new_unit" in wanted:
        units = store.df(NEW_UNITS_SQL, {"start": minus_days(end, cfg.new_unit_days), "end": end,
                                         "account": account})
        rows += new_unit_rows(records, cfg, units)
    if "over_entitlement" in wanted:
        rows += over_entitlement_rows(records, _alignment(store, settings, as_of, account))
    if "unused_seats" in wanted:
        rows += unused_seats_rows(records, cfg)
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS[:9]))
    frame = frame.merge(accounts[["account_id", "customer", "plan", "arr", "seats", "mau"]],
                        on="account_id", how="left")
    frame["active_users"] = frame["active_users"].astype("Int64")
    frame["window_days"] = frame["window_days"].astype("Int64")
    order = {name: i for i, name in enumerate(SIGNALS)}
    frame["_order"] = frame["signal"].map(order)
    frame = frame.sort_values(["arr", "account_id", "_order"], ascending=[False, True, True])
    return frame.drop(columns="_order").reset_index(drop=True)[list(ROW_COLUMNS)]


def _alignment(store: Store, settings: Any, as_of: dt.date, account: str | None) -> pd.DataFrame:
    """contract_alignment rows (account_id, entitlement, entitled, used, alignment)."""
    filters = {"account": [account]} if account else {}
    request = metric_request("contract_alignment", "account", as_of, filters, {})
    try:
        rows = run_metric(store, settings.metrics, settings.analysis, request).frame
    except MetricError as exc:
        raise AnalysisError(f"over_entitlement needs the contract_alignment metric: {exc}") from exc
    return rows[rows["alignment"].notna()]


def run(store: Store, settings: Any, request: SignalsRequest) -> pd.DataFrame:
    as_of = resolve_as_of(store, request.as_of)
    try:
        features = filtered(account_features(store, settings, as_of), request)
    except MetricError as exc:
        raise AnalysisError(f"signals need the account metrics: {exc}") from exc
    features = features.reset_index(drop=True)
    wanted = request.wanted()
    if request.view == "signals":
        frame = signal_rows(store, settings, as_of, features, wanted, request.account)
        frame.attrs["table_columns"] = ["account_id", "signal", "kind", "detail", "arr"]
    else:  # every signal's column, whichever the request names
        rows = signal_rows(store, settings, as_of, features, list(SIGNALS), request.account)
        narrowed = request.signal is not None or request.kind is not None
        frame = _accounts_view(features, rows, wanted if narrowed else None)
        frame.attrs["table_columns"] = list(ACCOUNT_COLUMNS)
    frame.attrs["notes"] = _notes(features, wanted)
    return frame


def _accounts_view(features: pd.DataFrame, rows: pd.DataFrame,
                   wanted: list[str] | None) -> pd.DataFrame:
    """One row per account: a boolean per signal, and how many fired; only the accounts where
    one of `wanted` fires, if given (the request named signals or a kind)."""
    frame = features[["account_id", "customer", "plan", "arr", "seats", "mau",
                      "seat_utilization"]].copy()
    fired = rows.groupby("account_id")["signal"].agg(set)
    for name in SIGNALS:
        frame[name] = [name in fired.get(a, ()) for a in frame["account_id"]]
    frame["signals"] = frame[list(SIGNALS)].sum(axis=1).astype(int)
    if wanted is not None:
        frame = frame[frame[wanted].any(axis=1)]
    frame = frame.sort_values(["signals", "arr", "account_id"], ascending=[False, False, True])
    return frame.reset_index(drop=True)[list(ACCOUNT_COLUMNS)]


def _notes(features: pd.DataFrame, wanted: list[str]) -> list[str]:
    notes = []
    if {"seat_cap", "unused_seats"} & set(wanted):
        unseated = int((features["customer"] & (features["seats"] <= 0)).sum())
        if unseated:
            notes.append(f"{unseated} customer account(s) have no seats in force: no seat_cap or "
                         "unused_seats signal for them")
    return notes


register(Analysis(
    name="signals",
    summary="Product-qualified accounts, expansion signals (seats full, a new team or department, "
            "usage over an entitlement) and contraction signals (unused seats), per account, "
            "point-in-time; no model needed.",
    request=SignalsRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
