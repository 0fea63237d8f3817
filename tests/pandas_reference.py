"""Independent pandas versions of every registered metric, written from docs/metrics.md and
computed from the raw tables (events, accounts, org units, users, memberships, subscriptions,
outcomes) — never from the daily rollup. tests/test_metrics_contract.py compares the engine with
them. A reference returns a frame shaped like the metric's (level column first); rows the
engine adds for entities with nothing to report must be all zero / empty.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from inspect import signature

import numpy as np
import pandas as pd

from accountlens.config import MetricsSection

NONE = "(none)"
DAY = pd.Timedelta(days=1)
UNIT_KINDS = ("team", "department", "business_unit")
ACCOUNT_SLICES = ("industry", "region")  # slices with a pandas version; the others only run
# Compared at account, one slice and all: the slices share one code path in the engine, and every
# metric call costs a query compilation, so the contract stays fast.
ACCOUNT_LEVELS = ("account", "industry")


@dataclass
class Raw:
    """The raw tables of a workspace, as of one day."""

    as_of: dt.date
    settings: MetricsSection
    events: pd.DataFrame
    accounts: pd.DataFrame
    units: pd.DataFrame
    users: pd.DataFrame
    memberships: pd.DataFrame
    subscriptions: pd.DataFrame
    outcomes: pd.DataFrame

    @classmethod
    def load(cls, ws, as_of: dt.date) -> Raw:
        def read(table: str) -> pd.DataFrame:
            frame = ws.store.df(f"SELECT * FROM {table}")
            for column in frame.columns[frame.dtypes.map(pd.api.types.is_datetime64_any_dtype)]:
                frame[column] = pd.to_datetime(frame[column], utc=True)
            return frame

        events = ws.store.df("SELECT * EXCLUDE (traits, context) FROM events")
        events["timestamp"] = pd.to_datetime(events.timestamp, utc=True)
        events["day"] = events.timestamp.dt.date
        subs = read("subscriptions")
        for column in ("start_date", "end_date"):
            subs[column] = pd.to_datetime(subs[column]).dt.date
        outcomes = read("outcomes")
        outcomes["date"] = pd.to_datetime(outcomes.date).dt.date
        return cls(as_of, ws.config.metrics, events, read("accounts"), read("org_units"),
                   read("users"), read("memberships"), subs, outcomes)

    @property
    def end(self) -> pd.Timestamp:
        """The first moment after as_of."""
        return pd.Timestamp(self.as_of, tz="UTC") + DAY

    def active(self) -> pd.DataFrame:
        ev = self.events
        return ev[ev.type.isin(["track", "page", "screen"]) & (ev.day <= self.as_of)]

    def window(self, ev: pd.DataFrame, days: int) -> pd.DataFrame:
        return ev[ev.day > self.as_of - dt.timedelta(days=days)]

    def live_subscriptions(self, day: dt.date) -> pd.DataFrame:
        s = self.subscriptions
        return s[(s.start_date <= day) & (s.end_date.isna() | (s.end_date > day))]  # [start, end)

    # -- accounts known on as_of and their slice values ----------------------------------------
    def known_accounts(self) -> pd.DataFrame:
        a, s = self.accounts.set_index("account_id"), self.subscriptions
        created = pd.to_datetime(a.created_at, utc=True).dt.date
        first_contract = s[s.start_date <= self.as_of].groupby("account_id").start_date.min()
        ev = self.active()
        first_event = ev[ev.account_id.notna()].groupby("account_id").day.min()
        since = pd.concat([created, first_contract, first_event], axis=1).min(axis=1)
        ids = since[since <= self.as_of].index
        out = pd.DataFrame({"account_id": ids})
        for column in ACCOUNT_SLICES:
            out[column] = out.account_id.map(a[column]).replace("", np.nan).fillna(NONE)
        out["all"] = "all"
        return out

    def account_groups(self, level: str) -> pd.Series:
        """account_id → its group at an account level."""
        known = self.known_accounts().set_index("account_id")
        return pd.Series(known.index, index=known.index) if level == "account" else known[level]

    # -- the entity of an event row at a level --------------------------------------------------
    def ancestor(self, kind: str) -> dict:
        units = self.units.set_index("unit_id")
        out = {}
        for unit in units.index:
            node = unit
            while node in units.index and units.kind[node] != kind:
                node = units.parent_unit_id[node]
            out[unit] = node if node in units.index else None
        return out

    def with_entity(self, ev: pd.DataFrame, level: str) -> pd.DataFrame:
        """`ev` with an `entity` column; rows of no entity dropped."""
        if level == "user":
            ev = ev[ev.user_id.notna()]
            return ev.assign(entity=ev.user_id)
        if level in ("role", "unit"):
            return ev.assign(entity=ev[level if level == "role" else "unit_id"].fillna(NONE))
        if level in UNIT_KINDS:
            return ev.assign(entity=ev.unit_id.map(self.ancestor(level)).fillna(NONE))
        if level == "all":  # the whole workspace, unattributed activity included
            return ev.assign(entity="all")
        groups = self.account_groups(level)
        ev = ev.assign(entity=ev.account_id.map(groups))
        return ev[ev.entity.notna()]

    def accounts_at(self, level: str) -> pd.DataFrame:
        """(account_id, entity) of the accounts known on as_of."""
        groups = self.account_groups(level)
        return pd.DataFrame({"account_id": groups.index, "entity": groups.values})


def human(ev: pd.DataFrame) -> pd.DataFrame:
    return ev[(ev.actor_kind == "human") & ev.user_id.notna()]


def ratio(num, den):
    num, den = pd.Series(num, dtype=float), pd.Series(den, dtype=float)
    return (num / den).where(den > 0)


def finish(frame: pd.DataFrame, level: str) -> pd.DataFrame:
    return frame.rename(columns={"entity": "scope" if level == "all" else level}).reset_index(drop=True)


@dataclass(frozen=True)
class Reference:
    """A metric's pandas version, the levels it is compared at and the params it is run with."""

    compute: Callable[..., pd.DataFrame]  # (raw, level, **params) -> frame
    levels: tuple[str, ...]
    params: tuple[dict, ...] = ({},)


REFERENCES: dict[str, Reference] = {}
USER_LEVELS = ("user", "role", "unit", *UNIT_KINDS)


def reference(*names: str, levels: tuple[str, ...], params: tuple[dict, ...] = ({},)):
    """Register the pandas version of metrics `names` (called with `name=` when several)."""
    def wrap(fn):
        for name in names:
            compute = partial(fn, name=name) if "name" in signature(fn).parameters else fn
            REFERENCES[name] = Reference(compute, levels, params)
        return fn
    return wrap


# ---- adoption ---------------------------------------------------------------------------------
@reference("dau", "wau", levels=("account", "all"))
@reference("mau", levels=("account", "role", "unit", "team", "department", "region", "all"))
def active_users(raw: Raw, level: str, name: str) -> pd.DataFrame:
    days = {"dau": 1, "wau": 7, "mau": 30}[name]
    rows = raw.with_entity(raw.window(human(raw.active()), days), level)
    return finish(rows.groupby("entity").user_id.nunique().rename(name).reset_index(), level)


@reference("active_accounts", levels=ACCOUNT_LEVELS)
def active_accounts(raw: Raw, level: str) -> pd.DataFrame:
    ev = raw.active()
    ev = raw.with_entity(ev[ev.account_id.notna()], level)
    out = pd.DataFrame({f"active_{d}d": raw.window(ev, d).groupby("entity").account_id.nunique()
                        for d in (1, 7, 30)}).fillna(0)
    return finish(out.rename_axis("entity").reset_index(), level)


def account_mau(raw: Raw) -> pd.Series:
    rows = raw.window(human(raw.active()), 30)
    return rows[rows.account_id.notna()].groupby("account_id").user_id.nunique()


@reference("seat_utilization", levels=(*ACCOUNT_LEVELS, "all"))
def seat_utilization(raw: Raw, level: str) -> pd.DataFrame:
    per = raw.accounts_at(level)
    per["mau"] = per.account_id.map(account_mau(raw)).fillna(0)
    seats = raw.live_subscriptions(raw.as_of).groupby("account_id").seats.sum()
    per["seats"] = per.account_id.map(seats).fillna(0)
    per["seated_mau"] = per.mau.where(per.seats > 0, 0)
    g = per.groupby("entity")[["mau", "seats", "seated_mau"]].sum().reset_index()
    g["seat_utilization"] = ratio(g.seated_mau, g.seats)
    return finish(g.drop(columns="seated_mau"), level)


@reference("breadth", levels=("user", "account", "unit", "all"))
def breadth(raw: Raw, level: str) -> pd.DataFrame:
    recent = raw.window(raw.active(), 30)
    every = recent[recent.account_id.notna()].name.nunique()
    g = raw.with_entity(recent, level).groupby("entity").name.nunique().rename("event_names")
    g = g.reset_index().assign(all_event_names=every)
    g["breadth"] = ratio(g.event_names, g.all_event_names)
    return finish(g, level)


@reference("depth", levels=("user", "account", "department", "industry"))
def depth(raw: Raw, level: str) -> pd.DataFrame:
    rows = raw.with_entity(raw.window(human(raw.active()), 30), level).groupby("entity")
    g = pd.DataFrame({"active_events": rows.size(), "active_users": rows.user_id.nunique()})
    g["depth"] = g.active_events / g.active_users
    return finish(g.reset_index(), level)


@reference("stickiness", levels=("user", "account", "team", "all"))
def stickiness(raw: Raw, level: str) -> pd.DataFrame:
    rows = raw.with_entity(raw.window(human(raw.active()), 30), level)
    daily = rows.groupby(["entity", "day"]).user_id.nunique().groupby("entity").sum() / 30
    g = pd.DataFrame({"mean_dau": daily, "mau": rows.groupby("entity").user_id.nunique()})
    g["stickiness"] = g.mean_dau / g.mau
    return finish(g.reset_index(), level)


def members_at_end(raw: Raw) -> pd.DataFrame:
    m = raw.memberships
    return m[(m.valid_from < raw.end) & (m.valid_to.isna() | (m.valid_to >= raw.end))]


@reference("users_per_account", levels=ACCOUNT_LEVELS)
def users_per_account(raw: Raw, level: str) -> pd.DataFrame:
    per = raw.accounts_at(level)
    per["members"] = per.account_id.map(members_at_end(raw).groupby("account_id").user_id.nunique())
    per["active_users"] = per.account_id.map(account_mau(raw))
    g = per.fillna(0).groupby("entity").agg(accounts=("account_id", "nunique"),
                                             members=("members", "sum"),
                                             active_users=("active_users", "sum")).reset_index()
    g["users_per_account"] = g.active_users / g.accounts
    g["members_per_account"] = g.members / g.accounts
    return finish(g, level)


@reference("value_contribution", levels=("user", "role", "unit", "business_unit"))
def value_contribution(raw: Raw, level: str) -> pd.DataFrame:
    rows = raw.window(human(raw.active()), 30)
    rows = rows[rows.account_id.notna() & rows.name.isin(raw.settings.value_events)]
    g = raw.with_entity(rows, level).groupby(["account_id", "entity"]).size()
    g = g.rename("value_events").reset_index()
    g["share"] = g.value_events / g.groupby("account_id").value_events.transform("sum")
    return finish(g, level)


# ---- acquisition, activation, time to value, velocity -----------------------------------------
def account_acquired(raw: Raw) -> pd.Series:
    """account_id → acquisition moment: earliest of first subscription start and first event."""
    s = raw.subscriptions[raw.subscriptions.start_date <= raw.as_of]
    first_sub = pd.to_datetime(s.groupby("account_id").start_date.min()).dt.tz_localize("UTC")
    ev = raw.active()
    first_event = ev[ev.account_id.notna()].groupby("account_id").timestamp.min()
    both = pd.concat([first_sub, first_event], axis=1).min(axis=1)
    return both.reindex(raw.known_accounts().account_id).dropna()


def first_value_by_account(raw: Raw) -> pd.DataFrame:
    """(account_id, user_id, first_value_at) of each user's first value event in each account."""
    rows = human(raw.active())
    rows = rows[rows.account_id.notna() & rows.name.isin(raw.settings.value_events)]
    return rows.groupby(["account_id", "user_id"]).timestamp.min().rename("first_value_at").reset_index()


def account_activation(raw: Raw, within_days: int | None) -> pd.DataFrame:
    """account_id → acquired_at, value_users, activated_at (the min_users-th value user)."""
    acquired = account_acquired(raw)
    users = first_value_by_account(raw)
    users = users[users.account_id.isin(acquired.index)]
    if within_days is not None:
        limit = users.account_id.map(acquired) + pd.Timedelta(days=within_days)
        users = users[users.first_value_at <= limit]
    nth = raw.settings.min_users

    def activated_at(times: pd.Series):
        times = times.sort_values()
        return times.iloc[nth - 1] if len(times) >= nth else pd.NaT

    out = pd.DataFrame({"acquired_at": acquired})
    grouped = users.groupby("account_id").first_value_at
    out["value_users"] = grouped.nunique().reindex(out.index).fillna(0)
    out["activated_at"] = grouped.apply(activated_at).reindex(out.index)
    return out.rename_axis("account_id").reset_index()


def user_acquisition(raw: Raw) -> pd.DataFrame:
    rows = human(raw.active())
    value = rows[rows.name.isin(raw.settings.value_events)]
    return pd.DataFrame({"acquired_at": rows.groupby("user_id").timestamp.min(),
                         "first_value_at": value.groupby("user_id").timestamp.min()})


def days(start: pd.Series, end: pd.Series) -> pd.Series:
    return (end - start).dt.total_seconds() / 86400


def slice_of(raw: Raw, per: pd.DataFrame, level: str) -> pd.DataFrame:
    return per.merge(raw.accounts_at(level), on="account_id")


ENTITY_LEVELS = ("user", "account", "industry")


@reference("activation", levels=ENTITY_LEVELS)
def activation(raw: Raw, level: str) -> pd.DataFrame:
    s = raw.settings
    if level == "user":
        u = user_acquisition(raw)
        ok = u.first_value_at <= u.acquired_at + pd.Timedelta(days=s.activation_days)
        return finish(pd.DataFrame({
            "entity": u.index, "acquired_on": u.acquired_at.dt.date,
            "activated_on": u.first_value_at.dt.date.where(ok), "activated": ok}), level)
    per = slice_of(raw, account_activation(raw, s.account_activation_days), level)
    if level == "account":
        return finish(pd.DataFrame({
            "entity": per.entity, "acquired_on": per.acquired_at.dt.date,
            "value_users": per.value_users, "activated_on": per.activated_at.dt.date,
            "activated": per.activated_at.notna()}), level)
    g = per.assign(on=per.activated_at.notna()).groupby("entity").agg(
        accounts=("account_id", "nunique"), activated_accounts=("on", "sum")).reset_index()
    g["activation_rate"] = g.activated_accounts / g.accounts
    return finish(g, level)


@reference("time_to_value", levels=ENTITY_LEVELS)
def time_to_value(raw: Raw, level: str) -> pd.DataFrame:
    if level == "user":
        u = user_acquisition(raw)
        return finish(pd.DataFrame({"entity": u.index, "acquired_on": u.acquired_at.dt.date,
                                    "time_to_value_days": days(u.acquired_at, u.first_value_at)}),
                      level)
    per = slice_of(raw, account_activation(raw, None), level)
    per["days"] = days(per.acquired_at, per.activated_at)
    if level == "account":
        return finish(pd.DataFrame({"entity": per.entity, "acquired_on": per.acquired_at.dt.date,
                                    "time_to_value_days": per.days}), level)
    g = per.groupby("entity").agg(accounts=("account_id", "nunique"), reached_value=("days", "count"),
                                  median_days=("days", "median"), mean_days=("days", "mean"))
    return finish(g.reset_index(), level)


@reference("adoption_velocity", levels=ACCOUNT_LEVELS)
def adoption_velocity(raw: Raw, level: str) -> pd.DataFrame:
    weeks = raw.settings.velocity_weeks
    acquired = account_acquired(raw)
    rows = human(raw.active())
    firsts = rows[rows.account_id.isin(acquired.index)].groupby(["account_id", "user_id"])
    firsts = firsts.timestamp.min().reset_index()
    early = firsts[firsts.timestamp < firsts.account_id.map(acquired) + pd.Timedelta(weeks=weeks)]
    per = pd.DataFrame({"account_id": acquired.index})
    per["early_users"] = per.account_id.map(early.groupby("account_id").user_id.nunique()).fillna(0)
    per["velocity"] = per.early_users / weeks
    g = slice_of(raw, per, level).groupby("entity").agg(
        early_users=("early_users", "sum"), adoption_velocity=("velocity", "mean"))
    return finish(g.reset_index(), level)


# ---- contract alignment -----------------------------------------------------------------------
@reference("contract_alignment", levels=ACCOUNT_LEVELS)
def contract_alignment(raw: Raw, level: str) -> pd.DataFrame:
    s = raw.settings
    live = raw.live_subscriptions(raw.as_of).copy()
    live["ent"] = live.entitlements.map(lambda e: json.loads(e) if isinstance(e, str) else {})
    ev = raw.active()
    ev = ev[ev.account_id.notna()]
    recent, mau = raw.window(ev, 30), account_mau(raw)
    rows = []
    for account, subs in live.groupby("account_id"):
        if subs.seats.notna().any():
            rows.append((account, "seats", subs.seats.sum(), mau.get(account, 0)))
        for key, names in s.quota_events.items():
            quotas = [e[key] for e in subs.ent if e.get(key) is not None]
            if quotas:
                used = raw.window(ev, s.quota_window_days)
                used = used[(used.account_id == account) & used.name.isin(names)]
                rows.append((account, key, float(sum(quotas)), len(used)))
        modules = {m for e in subs.ent for m in e.get("modules", [])}
        if modules:
            mine = recent[recent.account_id == account]
            used = set(mine["product"].dropna()) | {
                m for m, names in s.module_events.items() if mine.name.isin(names).any()}
            rows.append((account, "modules", len(modules), len(modules & used)))
    per = pd.DataFrame(rows, columns=["account_id", "entitlement", "entitled", "used"])
    g = slice_of(raw, per, level).groupby(["entity", "entitlement"]).agg(
        accounts=("account_id", "nunique"), entitled=("entitled", "sum"), used=("used", "sum"))
    g = g.reset_index()
    g["alignment"] = ratio(g.used, g.entitled)
    return finish(g, level)


# ---- referrals and the AARRR funnel -----------------------------------------------------------
def invites(raw: Raw, level: str) -> pd.DataFrame:
    """Invite events with `entity`, `internal` and `referred_account` (SPEC §5)."""
    s = raw.settings
    ev = raw.events
    rows = ev[(ev.type == "track") & (ev.name == s.referral_event) & (ev.timestamp < raw.end)
              & (ev.actor_kind == "human")].copy()
    email = rows.properties.map(lambda p: (json.loads(p) if isinstance(p, str) else {})
                                .get(s.referral_email_property))
    rows["email"] = email.str.lower()
    domains = raw.accounts.set_index("account_id").domain.str.lower()
    users = raw.users.dropna(subset=["email"])
    invitee = dict(zip(users.email.str.lower(), users.user_id))
    rows["invitee"] = rows.email.map(invitee)
    rows["domain_match"] = rows.email.str.split("@").str[-1] == rows.account_id.map(domains)
    m = raw.memberships[raw.memberships.valid_from < raw.end]
    pairs = rows[["message_id", "account_id", "invitee", "timestamp"]].merge(
        m[["user_id", "account_id", "valid_from"]], left_on="invitee", right_on="user_id",
        suffixes=("", "_m"))
    member = pairs[pairs.account_id == pairs.account_id_m].message_id
    rows["internal"] = rows.domain_match | rows.message_id.isin(member)
    later = pairs[(pairs.account_id != pairs.account_id_m) & (pairs.valid_from >= pairs.timestamp)]
    later = later[["message_id", "account_id_m"]].drop_duplicates()
    rows = rows.merge(later, on="message_id", how="left")  # one row per referred account
    rows["referred_account"] = rows.account_id_m.where(~rows.internal)
    return raw.with_entity(rows.drop(columns="account_id_m"), level)


@reference("referrals", levels=("user", "account", "role", "region"))
def referrals(raw: Raw, level: str) -> pd.DataFrame:
    rows = invites(raw, level)
    sent = rows.drop_duplicates(["entity", "message_id"])
    g = sent.groupby("entity").agg(invites=("message_id", "nunique"), internal=("internal", "sum"))
    g["external"] = sent.groupby("entity").size() - g.internal
    g["referred_accounts"] = rows.groupby("entity").referred_account.nunique()
    return finish(g.reset_index(), level)


def stage_moments(raw: Raw, stage: str, level: str) -> pd.DataFrame:
    """(group, subject, moment): every moment a subject could reach `stage`."""
    s, account_level = raw.settings, level in ACCOUNT_LEVELS
    one = level in ("user", "account")
    if account_level and stage in ("acquisition", "revenue"):
        if stage == "acquisition":
            at = account_acquired(raw)
        else:
            paid = raw.subscriptions
            paid = paid[(paid.arr > 0) & (paid.start_date <= raw.as_of)]
            at = pd.to_datetime(paid.set_index("account_id").start_date).dt.tz_localize("UTC")
        per = slice_of(raw, pd.DataFrame({"account_id": at.index, "moment": at.array}), level)
        return pd.DataFrame({"group": "all" if one else per.entity, "subject": per.account_id,
                             "moment": per.moment})
    ev = raw.active()
    ev = ev[ev.account_id.notna()] if account_level else human(ev)
    names = {"awareness": s.awareness_events, "activation": s.value_events,
             "referral": [s.referral_event], "revenue": [s.monetization_event]}
    if stage in names:
        ev = ev[ev.name.isin(names[stage])]
    ev = raw.with_entity(ev, level)
    return pd.DataFrame({"group": "all" if one else ev.entity,
                         "subject": ev.account_id if account_level else ev.user_id,
                         "moment": ev.timestamp})


@reference("funnel", levels=("user", "account", "role", "unit", "industry"))
def funnel(raw: Raw, level: str) -> pd.DataFrame:
    s, keys = raw.settings, ["group", "subject"]
    stages = [st for st in s.funnel_stages if st != "awareness" or s.awareness_events]
    rows, previous = [], None
    sent = invites(raw, level).rename(columns={"entity": "group", "user_id": "subject"})
    if level == "user":
        sent["group"] = "all"
    for order, stage in enumerate(stages, start=1):
        moments = stage_moments(raw, stage, level)
        if previous is not None:
            delay = pd.Timedelta(days=s.retention_after_days if stage == "retention" else 0)
            moments = moments.merge(previous.rename(columns={"moment": "prev"}), on=keys)
            moments = moments[moments.moment >= moments.prev + delay]
        reached = moments.groupby(keys).moment.min().reset_index()
        if previous is None:
            groups = sorted(reached.group.unique())
            reached["days"] = np.nan
        else:
            reached = reached.merge(previous.rename(columns={"moment": "prev"}), on=keys)
            reached["days"] = days(reached.prev, reached.moment)
        for group in groups:
            mine = reached[reached.group == group]
            rows.append((group, order, stage, len(mine), mine.days.median()))
            if stage == "referral" and level not in ACCOUNT_LEVELS:
                after = sent.merge(mine, on=keys)
                after = after[after.timestamp >= after.moment]
                for kind, flag in (("internal", True), ("external", False)):
                    n = after[after.internal == flag].subject.nunique()
                    rows.append((group, order, f"referral:{kind}", n, np.nan))
        previous = reached[keys + ["moment"]]
    out = pd.DataFrame(rows, columns=["entity", "stage_order", "stage", "reached",
                                      "median_days_from_previous"])
    main = out[~out.stage.str.contains(":")].set_index(["entity", "stage_order"]).reached
    prior = [main.get((g, o - 1)) for g, o in zip(out.entity, out.stage_order)]
    out.insert(4, "conversion", ratio(out.reached, pd.Series(prior, dtype=float).fillna(0)))
    return out.drop(columns="entity") if level in ("user", "account") else finish(out, level)


# ---- retention cohorts ------------------------------------------------------------------------
def period_start(day: dt.date, period: str) -> dt.date:
    return day.replace(day=1) if period == "month" else day - dt.timedelta(days=day.weekday())


def periods_between(cohort: dt.date, day: dt.date, period: str) -> int:
    if period == "month":
        return (day.year - cohort.year) * 12 + day.month - cohort.month
    return (period_start(day, "week") - cohort).days // 7


@reference("retention", levels=("user", "account"),
           params=({"period": "week"}, {"period": "month"}))
def retention(raw: Raw, level: str, period: str = "week") -> pd.DataFrame:
    ev = raw.active()
    if level == "user":
        rows = human(ev).assign(group="all", subject=human(ev).user_id)
        acquired = rows.groupby(["group", "subject"]).day.min()
    else:
        acquired_at = account_acquired(raw)
        per = slice_of(raw, pd.DataFrame({"account_id": acquired_at.index,
                                          "acquired": acquired_at.dt.date.values}), level)
        per["group"] = "all" if level == "account" else per.entity
        acquired = per.set_index(["group", "account_id"]).acquired.rename_axis(["group", "subject"])
        rows = ev[ev.account_id.notna()].rename(columns={"account_id": "subject"})
        rows = rows.merge(per[["account_id", "group"]].rename(columns={"account_id": "subject"}))
    cohorts = acquired.map(lambda d: period_start(d, period)).rename("cohort").reset_index()
    sizes = cohorts.groupby(["group", "cohort"]).subject.nunique().rename("cohort_size")
    hits = rows.merge(cohorts, on=["group", "subject"])
    hits = hits[hits.day >= hits.set_index(["group", "subject"]).index.map(acquired)]
    hits["period"] = [periods_between(c, d, period) for c, d in zip(hits.cohort, hits.day)]
    out = hits.groupby(["group", "cohort", "period"]).subject.nunique().rename("retained")
    out = out.reset_index().merge(sizes.reset_index(), on=["group", "cohort"])
    out["retention"] = out.retained / out.cohort_size
    out = out.rename(columns={"group": "entity"})[
        ["entity", "cohort", "period", "cohort_size", "retained", "retention"]]
    return out.drop(columns="entity") if level in ("user", "account") else finish(out, level)


# ---- revenue ----------------------------------------------------------------------------------
def arr_on(raw: Raw, day: dt.date) -> pd.Series:
    return raw.live_subscriptions(day).groupby("account_id").arr.apply(lambda a: a.fillna(0).sum())


@reference("arr", levels=ACCOUNT_LEVELS)
def arr(raw: Raw, level: str) -> pd.DataFrame:
    per = raw.accounts_at(level)
    per["arr"] = per.account_id.map(arr_on(raw, raw.as_of)).fillna(0.0)
    g = per.assign(paying=per.arr > 0).groupby("entity").agg(
        paying_accounts=("paying", "sum"), arr=("arr", "sum"))
    return finish(g.reset_index(), level)


def revenue_cohort(raw: Raw, level: str) -> pd.DataFrame:
    start = arr_on(raw, raw.as_of - dt.timedelta(days=raw.settings.revenue_period_days))
    start = start[start > 0]
    per = pd.DataFrame({"account_id": start.index, "start_arr": start.values})
    per["end_arr"] = per.account_id.map(arr_on(raw, raw.as_of)).fillna(0.0)
    return slice_of(raw, per, level)


@reference("nrr", "grr", "logo_retention", levels=ACCOUNT_LEVELS)
def net_gross_logo(raw: Raw, level: str, name: str) -> pd.DataFrame:
    c = revenue_cohort(raw, level)
    c["kept"] = c[["start_arr", "end_arr"]].min(axis=1)
    c["paying"] = c.end_arr > 0
    g = c.groupby("entity").agg(start_arr=("start_arr", "sum"), end_arr=("end_arr", "sum"),
                                retained_arr=("kept", "sum"), start_accounts=("account_id", "nunique"),
                                retained_accounts=("paying", "sum")).reset_index()
    g["nrr"], g["grr"] = g.end_arr / g.start_arr, g.retained_arr / g.start_arr
    g["logo_retention"] = g.retained_accounts / g.start_accounts
    columns = {"nrr": ["start_arr", "end_arr"], "grr": ["start_arr", "retained_arr"],
               "logo_retention": ["start_accounts", "retained_accounts"]}[name]
    return finish(g[["entity", *columns, name]], level)


@reference("arr_movements", levels=ACCOUNT_LEVELS)
def arr_movements(raw: Raw, level: str) -> pd.DataFrame:
    o = raw.outcomes
    since = raw.as_of - dt.timedelta(days=raw.settings.revenue_period_days)
    o = slice_of(raw, o[(o.date > since) & (o.date <= raw.as_of)], level)
    g = o.groupby(["entity", "kind"]).agg(outcomes=("kind", "size"),
                                          arr_delta=("arr_delta", lambda d: d.fillna(0).sum()))
    return finish(g.reset_index(), level)


# ---- the linked model's drill-downs -----------------------------------------------------------
def usage(raw: Raw) -> pd.DataFrame:
    rows = raw.window(human(raw.active()), 30)
    rows = rows[rows.account_id.notna()]
    rows = rows.assign(is_value=rows.name.isin(raw.settings.value_events))
    g = rows.groupby(["account_id", "user_id"]).agg(
        active_days=("day", "nunique"), events=("name", "size"), value_events=("is_value", "sum"),
        first_seen=("timestamp", "min"), last_seen=("timestamp", "max"))
    counts = rows.groupby(["account_id", "user_id", "name"]).size().rename("n").reset_index()
    counts = counts.sort_values(["n", "name"], ascending=[False, True])
    g["top_event"] = counts.groupby(["account_id", "user_id"]).name.first()
    g["events_per_active_day"] = g.events / g.active_days
    g["value_share"] = g.value_events / g.events
    g["usage_type"] = np.select([g.active_days >= 12, g.active_days >= 4],
                                ["power", "regular"], "occasional")
    return g.reset_index()


@reference("account_users", levels=("account",))
def account_users(raw: Raw, level: str) -> pd.DataFrame:
    return usage(raw).rename(columns={"account_id": "account"})


@reference("user_accounts", levels=("user",))
def user_accounts(raw: Raw, level: str) -> pd.DataFrame:
    return usage(raw).rename(columns={"user_id": "user"})
