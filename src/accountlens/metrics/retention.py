"""Retention cohorts (SPEC §5): cohort × period tables of users or accounts, weekly or monthly."""

from __future__ import annotations

from typing import Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field

from accountlens.metrics.activation import account_acquisition
from accountlens.metrics.levels import SLICES
from accountlens.metrics.registry import Context, Metric, ratio, register


class RetentionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: Literal["week", "month"] = Field(default="week", description="week or month cohorts")


def _period_index(start: ir.DateValue, day: ir.DateValue, period: str) -> ir.IntegerValue:
    """Whole calendar periods from the period of `start` to the period of `day`."""
    if period == "month":
        return (day.year() * 12 + day.month()) - (start.year() * 12 + start.month())
    seconds = day.truncate("W").epoch_seconds() - start.truncate("W").epoch_seconds()
    return (seconds / (7 * 86400)).round().cast("int64")


def _build_retention(ctx: Context) -> ir.Table:
    assert isinstance(ctx.params, RetentionParams)  # the registry built it from `params=`
    period = ctx.params.period
    a = ctx.activity
    if ctx.account_level:
        rows = ctx.account_days()
        acquired = ctx.per_account(account_acquisition(ctx))
        acquired = acquired.filter(acquired.acquired_at.notnull()).select(
            "entity", subject=acquired.account_id, acquired=acquired.acquired_at.date())
        active = rows.select("entity", "day", subject=rows.account_id)
    else:
        rows = a.filter(Context.human(a))
        firsts = rows.group_by("entity", subject=rows.user_id).aggregate(acquired=rows.day.min())
        acquired, active = firsts, rows.select("entity", "day", subject=rows.user_id)
    if ctx.level in ("user", "account"):
        acquired = acquired.mutate(entity=ibis.literal("all"))
        active = active.mutate(entity=ibis.literal("all"))
    cohorts = acquired.mutate(cohort=acquired.acquired.truncate("W" if period == "week" else "M"))
    sizes = cohorts.group_by("entity", "cohort").aggregate(cohort_size=cohorts.subject.nunique())
    hits = active.inner_join(cohorts, ["entity", "subject"])
    hits = hits.filter(hits.day >= hits.acquired)
    hits = hits.mutate(period=_period_index(hits.cohort, hits.day, period))
    retained = hits.group_by("entity", "cohort", "period").aggregate(retained=hits.subject.nunique())
    out = retained.inner_join(sizes, ["entity", "cohort"]).select(~ibis.selectors.endswith("_right"))
    out = out.select("entity", "cohort", "period", "cohort_size", "retained",
                     retention=ratio(out.retained, out.cohort_size))
    return out.drop("entity") if ctx.level in ("user", "account") else out


register(Metric(
    name="retention", tabular=False, family="retention", levels=("user", "account", *SLICES),
    definition=("Cohorts by acquisition week (param period=week, ISO weeks) or month "
                "(period=month): an entity is retained in period k if it has an active event in "
                "the k-th calendar period after its acquisition period (k = 0 is the acquisition "
                "period). Users: human events; accounts: any active event, acquisition = earliest "
                "of first subscription start and first event. Rows: cohort × period with "
                "cohort_size, retained and retention; periods nobody was active in are absent. "
                "Slices give one table per group of accounts."),
    inputs=("daily_activity (user level)", "account_days (account levels)",
            "subscriptions.start_date"), params=RetentionParams,
    build=_build_retention,
))
