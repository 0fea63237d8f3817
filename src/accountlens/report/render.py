"""The account review as one self-contained HTML page: inline CSS (A4 print styles) and inline
SVG charts (report/svg.py), no script, no font, no URL — it prints, and Chromium makes its PDF,
offline. Every value is escaped. The key figures carry element ids and `data-value` attributes
(the unrounded value) so that tools and tests read them without parsing formatted text."""

from __future__ import annotations

import datetime as dt
import math
from html import escape

from accountlens.report.account_review import AccountReview, Adopters
from accountlens.report.svg import Bar, bar_chart
from accountlens.report.wording import long_day as day
from accountlens.report.wording import words

MAX_BARS = 12  # bars per chart; the rest are counted under it

CSS = """
@page { size: A4; margin: 14mm 14mm 16mm; }
* { box-sizing: border-box; }
body { margin: 0; color: #1d2433; background: #fff; font: 10.5pt/1.45 system-ui, -apple-system,
  "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; -webkit-print-color-adjust: exact;
  print-color-adjust: exact; }
main { max-width: 190mm; margin: 0 auto; padding: 10mm 6mm; }
header { border-bottom: 2px solid #2f63c8; padding-bottom: 6px; margin-bottom: 10px; }
.kicker { margin: 0; color: #55607a; font-size: 9pt; text-transform: uppercase; letter-spacing: .06em; }
h1 { margin: 2px 0 2px; font-size: 20pt; }
h2 { margin: 0 0 6px; font-size: 12.5pt; color: #2f63c8; }
.meta, .note, footer { color: #55607a; font-size: 8.5pt; }
.meta { margin: 0; }
section { break-inside: avoid; margin: 0 0 12px; }
.figures { display: grid; grid-template-columns: repeat(6, 1fr); gap: 6px; }
.figure { border: 1px solid #dfe6f3; border-radius: 4px; padding: 5px 7px; }
.figure .label { display: block; color: #55607a; font-size: 8pt; }
.figure .number { display: block; font-size: 14pt; font-weight: 600; }
.figure .number.date { font-size: 11pt; padding-top: 3px; }
.figure .sub { display: block; color: #55607a; font-size: 8pt; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
h3 { margin: 0 0 2px; font-size: 9.5pt; }
svg.chart { display: block; max-width: 100%; font-family: inherit; fill: #1d2433; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 10px; margin: 0; }
dt { color: #55607a; } dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; }
th, td { text-align: left; padding: 2px 6px 2px 0; border-bottom: 1px solid #dfe6f3; }
td.n, th.n { text-align: right; }
ul, ol { margin: 0; padding-left: 18px; }
ol.steps li { margin-bottom: 4px; }
.grade-healthy { color: #1c7c3c; } .grade-concerning { color: #a86200; } .grade-poor { color: #b3261e; }
footer { border-top: 1px solid #dfe6f3; padding-top: 6px; }
@media print { main { padding: 0; max-width: none; } }
@media (max-width: 640px) { .figures { grid-template-columns: repeat(2, 1fr); }
  .grid { grid-template-columns: 1fr; } }
"""


def e(value: object) -> str:
    return escape("" if value is None else str(value))


def number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.0%}"


def short_day(value: dt.date | None) -> str:
    return "–" if value is None else f"{value.day} {value:%b %Y}"


def data(value: float | int | str | None) -> str:
    """A `data-value` attribute's text: the exact value (empty when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return e(repr(float(value)) if isinstance(value, float) else value)


def figure(ident: str, label: str, value: float | int | str | None, shown: str,
           sub: str = "", size: str = "number") -> str:
    return (f'<div class="figure"><span class="label">{e(label)}</span>'
            f'<span class="{size}" id="{ident}" data-value="{data(value)}">{e(shown)}</span>'
            + (f'<span class="sub">{e(sub)}</span>' if sub else "") + "</div>")


def render(review: AccountReview) -> str:
    title = f"{review.name}: account review, {day(review.as_of)}"
    body = "".join([_header(review), _figures(review), _value(review), _adoption(review),
                    _contract(review), _health(review), _risks(review), _steps(review),
                    _footer(review)])
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>"
            f'<main class="review" data-account-id="{e(review.account_id)}" '
            f'data-as-of="{review.as_of.isoformat()}">{body}</main></body></html>\n')


def _header(r: AccountReview) -> str:
    about = [r.domain, r.industry and words(r.industry).capitalize(),
             r.plan and f"{r.plan} plan", r.owner and f"account manager: {r.owner}"]
    return (f'<header><p class="kicker">Account review · as of {day(r.as_of)}</p>'
            f'<h1 id="account-name">{e(r.name)}</h1>'
            f'<p class="meta">{" · ".join(e(a) for a in about if a)}</p></header>')


def _figures(r: AccountReview) -> str:
    c, h = r.contract, r.health
    return ('<section class="figures" aria-label="key figures">'
            + figure("arr", "Annual contract value", c.arr, number(c.arr))
            + figure("seats", "Seats", c.seats, number(c.seats))
            + figure("mau", "Active people (30 days)", c.mau, number(c.mau))
            + figure("seat-utilization", "Seats in use", c.seat_utilization,
                     percent(c.seat_utilization))
            + figure("health-score", "Health score", h.score if h else None,
                     number(h.score if h else None), h.grade if h else "no score")
            + figure("renewal", "Renewal", r.renewal_date.isoformat() if r.renewal_date else None,
                     short_day(r.renewal_date),
                     f"in {r.days_to_renewal} days" if r.days_to_renewal is not None else "",
                     size="number date")
            + "</section>")


def _value(r: AccountReview) -> str:
    v = r.value
    rows = []
    if v.value_reached_on:
        timing = (f"in {number(v.time_to_value_days)} days" if v.time_to_value_days is not None
                  else "")
        bench = (f" (similar accounts: {number(v.expected_ttv_days)} days)"
                 if v.expected_ttv_days is not None else "")
        rows.append(("Value reached", f"{day(v.value_reached_on)} {timing}{bench}".strip()))
    elif v.customer:
        when = (f"; expected {day(v.projected_value_date)}" if v.projected_value_date else "")
        rows.append(("Value reached", f"not yet: {v.value_users} of {v.needed_users} people "
                                      f"needed{when}"))
    if v.activated is not None:
        rows.append(("Activated on time", "yes" if v.activated else "no"))
    if v.customer:
        rows.append(("People who used key features", f"{v.value_users} so far"))
    rows.append(("Last 90 days", f"{v.value_users_90d} people, {number(v.value_events_90d)} "
                                  "uses of key features"))
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(t)}</dd>" for k, t in rows)
    return (f'<section id="value"><h2>Value realised</h2><dl>{items}</dl>'
            f'<p class="note">Key features: {e(", ".join(v.value_events))}.'
            + ("" if v.customer else " Value is tracked from the first contract.")
            + f'</p><span hidden id="value-users-90d" data-value="{v.value_users_90d}"></span>'
            f'<span hidden id="value-events-90d" data-value="{v.value_events_90d}"></span>'
            "</section>")


def _adopters_chart(rows: list[Adopters], title: str) -> str:
    shown = rows[:MAX_BARS]
    chart = bar_chart([Bar(a.name, a.active_30d, a.members, f"{a.active_30d} of {a.members}")
                       for a in shown], title)
    more = f'<p class="note">and {len(rows) - len(shown)} more</p>' if len(rows) > len(shown) else ""
    return chart + more if chart else '<p class="note">None recorded.</p>'


def _adoption(r: AccountReview) -> str:
    a = r.adoption
    kind = words(a.unit_kind or "team")
    cut = ('<p class="note">Roles are counted over the first 5,000 people.</p>'
           if a.users_truncated else "")
    return ('<section id="adoption"><h2>Adoption by team and role</h2><div class="grid">'
            f'<div><h3>Active in the last 30 days, of the members of each {e(kind)}</h3>'
            f'{_adopters_chart(a.units, f"Active members per {kind}, last 30 days")}</div>'
            f'<div><h3>Active in the last 30 days, of the people in each role</h3>'
            f'{_adopters_chart(a.roles, "Active people per role, last 30 days")}</div>'
            f"</div>{cut}</section>")


def _contract(r: AccountReview) -> str:
    c = r.contract
    rows = "".join(
        f"<tr><td>{e(s.product or s.subscription_id)}</td><td>{e(s.plan)}</td>"
        f'<td class="n">{number(s.seats)}</td><td class="n">{number(s.arr)}</td>'
        f"<td>{day(s.end) if s.end else 'open-ended'}</td></tr>" for s in c.subscriptions)
    table = ('<table><thead><tr><th>Product</th><th>Plan</th><th class="n">Seats</th>'
             '<th class="n">ARR</th><th>Ends</th></tr></thead>'
             f"<tbody>{rows}</tbody></table>" if rows
             else '<p class="note">No subscription in force.</p>')
    bars = [Bar(words(x.entitlement), None if x.alignment is None else x.alignment * 100, 100,
                f"{number(x.usage)} of {number(x.limit)}") for x in c.entitlements]
    chart = bar_chart(bars, "Use of each entitlement (% of the limit)")
    seats = (f"{c.mau} active people on {c.seats} seats ({percent(c.seat_utilization)})"
             if c.seats else f"{c.mau} active people; no seats in force")
    return ('<section id="contract"><h2>Seats and contract</h2><div class="grid">'
            f"<div>{table}<p>{e(seats)}.</p></div>"
            f"<div><h3>Use of each entitlement (of the limit)</h3>"
            f"{chart or '<p class=note>No entitlements recorded.</p>'}</div></div></section>")


def _health(r: AccountReview) -> str:
    h = r.health
    if h is None or h.score is None:
        return ('<section id="health"><h2>Health</h2><p>No health score: nothing the score '
                "reads is known for this account yet.</p></section>")
    trend = ("" if h.trend is None else f", {h.trend:+.0f} "
             f"{'point' if round(abs(h.trend)) == 1 else 'points'} in 30 days")
    bars = [Bar(f.label, f.contribution, f.weight * 100,
                f"{number(f.contribution, 1)} of {number(f.weight * 100)}")
            for f in sorted(h.factors, key=lambda f: -f.weight) if f.weight > 0]
    lever = next((f for f in h.factors if f.name == h.lever), None)
    missing = [f.label for f in h.factors if f.name in h.missing]
    return ('<section id="health"><h2>Health</h2><div class="grid"><div>'
            f'<p>Score <strong>{number(h.score)}</strong> of 100: '
            f'<strong class="grade-{e(h.grade)}" id="health-grade">{e(h.grade)}</strong>'
            f"{e(trend)}.</p>"
            + (f'<p id="health-lever" data-value="{e(h.lever)}">Biggest lever: '
               f"<strong>{e(lever.label)}</strong> (up to +{number(h.lever_gain)} points).</p>"
               if lever else "")
            + (f'<p class="note">Not known, so left out: {e(", ".join(missing))}.</p>'
               if missing else "")
            + '<p class="note">Each bar: the points a factor gives, of the points it can give.'
            "</p></div><div><h3>What makes up the score</h3>"
            f'{bar_chart(bars, "Points per health factor", width=360, label_width=180)}</div></div></section>')


def _risks(r: AccountReview) -> str:
    items = []
    churn = r.churn
    if churn.probability is not None:
        drivers = ", ".join(f"{d.label} ({'raises' if d.contribution > 0 else 'lowers'} it)"
                            for d in churn.drivers[:3])
        items.append(f'<li>Risk of not continuing within {churn.horizon_days} days: '
                     f'<strong id="churn-probability" data-value="{data(churn.probability)}">'
                     f"{percent(churn.probability)}</strong>"
                     + (f"; what weighs most: {e(drivers)}" if drivers else "") + ".</li>")
    else:
        notes = " ".join(churn.notes) or "no prediction."
        items.append(f'<li id="churn-probability" data-value="">No churn prediction: '
                     f'<span class="note">{e(notes)}</span></li>')
    items.append(f"<li>{_champion_text(r)}</li>")
    for s in r.signals:
        if s.kind == "contraction":
            items.append(f'<li data-signal="{e(s.signal)}">Unused licences: {e(s.detail)}.</li>')
    return f'<section id="risks"><h2>Risks to watch</h2><ul>{"".join(items)}</ul></section>'


def _champion_text(r: AccountReview) -> str:
    c = r.champion
    if c is None or c.status == "none":
        return '<span id="champion" data-value="none">No champion: nobody was active lately.</span>'
    who = e(c.name or c.user_id) + (f" ({e(c.role)})" if c.role else "")
    share = f", {percent(c.share_of_activity)} of the activity" if c.share_of_activity else ""
    state = {"active": "active", "quiet": f"quiet since {day(c.last_seen)}",
             "left": f"left on {day(c.left_on)}"}.get(c.status, c.status)
    return (f'<span id="champion" data-value="{e(c.status)}">Champion: {who}{e(share)}; '
            f"{e(state)}.</span>")


def _steps(r: AccountReview) -> str:
    steps = "".join(f'<li data-rule="{e(s.rule)}"><strong>{e(s.title)}.</strong> {e(s.detail)}</li>'
                    for s in r.next_steps)
    return ('<section id="next-steps"><h2>Recommended next steps</h2>'
            + (f'<ol class="steps">{steps}</ol>' if steps
               else "<p>Nothing calls for action: keep the regular check-ins.</p>")
            + "</section>")


def _footer(r: AccountReview) -> str:
    return (f"<footer>Figures as of the end of {day(r.as_of)} (UTC), from product usage, the "
            "contract and the CRM. Active: used the product in the last 30 days. Health: 0–100 "
            "from weighted factors. Next steps follow documented rules.</footer>")
