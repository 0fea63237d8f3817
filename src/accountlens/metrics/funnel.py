"""The AARRR funnel (stages and order from `metrics.funnel_stages`) and referrals (internal/external).

A subject is a user (levels user, role, unit…: users grouped by the role/unit they acted in) or
an account (levels account and slices). Stage k is reached at the first qualifying moment at or
after stage k−1 was reached; conversion and time between stages follow from those moments.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from accountlens.metrics.activation import account_acquisition, days_between
from accountlens.metrics.levels import SLICES, UNIT_KINDS
from accountlens.metrics.registry import Context, Metric, end_of, ratio, register
from accountlens.model.entities import ACTIVE_EVENT_TYPES
from accountlens.model.rollup import invites_expression
from accountlens.store.catalog import INVITES, TS, table

LEVELS = ("user", "account", "role", "unit", *UNIT_KINDS, *SLICES)


def _member_emails(as_of) -> ir.Table:
    """One row per (member e-mail in lower case, account) of the memberships begun by the end of
    `as_of`, with the latest start there: (m_email, m_account, m_from)."""
    users, members = table("users"), table("memberships")
    live = members.filter(members.valid_from < end_of(as_of))
    emails = users.select(m_user=users.user_id, m_email=users.email.lower())
    live = live.inner_join(emails, live.user_id == emails.m_user)
    return live.group_by(m_email=live.m_email, m_account=live.account_id).aggregate(
        m_from=live.valid_from.max())


def invites(ctx: Context) -> ir.Table:
    """Invite events up to as_of, one row per invite, with `entity` and `internal` (SPEC §5)."""
    s = ctx.settings
    accounts = table("accounts")
    # the stored invites (kept at load time for these settings), or read from the events
    rows = (table(INVITES) if ctx.stored else
            invites_expression(table("events"), s.referral_event, s.referral_email_property))
    rows = rows.filter(rows.timestamp < end_of(ctx.as_of), rows.actor_kind == "human")
    rows = rows.select("message_id", "account_id", "user_id", "unit_id", "role", "timestamp",
                       "invitee_email")
    domains = accounts.select(account_id=accounts.account_id, account_domain=accounts.domain.lower())
    rows = rows.left_join(domains, "account_id").select(~ibis.selectors.endswith("_right"))
    # An invite is internal when a user with the invitee's e-mail is or was a member of the
    # inviting account, or the e-mail's domain is the account's.
    member_emails = _member_emails(ctx.as_of).drop("m_from")
    rows = rows.left_join(member_emails, [rows.invitee_email == member_emails.m_email,
                                          rows.account_id == member_emails.m_account])
    rows = rows.mutate(internal=(rows.invitee_email.split("@")[1] == rows.account_domain)
                       .fill_null(False) | rows.m_email.notnull()).drop(
        "m_email", "m_account", "account_domain")
    return ctx.scoped(rows)


def referred_accounts(ctx: Context, rows: ir.Table) -> ir.Table:
    """(entity, referred_account) of the external invites among `rows` (from `invites`): the
    accounts an external invitee joined after the invite (they may join several)."""
    # One row per (e-mail, account): joined there on or after the invite iff its latest start is.
    later = _member_emails(ctx.as_of).rename(r_email="m_email", r_account="m_account",
                                             r_from="m_from")
    external = rows.filter(~rows.internal)
    joined = external.inner_join(later, [external.invitee_email == later.r_email,
                                         external.account_id != later.r_account,
                                         later.r_from >= external.timestamp])
    return joined.select("entity", referred_account=joined.r_account)


def _build_referrals(ctx: Context) -> ir.Table:
    rows = invites(ctx)
    sent = rows.group_by("entity").aggregate(
        invites=rows.count(), internal=rows.internal.sum(), external=(~rows.internal).sum())
    referred = referred_accounts(ctx, rows)
    referred = referred.group_by("entity").aggregate(
        referred_accounts=referred.referred_account.nunique())
    values = sent.left_join(referred, "entity").select(~ibis.selectors.endswith("_right"))
    return ctx.complete(values, invites=0, internal=0, external=0, referred_accounts=0)


register(Metric(
    name="referrals", family="funnel", levels=(*LEVELS, "all"),
    definition=("Invites (metrics.referral_event, invitee email in "
                "properties.<metrics.referral_email_property>) sent up to as_of. Internal when the "
                "invitee's email domain is the inviter's account domain or the invitee is or "
                "becomes a member of that account; external otherwise. referred_accounts: "
                "accounts an external invitee later became a member of."),
    inputs=("events (referral events only)", "accounts.domain", "users.email", "memberships",
            "metrics.referral_event", "metrics.referral_email_property"),
    build=_build_referrals,
))


# ----------------------------------------------------------------------------------------------
def _raw_activity(ctx: Context) -> ir.Table:
    """Active raw events up to as_of, shaped like rollup rows (one per event), scoped like
    `ctx.activity`: the exact moments inside a day, where the rollup keeps only first and last."""
    events = table("events")
    raw = events.filter(events.type.isin(ACTIVE_EVENT_TYPES), events.timestamp < end_of(ctx.as_of))
    return ctx.scoped(raw.mutate(first_at=raw.timestamp, last_at=raw.timestamp))


def _subject_rows(ctx: Context, activity: ir.Table | None = None) -> tuple[ir.Table, list[str]]:
    """Activity rows of funnel subjects (default: the rollup's) and the subject key columns."""
    a = _one_funnel(ctx, ctx.activity if activity is None else activity)
    if ctx.account_level:
        return a.filter(a.account_id.notnull()), ["entity", "account_id"]
    return a.filter(Context.human(a)), ["entity", "user_id"]


def _one_funnel(ctx: Context, t: ir.Table) -> ir.Table:
    """Levels user and account give one funnel over all subjects: a constant group."""
    return t.mutate(entity=ibis.literal("all")) if ctx.level in ("user", "account") else t


def _condition(ctx: Context, stage: str, rows: ir.Table) -> ir.BooleanValue | bool | None:
    """Which activity rows can satisfy `stage`: True for any, None for stages reached outside
    activity (account acquisition and account revenue)."""
    s = ctx.settings
    names = {"awareness": s.awareness_events, "activation": s.value_events,
             "referral": [s.referral_event]}
    if stage in names:
        return rows.name.isin(names[stage])
    if stage == "revenue":
        return None if ctx.account_level else rows.name == s.monetization_event
    if stage == "acquisition" and ctx.account_level:
        return None
    return True  # user acquisition, retention: any active event


def _moments(ctx: Context, stage: str, keys: list[str]) -> ir.Table:
    """(keys…, at) of the moments outside activity that satisfy `stage`."""
    if stage == "revenue":
        subs = table("subscriptions")
        paid = subs.filter(subs.arr > 0, subs.start_date <= ctx.as_of)
        paid = ctx.per_account(paid.select("account_id", at=paid.start_date.cast(TS)))
    else:
        paid = ctx.per_account(account_acquisition(ctx)).rename(at="acquired_at")
        paid = paid.filter(paid.at.notnull())
    return _one_funnel(ctx, paid).select(*keys, "at")


def _reached(ctx: Context, stage: str, rows: ir.Table, keys: list[str],
             previous: ir.Table | None) -> ir.Table:
    """(keys…, at): the first moment each subject satisfies `stage` at or after the previous.

    `rows` are the subjects' rollup rows (one day each). A day whose first moment of the stage
    is before the earliest allowed moment and whose last is after it (only the earliest
    moment's own day can) holds the answer somewhere in between: that day alone is looked up
    in the raw events.
    """
    condition = _condition(ctx, stage, rows)
    if condition is None:
        candidates = _moments(ctx, stage, keys)
        if previous is None:
            return candidates.group_by(keys).aggregate(at=candidates.at.min())
        joined = previous.rename(prev_at="at").inner_join(candidates, keys)
        joined = joined.filter(joined.at >= joined.prev_at)
        return joined.group_by(keys).aggregate(at=joined.at.min())
    days = (rows if condition is True else rows.filter(condition)).select(
        *keys, "day", "first_at", "last_at")
    if previous is None:
        return days.group_by(keys).aggregate(at=days.first_at.min())
    delay = ibis.interval(days=ctx.settings.retention_after_days if stage == "retention" else 0)
    # Time arithmetic once per subject, not per joined row (zone-aware, it is not cheap).
    previous = previous.mutate(earliest=previous.at + delay).drop("at")
    joined = previous.inner_join(days, [*[previous[k] == days[k] for k in keys],
                                        days.last_at >= previous.earliest])
    after = joined.first_at >= joined.earliest  # CASE, not FILTER: aggregated faster
    per = joined.group_by(keys).aggregate(
        later=ibis.cases((after, joined.first_at), else_=None).min(),
        straddling=ibis.cases((~after, joined.day), else_=None).min(),
        earliest=joined.earliest.min())
    lookup = per.filter(per.straddling.notnull())
    raw, _ = _subject_rows(ctx, _raw_activity(ctx))
    condition = _condition(ctx, stage, raw)
    raw = raw if condition is True else raw.filter(condition)
    # Raw times compared with the day's bounds: no date of every raw event to compute.
    lookup = lookup.mutate(day_end=lookup.straddling.cast(TS) + ibis.interval(days=1))
    exact = lookup.inner_join(raw, [*[lookup[k] == raw[k] for k in keys],
                                    raw.first_at >= lookup.earliest, raw.first_at < lookup.day_end])
    exact = exact.group_by(keys).aggregate(exact_at=exact.first_at.min())
    out = per.left_join(exact, keys).select(~ibis.selectors.endswith("_right"))
    return out.select(*keys, at=out.exact_at.fill_null(out.later))


def _build_funnel(ctx: Context) -> ir.Table:
    rows, keys = _subject_rows(ctx)
    # Stages any active event satisfies need only when accounts were active: one row per day.
    any_rows = _subject_rows(ctx, ctx.account_days())[0] if ctx.account_level else rows
    stages = [s for s in ctx.settings.funnel_stages
              if s != "awareness" or ctx.settings.awareness_events]
    parts, labels, previous = [], [], None
    for order, stage in enumerate(stages, start=1):
        labels.append((stage, order))
        stage_rows = any_rows if _condition(ctx, stage, rows) is True else rows
        reached = _reached(ctx, stage, stage_rows, keys, previous)
        if previous is None:
            step = reached.mutate(days=ibis.null("float64"))
        else:
            step = reached.inner_join(previous.rename(prev_at="at"), keys)
            step = step.mutate(days=days_between(step.prev_at, step.at))
        parts.append(step.group_by("entity").aggregate(
            stage=ibis.literal(stage), stage_order=ibis.literal(order), reached=step.count(),
            median_days_from_previous=step.days.median()))
        if stage == "referral" and not ctx.account_level:
            split = _one_funnel(ctx, invites(ctx)).inner_join(reached, keys)
            split = split.filter(split.timestamp >= split.at)
            for kind, condition in (("internal", split.internal), ("external", ~split.internal)):
                labels.append((f"referral:{kind}", order))
                part = split.filter(condition)
                parts.append(part.group_by("entity").aggregate(
                    stage=ibis.literal(f"referral:{kind}"), stage_order=ibis.literal(order),
                    reached=part.user_id.nunique(), median_days_from_previous=ibis.null("float64")))
        previous = reached
    # Every group gets every stage, with 0 where nobody reached it.
    groups = parts[0].select("entity").distinct()
    grid = groups.select("entity", stage=ibis.literal(labels[0][0]), stage_order=ibis.literal(1))
    grid = grid.union(*[groups.select("entity", stage=ibis.literal(label), stage_order=ibis.literal(o))
                        for label, o in labels[1:]])
    table_ = parts[0].union(*parts[1:])
    table_ = grid.left_join(table_, ["entity", "stage", "stage_order"]).select(
        ~ibis.selectors.endswith("_right"))
    table_ = table_.mutate(reached=table_.reached.fill_null(0))
    main = table_.filter(~table_.stage.contains(":"))
    prior = main.select("entity", stage_order=main.stage_order + 1, prior_reached=main.reached)
    out = table_.left_join(prior, ["entity", "stage_order"]).select(~ibis.selectors.endswith("_right"))
    out = out.mutate(conversion=ibis.cases((out.stage_order == 1, None),
                                           else_=ratio(out.reached, out.prior_reached.fill_null(0))))
    out = out.select("entity", "stage_order", "stage", "reached", "conversion",
                     "median_days_from_previous")
    if ctx.level in ("user", "account"):
        return out.drop("entity")
    return out


register(Metric(
    name="funnel", tabular=False, family="funnel", levels=LEVELS,
    definition=("AARRR funnel with the stages and order of metrics.funnel_stages (awareness "
                "optional: metrics.awareness_events). Awareness, activation (value events), "
                "referral (metrics.referral_event) and user revenue (metrics.monetization_event) "
                "are reached by their events; acquisition by the first active event (accounts: "
                "first subscription or event); retention by an active event ≥ "
                "metrics.retention_after_days after the previous stage; account revenue by a "
                "subscription with ARR > 0. Each stage counts only at or after the previous one. "
                "Rows per stage: subjects reached, conversion from the previous stage and median "
                "days from it; user funnels add referral:internal / referral:external rows. "
                "Levels user and account give one funnel; role, unit and slices one per group."),
    inputs=("daily_activity", "account_days (account levels: stages any active event reaches)",
            "subscriptions", "events (referral events only)",
            "metrics.funnel_stages", "metrics.awareness_events", "metrics.value_events",
            "metrics.retention_after_days", "metrics.referral_event",
            "metrics.monetization_event"),
    build=_build_funnel,
))
