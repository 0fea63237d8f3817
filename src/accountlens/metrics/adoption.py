"""Adoption metrics of SPEC §5: active users and accounts, seats, breadth, depth, stickiness, spread."""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from accountlens.metrics.levels import (
    ACCOUNT_LEVELS,
    SLICES,
    UNIT_KINDS,
    subscriptions_on,
)
from accountlens.metrics.registry import Context, Metric, end_of, ratio, register

GROUP_LEVELS = ("account", "role", "unit", *UNIT_KINDS, *SLICES, "all")
ALL_LEVELS = ("user", *GROUP_LEVELS)
ROLLUP_INPUTS = ("daily_activity (rollup of track/page/screen events)",)


def recent_users(ctx: Context) -> ir.Table:
    """(entity, user_id, events) of the last 30 days' human activity: one table that MAU,
    depth, stickiness, seat utilization, users per account and contract alignment share (a
    query computes it once) instead of each counting distinct users itself."""
    rows = ctx.recent(30)
    return rows.group_by("entity", "user_id").aggregate(events=rows.events.sum())


def _active_users(days: int, column: str):
    def build(ctx: Context) -> ir.Table:
        if days == 30:
            users = recent_users(ctx)
            return ctx.complete(users.group_by("entity").aggregate(**{column: users.count()}),
                                **{column: 0})
        rows = ctx.recent(days)
        return ctx.complete(rows.group_by("entity").aggregate(**{column: rows.user_id.nunique()}),
                            **{column: 0})
    return build


for _days, _name, _label in ((1, "dau", "day"), (7, "wau", "7 days"), (30, "mau", "30 days")):
    register(Metric(
        name=_name, family="adoption", levels=GROUP_LEVELS,
        definition=(f"Active users in the window (as_of − {_days} days, as_of]: distinct users with "
                    f"≥1 track/page/screen event attributed to the entity in the last {_label}. "
                    "A user active in two accounts counts in each; at role/unit level a user "
                    "counts under every role/unit they acted in."),
        inputs=ROLLUP_INPUTS, build=_active_users(_days, _name),
    ))


def mau_per_account(ctx: Context) -> ir.Table:
    """(account_id, mau) over the accounts of the request."""
    if ctx.level == "account":  # the entity is the account: from the shared table
        users = recent_users(ctx)
        return users.group_by(account_id=users.entity).aggregate(mau=users.count())
    rows = ctx.recent(30)
    rows = rows.filter(rows.account_id.notnull())
    return rows.group_by("account_id").aggregate(mau=rows.user_id.nunique())


def _build_active_accounts(ctx: Context) -> ir.Table:
    a = ctx.account_days()
    a = a.filter(ctx.window(a, 30))
    # Each account's last active day of the 30, then accounts counted per window.
    last = a.group_by("entity", "account_id").aggregate(day=a.day.max())
    columns = {f"active_{days}d": last.count(where=last.day > ctx.since(days)) for days in (1, 7, 30)}
    return ctx.complete(last.group_by("entity").aggregate(**columns), **{k: 0 for k in columns})


register(Metric(
    name="active_accounts", family="adoption", levels=ACCOUNT_LEVELS,
    definition=("Accounts with ≥1 active event (human or automation) in the last 1, 7 and 30 "
                "days (columns active_1d, active_7d, active_30d). At account level 1 or 0."),
    inputs=("account_days (active events per account and day)",), build=_build_active_accounts,
))


def _build_seat_utilization(ctx: Context) -> ir.Table:
    live = subscriptions_on(ctx.as_of)
    seats = live.group_by("account_id").aggregate(seats=live.seats.sum())
    per = ctx.per_account(ctx.accounts.select("account_id"))
    per = per.left_join(mau_per_account(ctx), "account_id").select(~ibis.selectors.endswith("_right"))
    per = per.left_join(seats, "account_id").select(~ibis.selectors.endswith("_right"))
    per = per.mutate(mau=per.mau.fill_null(0), seats=per.seats.fill_null(0))
    grouped = per.group_by("entity").aggregate(
        mau=per.mau.sum(), seats=per.seats.sum(),
        seated_mau=per.mau.sum(where=per.seats > 0),
    )
    return grouped.select("entity", "mau", "seats",
                          seat_utilization=ratio(grouped.seated_mau, grouped.seats))


register(Metric(
    name="seat_utilization", family="adoption", levels=ACCOUNT_LEVELS,
    definition=("MAU of the account ÷ seats of its subscriptions active on as_of (start and end "
                "dates inclusive). Empty (null) when the account has no seats. For a slice: MAU "
                "of its accounts that have seats ÷ their seats."),
    inputs=(*ROLLUP_INPUTS, "subscriptions.seats", "subscriptions.start_date",
            "subscriptions.end_date"),
    build=_build_seat_utilization,
))


def _build_breadth(ctx: Context) -> ir.Table:
    a = ctx.recent(30, human=False)
    used = a.group_by("entity").aggregate(event_names=a.name.nunique())
    g = ctx.activity_all
    g = g.filter(ctx.window(g, 30) & g.account_id.notnull())
    total = g.aggregate(all_event_names=g.name.nunique())
    values = used.cross_join(total)
    values = values.select("entity", "event_names", "all_event_names",
                           breadth=ratio(values.event_names, values.all_event_names))
    return ctx.complete(values, event_names=0)


register(Metric(
    name="breadth", family="adoption", levels=ALL_LEVELS,
    definition=("Distinct active event names used by the entity in the last 30 days ÷ distinct "
                "active event names used by all accounts in those 30 days."),
    inputs=ROLLUP_INPUTS, build=_build_breadth,
))


def _build_depth(ctx: Context) -> ir.Table:
    users = recent_users(ctx)
    values = users.group_by("entity").aggregate(active_events=users.events.sum(),
                                                active_users=users.count())
    values = ctx.complete(values, active_events=0, active_users=0)
    return values.mutate(depth=ratio(values.active_events, values.active_users))


register(Metric(
    name="depth", family="adoption", levels=ALL_LEVELS,
    definition="Active events per active user in the last 30 days (human events only).",
    inputs=ROLLUP_INPUTS, build=_build_depth,
))


def _mean_dau(ctx: Context) -> ir.Table:
    """(entity, mean_dau) over the 30 days ending on as_of: the DAUs of the days add up to the
    distinct (entity, user, day) triples. An account's come from `account_days` (its human users
    per day, one row per account and day); other levels count the triples (a user in two
    accounts of one industry is one user of it)."""
    if ctx.level == "account" and "user" not in ctx.filters:
        days = ctx.account_days()
        days = days.filter(ctx.window(days, 30))
        return days.group_by("entity").aggregate(mean_dau=days.users.sum().cast("float64") / 30)
    rows = ctx.recent(30)
    days = rows.select("entity", "user_id", "day").distinct()
    return days.group_by("entity").aggregate(mean_dau=days.count().cast("float64") / 30)


def _build_stickiness(ctx: Context) -> ir.Table:
    mean_dau = _mean_dau(ctx)
    users = recent_users(ctx)
    mau = users.group_by("entity").aggregate(mau=users.count())
    values = mau.inner_join(mean_dau, "entity").select(~ibis.selectors.endswith("_right"))
    values = ctx.complete(values, mau=0, mean_dau=0.0)
    return values.select("entity", "mean_dau", "mau",
                         stickiness=ratio(values.mean_dau, values.mau))


register(Metric(
    name="stickiness", family="adoption", levels=ALL_LEVELS,
    definition=("Mean DAU over the 30 days ending on as_of ÷ MAU. At user level: active days "
                "in the 30 days ÷ 30."),
    inputs=(*ROLLUP_INPUTS, "account_days (account level: human users per account and day)"),
    build=_build_stickiness,
))


def members_on(as_of: dt.date) -> ir.Table:
    """(account_id, user_id) of memberships valid at the end of `as_of`."""
    from accountlens.store.catalog import table

    m = table("memberships")
    end = end_of(as_of)
    live = m.filter(m.valid_from < end, m.valid_to.isnull() | (m.valid_to >= end))
    return live.select("account_id", "user_id").distinct()


def _build_users_per_account(ctx: Context) -> ir.Table:
    members = members_on(ctx.as_of)
    members = members.group_by("account_id").aggregate(members=members.user_id.nunique())
    per = ctx.per_account(ctx.accounts.select("account_id"))
    per = per.left_join(members, "account_id").select(~ibis.selectors.endswith("_right"))
    per = per.left_join(mau_per_account(ctx), "account_id").select(~ibis.selectors.endswith("_right"))
    grouped = per.group_by("entity").aggregate(
        accounts=per.account_id.nunique(), members=per.members.fill_null(0).sum(),
        active_users=per.mau.fill_null(0).sum())
    return grouped.mutate(users_per_account=ratio(grouped.active_users, grouped.accounts),
                          members_per_account=ratio(grouped.members, grouped.accounts))


register(Metric(
    name="users_per_account", family="adoption", levels=ACCOUNT_LEVELS,
    definition=("Users of each account: members (memberships valid at the end of as_of) and "
                "active users (MAU). For a slice: totals over its accounts and per-account means "
                "(users_per_account = active users per account)."),
    inputs=(*ROLLUP_INPUTS, "memberships"), build=_build_users_per_account,
))


def _build_value_contribution(ctx: Context) -> ir.Table:
    rows = ctx.recent(30)
    rows = rows.filter(rows.account_id.notnull() & rows.name.isin(ctx.settings.value_events))
    values = rows.group_by("account_id", "entity").aggregate(value_events=rows.events.sum())
    total = values.value_events.sum().over(group_by=values.account_id)
    return values.mutate(share=ratio(values.value_events, total))


register(Metric(
    name="value_contribution", family="adoption", levels=("user", "role", "unit", *UNIT_KINDS),
    definition=("Role and unit contribution: each user's, role's or unit's value events "
                "(metrics.value_events) in the last 30 days and their share of the account's "
                "value events."),
    inputs=(*ROLLUP_INPUTS, "metrics.value_events"), build=_build_value_contribution,
))
