"""The pandas baseline of the metrics benchmark: the account metrics table and the account-level
AARRR funnel computed with pandas from DataFrames of the raw workspace tables."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from accountlens.config import MetricsSection
from accountlens.store.base import Store

ACTIVE_TYPES = ("track", "page", "screen")
DAY = pd.Timedelta(days=1)
_EVENT_COLUMNS = "type, name, user_id, account_id, unit_id, role, product, actor_kind, timestamp"


def _frame(table: pa.Table, categorical: bool = False) -> pd.DataFrame:
    if categorical:  # repeated strings as categoricals: what a pandas user does at this size
        table = pa.table({name: column.dictionary_encode() if pa.types.is_string(column.type)
                          else column for name, column in zip(table.column_names, table.columns)})
    return table.to_pandas(date_as_object=False)


def load(store: Store, settings: MetricsSection) -> dict[str, pd.DataFrame]:
    """The raw tables as DataFrames (the invitee e-mail pulled out of the JSON properties)."""
    events = store.arrow(
        f"""SELECT {_EVENT_COLUMNS},
                   CASE WHEN name = ? THEN json_extract_string(properties, ?) END AS invitee_email
            FROM events""",
        [settings.referral_event, "$." + settings.referral_email_property])
    frames = {"events": _frame(events.drop_columns(["invitee_email"]), categorical=True)}
    frames["events"]["invitee_email"] = events.column("invitee_email").to_pandas()
    for name in ("accounts", "users", "memberships", "subscriptions"):
        frames[name] = _frame(store.arrow(f"SELECT * FROM {name}"))
    return frames


def _active(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Active events with an account up to as_of (the latest day with an active event)."""
    ev = tables["events"]
    ev = ev[ev["type"].isin(ACTIVE_TYPES)]
    day = ev["timestamp"].dt.floor("D")
    as_of = day.max()
    act = ev[ev["account_id"].notna()].assign(day=day)
    act = act[act["day"] <= as_of]
    act["human"] = act["actor_kind"].eq("human") & act["user_id"].notna()
    act["in30"] = act["day"] > as_of - 30 * DAY
    return act, as_of


class _ByAccount:
    """`frame` grouped by account; aggregates come back indexed by the account id as text."""

    def __init__(self, frame: pd.DataFrame):
        self.groups = frame.groupby("account_id", observed=True)

    def __getattr__(self, how: str) -> Any:
        def aggregate(column: str | None = None) -> pd.Series:
            out = getattr(self.groups[column] if column else self.groups, how)()
            out.index = out.index.astype(str)
            return out
        return aggregate


def _acquisition(tables: dict[str, pd.DataFrame], act: pd.DataFrame,
                 as_of: pd.Timestamp) -> pd.Series:
    """acquired_at of every account known on as_of (NaT when only created)."""
    subs, accounts = tables["subscriptions"], tables["accounts"]
    started = subs[subs["start_date"] <= as_of.tz_localize(None)]
    first_sub = started.groupby("account_id")["start_date"].min().dt.tz_localize("UTC")
    first_event = _ByAccount(act).min("timestamp")
    created = accounts.loc[accounts["created_at"].dt.floor("D") <= as_of, "account_id"]
    known = pd.Index(created).union(first_sub.index).union(first_event.index)
    both = pd.DataFrame({"sub": first_sub.astype("datetime64[us, UTC]"),
                         "event": first_event}).reindex(known)
    return both.min(axis=1).rename("acquired_at").rename_axis("account_id")


def _live_subscriptions(subs: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    day = day.tz_localize(None)
    return subs[(subs["start_date"] <= day) & (subs["end_date"].isna() | (subs["end_date"] >= day))]


def _value_users(act: pd.DataFrame, acquired: pd.Series,
                 settings: MetricsSection) -> pd.DataFrame:
    human = act[act["human"]]
    firsts = human.groupby(["account_id", "user_id"], observed=True)["timestamp"].agg(
        first_at="min").reset_index()
    values = human[human["name"].isin(settings.value_events)]
    firsts = firsts.merge(values.groupby(["account_id", "user_id"], observed=True)["timestamp"]
                          .min().rename("first_value_at").reset_index(), how="left")
    firsts[["account_id", "user_id"]] = firsts[["account_id", "user_id"]].astype(str)
    return firsts.merge(acquired.reset_index(), on="account_id")


def _rank(frame: pd.DataFrame) -> pd.Series:
    ordered = frame.sort_values(["account_id", "first_value_at", "user_id"])
    return ordered.groupby("account_id").cumcount().reindex(frame.index) + 1


def _activation(users: pd.DataFrame, settings: MetricsSection) -> pd.DataFrame:
    valued = users[users["first_value_at"].notna()].copy()
    valued["rank_all"] = _rank(valued)
    within = valued[valued["first_value_at"]
                    < valued["acquired_at"] + settings.account_activation_days * DAY].copy()
    within["rank"] = _rank(within)
    nth = settings.min_users
    out = pd.DataFrame({
        "value_users": within.groupby("account_id").size(),
        "activated_at": within[within["rank"] == nth].set_index("account_id")["first_value_at"],
    })
    reached = valued[valued["rank_all"] == nth].set_index("account_id")["first_value_at"]
    return out.join(reached.rename("value_at"), how="outer")


def _referrals(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp,
               settings: MetricsSection) -> pd.DataFrame:
    ev, members = tables["events"], tables["memberships"]
    end = as_of + DAY
    inv = ev[ev["type"].eq("track") & ev["name"].eq(settings.referral_event)
             & ev["actor_kind"].eq("human") & ev["account_id"].notna() & (ev["timestamp"] < end)]
    inv = inv[["account_id", "timestamp", "invitee_email"]].reset_index(names="invite")
    inv["account_id"] = inv["account_id"].astype(str)
    inv["email"] = inv.pop("invitee_email").astype("string").str.lower()
    domains = tables["accounts"].assign(domain=lambda a: a["domain"].str.lower())
    inv = inv.merge(domains[["account_id", "domain"]], on="account_id", how="left")
    users = tables["users"].assign(email=lambda u: u["email"].astype("string").str.lower())
    users = users[users["email"].notna()]  # pandas would match a missing e-mail to missing ones
    inv = inv.merge(users[["email", "user_id"]].rename(columns={"user_id": "invitee_id"}),
                    on="email", how="left")
    live = members[members["valid_from"] < end]
    same = live[["user_id", "account_id"]].drop_duplicates().rename(
        columns={"user_id": "invitee_id"}).assign(member=True)
    inv = inv.merge(same, on=["invitee_id", "account_id"], how="left")
    inv["internal"] = (inv["email"].str.split("@").str[1] == inv["domain"]).fillna(False).astype(
        bool) | inv["member"].fillna(False).astype(bool)
    later = live.rename(columns={"user_id": "invitee_id", "account_id": "r_account"})
    referred = inv[~inv["internal"]].merge(later[["invitee_id", "r_account", "valid_from"]],
                                           on="invitee_id")
    referred = referred[(referred["r_account"] != referred["account_id"])
                        & (referred["valid_from"] >= referred["timestamp"])]
    per = inv.groupby("account_id")
    return pd.DataFrame({
        "invites": per["invite"].nunique(),
        "internal": inv[inv["internal"]].groupby("account_id")["invite"].nunique(),
        "external": inv[~inv["internal"]].groupby("account_id")["invite"].nunique(),
        "referred_accounts": referred.groupby("account_id")["r_account"].nunique(),
    })


def _revenue(subs: pd.DataFrame, as_of: pd.Timestamp, settings: MetricsSection) -> pd.DataFrame:
    live = _live_subscriptions(subs, as_of)
    out = pd.DataFrame({"seats": live.groupby("account_id")["seats"].sum(),
                        "arr": live["arr"].fillna(0).groupby(live["account_id"]).sum()})
    start = _live_subscriptions(subs, as_of - settings.revenue_period_days * DAY)
    start = start["arr"].fillna(0).groupby(start["account_id"]).sum()
    return out.join(start[start > 0].rename("start_arr"), how="outer")


def account_table(tables: dict[str, pd.DataFrame], settings: MetricsSection) -> pd.DataFrame:
    """One row per account known on as_of with the columns of accountlens's account table."""
    act, as_of = _active(tables)
    human, recent = act[act["human"]], act[act["in30"]]
    human30 = human[human["in30"]]
    acquired = _acquisition(tables, act, as_of)
    users = _value_users(act, acquired, settings)
    t = pd.DataFrame(index=acquired.index)
    for column, rows in (("dau", human[human["day"] == as_of]),
                         ("wau", human[human["day"] > as_of - 7 * DAY]), ("mau", human30)):
        t[column] = _ByAccount(rows).nunique("user_id")
    for column, days in (("active_1d", 1), ("active_7d", 7), ("active_30d", 30)):
        t[column] = (_ByAccount(act[act["day"] > as_of - days * DAY]).size() > 0).astype(int)
    t["event_names"] = _ByAccount(recent).nunique("name")
    t["all_event_names"] = recent["name"].nunique()
    t["active_events"] = _ByAccount(human30).size()
    daily = human30.groupby(["account_id", "day"], observed=True)["user_id"].nunique()
    mean_dau = daily.groupby(level="account_id", observed=True).sum() / 30
    t["mean_dau"] = mean_dau.set_axis(mean_dau.index.astype(str))
    members = tables["memberships"]
    live = members[(members["valid_from"] < as_of + DAY)
                   & (members["valid_to"].isna() | (members["valid_to"] >= as_of + DAY))]
    t["members"] = live.groupby("account_id")["user_id"].nunique()
    t = t.join(_revenue(tables["subscriptions"], as_of, settings))
    t = t.join(_activation(users, settings)).join(_referrals(tables, as_of, settings))
    early = users[users["first_at"] < users["acquired_at"] + 7 * settings.velocity_weeks * DAY]
    t["early_users"] = early.groupby("account_id")["user_id"].nunique()
    zero = ["dau", "wau", "mau", "active_1d", "active_7d", "active_30d", "event_names",
            "active_events", "mean_dau", "members", "seats", "arr", "value_users", "early_users",
            "invites", "internal", "external", "referred_accounts"]
    t["all_event_names"] = t["all_event_names"].where(t["event_names"] > 0)
    t[zero] = t[zero].fillna(0)
    t = t.join(acquired)
    mau, seats = t["mau"], t["seats"]
    cohort = t["start_arr"].notna()
    t = t.assign(
        seat_utilization=(mau / seats).where(seats > 0),
        breadth=t["event_names"] / t["all_event_names"],
        active_users=mau, depth=(t["active_events"] / mau).where(mau > 0),
        stickiness=(t["mean_dau"] / mau).where(mau > 0),
        accounts=1, users_per_account=mau.astype(float),
        members_per_account=t["members"].astype(float),
        acquired_on=t["acquired_at"].dt.date, activated_on=t["activated_at"].dt.date,
        activated=t["activated_at"].notna(),
        time_to_value_days=(t["value_at"] - t["acquired_at"]).dt.total_seconds() / 86400,
        adoption_velocity=t["early_users"] / settings.velocity_weeks,
        paying_accounts=(t["arr"] > 0).astype(int),
        end_arr=t["arr"].where(cohort), nrr=t["arr"] / t["start_arr"],
        retained_arr=t[["arr", "start_arr"]].min(axis=1).where(cohort),
        start_accounts=cohort.astype(int).where(cohort),
        retained_accounts=(t["arr"] > 0).astype(int).where(cohort),
    )
    t["grr"] = t["retained_arr"] / t["start_arr"]
    t["logo_retention"] = t["retained_accounts"].astype(float)
    return t.rename_axis("account").sort_index()


# --- funnel -----------------------------------------------------------------------------------
def _reach(previous: pd.Series, candidates: pd.DataFrame, delay: pd.Timedelta) -> pd.DataFrame:
    """(at, prev_at) per account: the first event at or after previous + delay."""
    joined = candidates.join(previous.rename("prev_at"), on="account_id", how="inner")
    joined = joined[joined["at"] >= joined["prev_at"] + delay]
    return joined.groupby("account_id").agg(at=("at", "min"), prev_at=("prev_at", "first"))


def funnel(tables: dict[str, pd.DataFrame], settings: MetricsSection) -> pd.DataFrame:
    """The default AARRR funnel over all accounts, one row per stage."""
    act, as_of = _active(tables)
    # A stage is reached at the first qualifying event at or after the previous stage.
    moments = act[["account_id", "name", "timestamp"]].rename(columns={"timestamp": "at"})
    moments["account_id"] = moments["account_id"].astype(str)
    acquired = _acquisition(tables, act, as_of).dropna()
    subs = tables["subscriptions"]
    paid = subs[(subs["arr"] > 0) & (subs["start_date"] <= as_of.tz_localize(None))]
    paid_at = paid["start_date"].dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    revenue = pd.DataFrame({"account_id": paid["account_id"], "at": paid_at})
    steps = [
        ("activation", moments[moments["name"].isin(settings.value_events)], 0),
        ("retention", moments, settings.retention_after_days),
        ("referral", moments[moments["name"] == settings.referral_event], 0),
        ("revenue", revenue, 0),
    ]
    rows = [("acquisition", len(acquired), None)]
    previous = acquired
    for stage, candidates, delay_days in steps:
        reached = _reach(previous, candidates[["account_id", "at"]], delay_days * DAY)
        days = (reached["at"] - reached["prev_at"]).dt.total_seconds() / 86400
        rows.append((stage, len(reached), days.median() if len(days) else None))
        previous = reached["at"]
    out = pd.DataFrame(rows, columns=["stage", "reached", "median_days_from_previous"])
    prior = out["reached"].shift(1)
    out["conversion"] = (out["reached"] / prior).where(prior > 0)
    out.insert(0, "stage_order", range(1, len(out) + 1))
    return out
