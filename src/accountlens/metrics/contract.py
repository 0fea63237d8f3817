"""Contract alignment (SPEC §5): usage ÷ each entitlement of the subscriptions in force on as_of."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from accountlens.metrics.adoption import mau_per_account
from accountlens.metrics.levels import ACCOUNT_LEVELS, subscriptions_on
from accountlens.metrics.registry import Context, Metric, ratio, register


def _entitlement_rows(ctx: Context) -> ir.Table:
    """(account_id, entitlement, entitled, used), one row per entitlement of each account."""
    live = subscriptions_on(ctx.as_of)
    a = ctx.activity.filter(ctx.activity.account_id.notnull())
    mau = mau_per_account(ctx)
    mau = mau.select("account_id", used=mau.mau.cast("float64"))
    seats = live.filter(live.seats.notnull()).group_by("account_id").aggregate(
        entitled=live.seats.sum().cast("float64"))
    seats = seats.left_join(mau, "account_id").select(
        "account_id", entitlement=ibis.literal("seats"), entitled=seats.entitled,
        used=mau.used.fill_null(0.0))
    parts = [seats]
    quota_rows = a.filter(ctx.window(a, ctx.settings.quota_window_days))
    for key, names in sorted(ctx.settings.quota_events.items()):
        quota = live.mutate(q=live.entitlements[key].float)
        quota = quota.filter(quota.q.notnull()).group_by("account_id").aggregate(entitled=quota.q.sum())
        use = quota_rows.filter(quota_rows.name.isin(names))
        use = use.group_by("account_id").aggregate(used=use.events.sum().cast("float64"))
        parts.append(quota.left_join(use, "account_id").select(
            "account_id", entitlement=ibis.literal(key), entitled=quota.entitled,
            used=use.used.fill_null(0.0)))
    modules = live.select("account_id", module=live.entitlements["modules"].array.unnest())
    modules = modules.select("account_id", module=modules.module.str).distinct()
    recent = ctx.recent(30, human=False)
    recent = recent.filter(recent.account_id.notnull())
    used_by_product = recent.select("account_id", module=recent.product)
    mapped = [recent.filter(recent.name.isin(names)).select("account_id", module=ibis.literal(m))
              for m, names in sorted(ctx.settings.module_events.items())]
    used_modules = used_by_product.union(*mapped, distinct=True) if mapped else used_by_product.distinct()
    flagged = modules.left_join(used_modules, ["account_id", "module"]).select(
        "account_id", "module", used=used_modules.module.notnull())
    parts.append(flagged.group_by("account_id").aggregate(
        entitlement=ibis.literal("modules"), entitled=flagged.module.nunique().cast("float64"),
        used=flagged.module.nunique(where=flagged.used).cast("float64")))
    return parts[0].union(*parts[1:])


def _build_contract_alignment(ctx: Context) -> ir.Table:
    rows = ctx.per_account(_entitlement_rows(ctx))
    grouped = rows.group_by("entity", "entitlement").aggregate(
        accounts=rows.account_id.nunique(), entitled=rows.entitled.sum(), used=rows.used.sum())
    return grouped.mutate(alignment=ratio(grouped.used, grouped.entitled))


register(Metric(
    name="contract_alignment", tabular=False, family="contract", levels=ACCOUNT_LEVELS,
    definition=("Usage ÷ entitlement for each entitlement of the subscriptions in force on as_of "
                "([start, end)): "
                "seats (MAU ÷ seats), each quota in metrics.quota_events (events of the mapped "
                "names in the last metrics.quota_window_days days ÷ the summed quota), and "
                "modules (purchased modules used in 30 days — an event whose product is the "
                "module or whose name is mapped in metrics.module_events — ÷ modules purchased). "
                "One row per entitlement; accounts without subscriptions have no rows."),
    inputs=("daily_activity", "subscriptions.entitlements", "subscriptions.seats",
            "metrics.quota_events", "metrics.quota_window_days", "metrics.module_events"),
    build=_build_contract_alignment,
))
