"""Revenue metrics from subscriptions and outcomes: ARR, NRR, GRR, logo retention, ARR movements."""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from accountlens.metrics.levels import ACCOUNT_LEVELS, subscriptions_on
from accountlens.metrics.registry import Context, Metric, ratio, register
from accountlens.store.catalog import table

INPUTS = ("subscriptions.arr", "subscriptions.start_date", "subscriptions.end_date",
          "metrics.revenue_period_days")


def _arr_on(day: dt.date) -> ir.Table:
    live = subscriptions_on(day)
    return live.group_by("account_id").aggregate(arr=live.arr.fill_null(0).sum())


def _period_start(ctx: Context) -> dt.date:
    return ctx.since(ctx.settings.revenue_period_days)


def _cohort(ctx: Context) -> ir.Table:
    """Accounts paying at the start of the period, with start and end ARR."""
    start, end = _arr_on(_period_start(ctx)), _arr_on(ctx.as_of)
    start = start.filter(start.arr > 0).rename(start_arr="arr")
    both = start.left_join(end, "account_id").select(~ibis.selectors.endswith("_right"))
    both = both.mutate(end_arr=both.arr.fill_null(0.0)).drop("arr")
    return ctx.per_account(both)


def _build_arr(ctx: Context) -> ir.Table:
    per = ctx.per_account(ctx.accounts.select("account_id"))
    per = per.left_join(_arr_on(ctx.as_of), "account_id").select(~ibis.selectors.endswith("_right"))
    per = per.mutate(arr=per.arr.fill_null(0.0))
    return per.group_by("entity").aggregate(paying_accounts=per.account_id.nunique(where=per.arr > 0),
                                            arr=per.arr.sum())


register(Metric(
    name="arr", family="revenue", levels=ACCOUNT_LEVELS,
    definition=("ARR on as_of: the summed arr of subscriptions in force that day (half-open "
                "[start, end): one ending on as_of is not, its renewal starting that day is)."),
    inputs=INPUTS[:3], build=_build_arr,
))


def _build_nrr(ctx: Context) -> ir.Table:
    c = _cohort(ctx)
    g = c.group_by("entity").aggregate(start_arr=c.start_arr.sum(), end_arr=c.end_arr.sum())
    return g.mutate(nrr=ratio(g.end_arr, g.start_arr))


def _build_grr(ctx: Context) -> ir.Table:
    c = _cohort(ctx)
    g = c.group_by("entity").aggregate(start_arr=c.start_arr.sum(),
                                       retained_arr=ibis.least(c.end_arr, c.start_arr).sum())
    return g.mutate(grr=ratio(g.retained_arr, g.start_arr))


def _build_logo_retention(ctx: Context) -> ir.Table:
    c = _cohort(ctx)
    g = c.group_by("entity").aggregate(start_accounts=c.account_id.nunique(),
                                       retained_accounts=c.account_id.nunique(where=c.end_arr > 0))
    return g.mutate(logo_retention=ratio(g.retained_accounts, g.start_accounts))


_PERIOD = ("Over the period (as_of − metrics.revenue_period_days (365), as_of]: the cohort is "
           "the accounts with ARR > 0 on the first day; ")
register(Metric(
    name="nrr", family="revenue", levels=ACCOUNT_LEVELS,
    definition=_PERIOD + "NRR = their ARR on as_of ÷ their ARR on the first day.",
    inputs=INPUTS, build=_build_nrr,
))
register(Metric(
    name="grr", family="revenue", levels=ACCOUNT_LEVELS,
    definition=_PERIOD + "GRR = Σ min(ARR on as_of, starting ARR) ÷ starting ARR (no expansion).",
    inputs=INPUTS, build=_build_grr,
))
register(Metric(
    name="logo_retention", family="revenue", levels=ACCOUNT_LEVELS,
    definition=_PERIOD + "logo retention = share of them still paying (ARR > 0) on as_of.",
    inputs=INPUTS, build=_build_logo_retention,
))


def _build_arr_movements(ctx: Context) -> ir.Table:
    o = table("outcomes")
    o = o.filter(o.date > _period_start(ctx), o.date <= ctx.as_of)
    per = ctx.per_account(o.select("account_id", "kind", "arr_delta"))
    return per.group_by("entity", "kind").aggregate(outcomes=per.count(),
                                                    arr_delta=per.arr_delta.fill_null(0).sum())


register(Metric(
    name="arr_movements", tabular=False, family="revenue", levels=ACCOUNT_LEVELS,
    definition=("Outcomes (renewal, expansion, contraction, churn, conversion) dated in the "
                "revenue period, with their count and summed arr_delta, per kind."),
    inputs=("outcomes", "metrics.revenue_period_days"), build=_build_arr_movements,
))
