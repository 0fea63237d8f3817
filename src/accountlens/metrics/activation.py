"""Acquisition, activation, time-to-value and adoption velocity (SPEC §5), user and account level.

An account acquired before the first tracked event (a customer older than the tracking) has the
start of its life unobserved: the account-level metrics measured from acquisition say so in a note.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from accountlens.metrics.levels import ACCOUNT_LEVELS, SLICES
from accountlens.metrics.registry import Context, Metric, ratio, register
from accountlens.store.catalog import TS

LEVELS = ("user", "account", *SLICES, "all")
DAY_SECONDS = 86400


def days_between(start: ir.TimestampValue, end: ir.TimestampValue) -> ir.FloatingValue:
    return (end.epoch_seconds() - start.epoch_seconds()).cast("float64") / DAY_SECONDS


def user_acquisition(ctx: Context) -> ir.Table:
    """(entity=user_id, acquired_at, first_value_at) from the user's human activity."""
    a = ctx.activity.filter(Context.human(ctx.activity))
    is_value = a.name.isin(ctx.settings.value_events)
    return a.group_by("entity").aggregate(acquired_at=a.first_at.min(),
                                          first_value_at=a.first_at.min(where=is_value))


def account_acquisition(ctx: Context) -> ir.Table:
    """(account_id, acquired_at): earliest of first subscription start and first attributed event."""
    acc = ctx.accounts
    return acc.select("account_id",
                      acquired_at=ibis.least(acc.first_contract.cast(TS), acc.first_event))


def user_firsts_before(ctx: Context, acquired: ir.Table, days: int | None,
                       names: list[str] | None = None, inclusive: bool = True) -> ir.Table:
    """Account levels: `ctx.user_firsts` rows (account, user, event name: first human
    moment) of each acquired account (of `names`, if given) whose first moment is at most
    `days` after its acquisition (less than, unless `inclusive`; any time if None). A user did
    something in an account within the days exactly when their first moment of it there is."""
    rows = ctx.scoped(ctx.user_firsts)
    if names is not None:
        rows = rows.filter(rows.name.isin(names))
    if days is None:
        return rows
    # The deadline once per account (zone-aware time arithmetic is not cheap per row).
    deadline = acquired.select(d_account="account_id",
                               deadline=acquired.acquired_at + ibis.interval(days=days))
    in_time = rows.first_at <= deadline.deadline if inclusive else rows.first_at < deadline.deadline
    return rows.inner_join(deadline, [rows.account_id == deadline.d_account, in_time])


def account_activation(ctx: Context, within_days: int | None) -> ir.Table:
    """(account_id, acquired_at, value_users, activated_at) — activated_at when the
    min_users-th user performed a value event (within `within_days` of acquisition, if given)."""
    acquired = account_acquisition(ctx)
    rows = user_firsts_before(ctx, acquired, within_days, ctx.settings.value_events)
    firsts = rows.group_by("account_id", "user_id").aggregate(first_value_at=rows.first_at.min())
    users = firsts.mutate(rank=ibis.row_number().over(
        group_by=firsts.account_id, order_by=[firsts.first_value_at, firsts.user_id]) + 1)
    counted = users.group_by("account_id").aggregate(
        value_users=users.user_id.nunique(),
        activated_at=users.first_value_at.max(where=users.rank == ctx.settings.min_users),
    )
    out = acquired.left_join(counted, "account_id").select(~ibis.selectors.endswith("_right"))
    return out.mutate(value_users=out.value_users.fill_null(0))


def acquisition_notes(ctx: Context) -> ir.Table:
    """`note` rows: how many of the request's accounts were acquired before the first tracked
    event (of any account), whose measures from acquisition are then cut short. None at the
    user level, where acquisition is the first event."""
    acquired = account_acquisition(ctx)
    if not ctx.account_level:
        return acquired.select(note=ibis.literal("")).limit(0)
    a = ctx.activity_all
    rows = acquired.cross_join(a.aggregate(first_day=a.day.min()))
    early = rows.acquired_at.date() < rows.first_day
    summary = rows.aggregate(early=rows.account_id.nunique(where=early),
                             accounts=rows.account_id.nunique(), first_day=rows.first_day.min())
    note = (summary.early.cast("string") + " of " + summary.accounts.cast("string")
            + " accounts were acquired before the first tracked event ("
            + summary.first_day.cast("string") + "); their activation, time-to-value and "
            "adoption velocity are not measured from acquisition")
    return summary.filter(summary.early > 0).select(note=note)


# ----------------------------------------------------------------------------------------------
def _build_activation(ctx: Context) -> ir.Table:
    days = ctx.settings.activation_days
    if ctx.level == "user":
        u = user_acquisition(ctx)
        ok = u.first_value_at.notnull() & (
            u.first_value_at <= u.acquired_at + ibis.interval(days=days))
        return u.select("entity", acquired_on=u.acquired_at.date(),
                        activated_on=ibis.cases((ok, u.first_value_at.date()), else_=None),
                        activated=ok)
    per = ctx.per_account(account_activation(ctx, ctx.settings.account_activation_days))
    if ctx.level == "account":
        return per.select("entity", acquired_on=per.acquired_at.date(), value_users=per.value_users,
                          activated_on=per.activated_at.date(), activated=per.activated_at.notnull())
    grouped = per.group_by("entity").aggregate(
        accounts=per.account_id.nunique(),
        activated_accounts=per.account_id.nunique(where=per.activated_at.notnull()))
    return grouped.mutate(activation_rate=ratio(grouped.activated_accounts, grouped.accounts))


register(Metric(
    name="activation", family="activation", levels=LEVELS,
    definition=("User: performs a value event (metrics.value_events) within "
                "metrics.activation_days (14) days of acquisition (first active event). Account: "
                "≥ metrics.min_users (2) distinct users perform value events within "
                "metrics.account_activation_days (30) days of acquisition (earliest of first "
                "subscription start and first attributed event). Slices: share of accounts "
                "activated."),
    inputs=("daily_activity (user level)", "account_user_firsts (account levels)",
            "subscriptions.start_date", "metrics.value_events", "metrics.activation_days",
            "metrics.account_activation_days", "metrics.min_users"),
    build=_build_activation, notes=acquisition_notes,
))


def _build_time_to_value(ctx: Context) -> ir.Table:
    if ctx.level == "user":
        u = user_acquisition(ctx)
        return u.select("entity", acquired_on=u.acquired_at.date(),
                        time_to_value_days=days_between(u.acquired_at, u.first_value_at))
    per = ctx.per_account(account_activation(ctx, None))
    per = per.mutate(days=days_between(per.acquired_at, per.activated_at))
    if ctx.level == "account":
        return per.select("entity", acquired_on=per.acquired_at.date(), time_to_value_days=per.days)
    return per.group_by("entity").aggregate(
        accounts=per.account_id.nunique(), reached_value=per.days.count(),
        median_days=per.days.median(), mean_days=per.days.mean())


register(Metric(
    name="time_to_value", family="activation", levels=LEVELS,
    definition=("Days from acquisition to the first value event (user) or to the moment the "
                "account first has metrics.min_users users with value events (account), "
                "whenever that happens up to as_of; empty if not reached. Slices: median and "
                "mean over accounts that reached value."),
    inputs=("daily_activity (user level)", "account_user_firsts (account levels)",
            "subscriptions.start_date", "metrics.value_events", "metrics.min_users"),
    build=_build_time_to_value, notes=acquisition_notes,
))


def _build_adoption_velocity(ctx: Context) -> ir.Table:
    weeks = ctx.settings.velocity_weeks
    acquired = account_acquisition(ctx)
    # A user first active within the weeks is one with any activity before their end.
    early = user_firsts_before(ctx, acquired, 7 * weeks, inclusive=False)
    early = early.group_by("account_id").aggregate(early_users=early.user_id.nunique())
    per = ctx.per_account(acquired.select("account_id"))
    per = per.left_join(early, "account_id").select(~ibis.selectors.endswith("_right"))
    per = per.mutate(early_users=per.early_users.fill_null(0))
    per = per.mutate(velocity=per.early_users.cast("float64") / weeks)
    return per.group_by("entity").aggregate(early_users=per.early_users.sum(),
                                            adoption_velocity=per.velocity.mean())


register(Metric(
    name="adoption_velocity", family="activation", levels=ACCOUNT_LEVELS,
    definition=("Distinct users first active in the account within its first "
                "metrics.velocity_weeks (8) weeks after acquisition ÷ that number of weeks. "
                "Slices: mean over accounts."),
    inputs=("account_user_firsts", "subscriptions.start_date", "metrics.velocity_weeks"),
    build=_build_adoption_velocity, notes=acquisition_notes,
))
