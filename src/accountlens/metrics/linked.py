"""The linked model's drill-downs: account → its users and user → its accounts, with each user's
frequency and type of usage in each account over the last 30 days."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from accountlens.metrics.registry import LINKED_MODELS, Context, Metric, ratio, register

POWER_DAYS, REGULAR_DAYS = 12, 4


def _usage(ctx: Context) -> ir.Table:
    a = ctx.activity
    rows = a.filter(Context.human(a) & a.account_id.notnull() & ctx.window(a, 30))
    is_value = rows.name.isin(ctx.settings.value_events)
    per_name = rows.group_by("account_id", "user_id", "name").aggregate(n=rows.events.sum())
    top = per_name.mutate(rank=ibis.row_number().over(
        group_by=[per_name.account_id, per_name.user_id], order_by=[ibis.desc(per_name.n),
                                                                    per_name.name]))
    top = top.filter(top.rank == 0).select("account_id", "user_id", top_event=top.name)
    usage = rows.group_by("account_id", "user_id").aggregate(
        active_days=rows.day.nunique(), events=rows.events.sum(),
        value_events=rows.events.sum(where=is_value).fill_null(0),
        first_seen=rows.first_at.min(), last_seen=rows.last_at.max())
    usage = usage.inner_join(top, ["account_id", "user_id"]).select(~ibis.selectors.endswith("_right"))
    return usage.mutate(
        events_per_active_day=ratio(usage.events, usage.active_days),
        value_share=ratio(usage.value_events, usage.events),
        usage_type=ibis.cases((usage.active_days >= POWER_DAYS, "power"),
                              (usage.active_days >= REGULAR_DAYS, "regular"), else_="occasional"))


def _build_account_users(ctx: Context) -> ir.Table:
    usage = _usage(ctx)
    return usage.rename(entity="account_id").relocate("entity", "user_id")


def _build_user_accounts(ctx: Context) -> ir.Table:
    usage = _usage(ctx)
    return usage.rename(entity="user_id").relocate("entity", "account_id")


_DEFINITION = ("Each user's usage in each account over the last 30 days: active days, events, "
               "value events and their share, events per active day, most used event and usage "
               f"type (power ≥ {POWER_DAYS} active days, regular ≥ {REGULAR_DAYS}, else "
               "occasional). Offered by the linked and advanced analysis models.")
register(Metric(
    name="account_users", tabular=False, family="linked", levels=("account",),
    definition="Drill down from an account to its users. " + _DEFINITION,
    inputs=("daily_activity", "metrics.value_events"), build=_build_account_users,
    models=LINKED_MODELS,
))
register(Metric(
    name="user_accounts", tabular=False, family="linked", levels=("user",),
    definition="Drill up from a user to the accounts they act in. " + _DEFINITION,
    inputs=("daily_activity", "metrics.value_events"), build=_build_user_accounts,
    models=LINKED_MODELS,
))
