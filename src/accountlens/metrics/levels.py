"""Levels and slices: which entity a row of activity or an account belongs to, as Ibis expressions.

Entity levels group users (`user`, `role`, `unit` and its kinds); account levels group accounts
(`account` and the account-attribute slices, computed as of the query date).
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from accountlens.config import MetricsSection
from accountlens.model import entities
from accountlens.store.catalog import table

UNIT_KINDS = entities.UNIT_LEVELS  # levels list the smallest first: team, …
USER_LEVELS, SLICES, ACCOUNT_LEVELS = entities.USER_LEVELS, entities.SLICES, entities.ACCOUNT_LEVELS
LEVELS, FILTERS = entities.LEVELS, entities.FILTERS
NONE = "(none)"


def band(value: ir.NumericValue, edges: list[int], suffix: str = "") -> ir.StringValue:
    """'<a', 'a-(b-1)', …, 'z+' labels of `value` for ascending band edges."""
    branches = [(value < edges[0], f"<{edges[0]}{suffix}")]
    branches += [(value < hi, f"{lo}-{hi - 1}{suffix}") for lo, hi in zip(edges, edges[1:])]
    return ibis.cases(*branches, else_=f"{edges[-1]}+{suffix}")


def band_labels(edges: list[int], suffix: str = "") -> list[str]:
    return ([f"<{edges[0]}{suffix}"] + [f"{lo}-{hi - 1}{suffix}" for lo, hi in zip(edges, edges[1:])]
            + [f"{edges[-1]}+{suffix}"])


def subscriptions_on(day: dt.date) -> ir.Table:
    """Subscriptions in force on `day`: half-open `[start, end)` (SPEC §3.0), so a subscription
    ending on `day` is not in force and its renewal starting that day is. Read from the dates
    alone, never from the `status` column (SPEC §8)."""
    subs = table("subscriptions")
    return subs.filter(subs.start_date <= day, subs.end_date.isnull() | (subs.end_date > day))


def full_months(start: ir.DateValue, end: dt.date) -> ir.IntegerValue:
    """Whole months from `start` to `end` (a month counts once its day-of-month is reached)."""
    months = (end.year * 12 + end.month) - (start.year() * 12 + start.month())
    return months - (start.day() > end.day).cast("int64")


def unit_ancestor(kind: str) -> ir.Table:
    """(unit_id, ancestor_id): each org unit's nearest ancestor-or-self of `kind`."""
    units = table("org_units")
    chain = units.select(unit_id=units.unit_id, a0=units.unit_id, k0=units.kind,
                         p0=units.parent_unit_id)
    for depth in range(1, entities.UNIT_DEPTH + 1):
        step = units.select(**{f"a{depth}": units.unit_id, f"k{depth}": units.kind,
                               f"p{depth}": units.parent_unit_id})
        chain = chain.left_join(step, chain[f"p{depth - 1}"] == step[f"a{depth}"])
    branches = [(chain[f"k{d}"] == kind, chain[f"a{d}"]) for d in range(entities.UNIT_DEPTH + 1)]
    return chain.select(unit_id=chain.unit_id, ancestor_id=ibis.cases(*branches, else_=None))


def account_attributes(as_of: dt.date, activity: ir.Table, firsts: ir.Table,
                       settings: MetricsSection, slices: frozenset[str] = frozenset(SLICES)) -> ir.Table:
    """Every account known on `as_of` with its first contract day, first event and slice values.

    An account is known once its earliest date (created, first contract, first activity) is
    on or before `as_of`. `activity` is the rollup up to `as_of`, `firsts` each account's first
    active moment (`account_firsts`). Only the `slices` a request groups or filters by are
    computed (deployment_scale reads the last 30 days of activity).
    """
    accounts = table("accounts")
    subs = table("subscriptions")
    past_subs = subs.filter(subs.start_date <= as_of)
    first_contract = past_subs.group_by("account_id").aggregate(first_contract=past_subs.start_date.min())
    attributed = activity.filter(activity.account_id.notnull())
    first_active = firsts.filter(firsts.first_day <= as_of).select(
        "account_id", "first_day", first_event=firsts.first_at)
    created = accounts.filter(accounts.created_at.notnull()).select(
        account_id=accounts.account_id, day=accounts.created_at.date())
    ids = (created.select("account_id")
           .union(first_contract.select("account_id"), distinct=True)
           .union(first_active.select("account_id"), distinct=True))
    joined = ids.left_join(accounts, "account_id").select(
        "account_id", "industry", "region", "employees", "plan", "created_at")
    parts = [first_contract, first_active]
    if "plan" in slices:
        live = subscriptions_on(as_of)
        parts.append(live.group_by("account_id").aggregate(sub_plan=live.plan.argmax(live.arr)))
    if "deployment_scale" in slices:
        recent = attributed.filter(attributed.day > as_of - dt.timedelta(days=30),
                                   attributed.actor_kind == "human", attributed.user_id.notnull())
        parts.append(recent.group_by("account_id").aggregate(mau=recent.user_id.nunique()))
    for part in parts:
        joined = joined.left_join(part, "account_id").select(~ibis.selectors.endswith("_right"))
    since = ibis.least(joined.created_at.date(), joined.first_contract, joined.first_day)
    values = {
        "industry": lambda: joined.industry.fill_null(NONE),
        "region": lambda: joined.region.fill_null(NONE),
        "plan": lambda: joined.plan.fill_null(joined.sub_plan).fill_null(NONE),
        "size_band": lambda: ibis.cases((joined.employees.isnull(), NONE),
                                        else_=band(joined.employees, settings.size_bands)),
        "maturity": lambda: ibis.cases(
            (joined.first_contract.isnull(), NONE),
            else_=band(full_months(joined.first_contract, as_of), settings.maturity_bands_months,
                       " months")),
        "deployment_scale": lambda: band(joined.mau.fill_null(0), settings.deployment_scale_bands,
                                         " users"),
    }
    return joined.filter(since <= as_of).select(
        "account_id", "first_contract", "first_event",
        **{name: values[name]() for name in SLICES if name in slices})


def activity_entity(activity: ir.Table, level: str, accounts: ir.Table) -> ir.Table:
    """`activity` with an `entity` column for `level`; rows that belong to no entity dropped."""
    if level == "user":
        return activity.filter(activity.user_id.notnull()).mutate(entity=activity.user_id)
    if level == "account":
        return activity.filter(activity.account_id.notnull()).mutate(entity=activity.account_id)
    if level == "role":
        return activity.mutate(entity=activity.role.fill_null(NONE))
    if level == "unit":
        return activity.mutate(entity=activity.unit_id.fill_null(NONE))
    if level in UNIT_KINDS:
        ancestors = unit_ancestor(level)
        joined = activity.left_join(ancestors, "unit_id").select(~ibis.selectors.endswith("_right"))
        return joined.mutate(entity=joined.ancestor_id.fill_null(NONE)).drop("ancestor_id")
    if level == "all":
        return activity.mutate(entity=ibis.literal("all"))
    slices = accounts.select("account_id", entity=accounts[level])
    return activity.inner_join(slices, "account_id").select(~ibis.selectors.endswith("_right"))


def account_entity(accounts: ir.Table, level: str) -> ir.Table:
    """`accounts` with an `entity` column for an account level."""
    if level == "account":
        return accounts.mutate(entity=accounts.account_id)
    if level == "all":
        return accounts.mutate(entity=ibis.literal("all"))
    return accounts.mutate(entity=accounts[level])
