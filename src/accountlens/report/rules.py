"""The account review's recommended next steps: explicit rules over the report's figures, each a
small function that returns a step when its condition holds (docs/report.md lists them, with
their conditions; a test keeps that list complete). Steps appear in the order of `RULES`:
time-bound and relationship risks first, then health, value and adoption, then growth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from accountlens.report.wording import factor_action, factor_label, long_day, words

if TYPE_CHECKING:
    from accountlens.report.account_review import AccountReview, NextStep

RENEWAL_DAYS = 90  # a renewal this close needs preparing now
CHURN_ALERT = 0.2  # a churn probability at least this high calls for an executive check-in
LEVER_MIN_GAIN = 5.0  # health points the biggest lever must be worth to be recommended
ENABLEMENT_TEAMS = 3  # the least active teams named for enablement
SPONSOR_CANDIDATES = 3  # the most active people named as possible new sponsors


@dataclass(frozen=True)
class Rule:
    name: str
    when: str  # the condition, in words (docs/report.md)
    step: Callable[[AccountReview], NextStep | None]


RULES: list[Rule] = []


def rule(name: str, when: str) -> Callable:
    def add(step: Callable[[AccountReview], NextStep | None]) -> Callable:
        RULES.append(Rule(name, when, step))
        return step
    return add


def next_steps(review: AccountReview) -> list[NextStep]:
    """The steps of every rule whose condition holds, in the order of RULES."""
    return [step for r in RULES if (step := r.step(review)) is not None]


def _step(name: str, title: str, detail: str) -> NextStep:
    from accountlens.report.account_review import NextStep

    return NextStep(rule=name, title=title, detail=detail)


def _people(review: AccountReview, leaving: str | None) -> str:
    named = [p for p in review.most_active if p.user_id != leaving][:SPONSOR_CANDIDATES]
    return ", ".join(f"{p.name or p.user_id}" + (f" ({p.role})" if p.role else "")
                     for p in named)


@rule("renewal_soon", f"a subscription in force ends within {RENEWAL_DAYS} days of the as-of day")
def renewal_soon(review: AccountReview) -> NextStep | None:
    days = review.days_to_renewal
    if days is None or days > RENEWAL_DAYS:
        return None
    return _step("renewal_soon", f"Prepare the renewal of {long_day(review.renewal_date)}",
                 f"The contract renews in {days} days. Review the value realised and the "
                 "adoption below with the sponsor, and agree on the scope of the renewal.")


@rule("new_sponsor", "the champion (the most active person) has left the account or gone quiet "
                     "(`accountlens champions`)")
def new_sponsor(review: AccountReview) -> NextStep | None:
    champion = review.champion
    if champion is None or champion.status not in ("left", "quiet"):
        return None
    who = champion.name or champion.user_id
    what = (f"{who} left on {long_day(champion.left_on)}" if champion.status == "left"
            else f"{who} has been quiet since {long_day(champion.last_seen)}")
    candidates = _people(review, champion.user_id)
    return _step("new_sponsor", "Find a new sponsor",
                 f"{what}. " + (f"The most active people now: {candidates}." if candidates
                                else "Nobody else has been active in the last 30 days."))


@rule("churn_risk", f"the churn model predicts a probability of at least {CHURN_ALERT:.0%} "
                    "within its horizon (`accountlens predict`)")
def churn_risk(review: AccountReview) -> NextStep | None:
    churn = review.churn
    if churn.probability is None or churn.probability < CHURN_ALERT:
        return None
    raising = [d.label for d in churn.drivers if d.contribution > 0][:3]
    return _step("churn_risk", "Hold an executive check-in",
                 f"The risk of not continuing within {churn.horizon_days} days is "
                 f"{churn.probability:.0%}" + (f"; what weighs most: {', '.join(raising)}."
                                               if raising else "."))


@rule("health_lever", f"the health score's biggest lever would add at least {LEVER_MIN_GAIN:g} "
                      "points at full marks (`accountlens health`)")
def health_lever(review: AccountReview) -> NextStep | None:
    health = review.health
    if health is None or not health.lever or (health.lever_gain or 0) < LEVER_MIN_GAIN:
        return None
    return _step("health_lever", f"Improve: {factor_label(health.lever).lower()}",
                 f"It is the factor that would raise the health score most (up to "
                 f"+{health.lever_gain:.0f} points): {factor_action(health.lever)}.")


@rule("reach_value", "a customer has not yet realised value: fewer than `metrics.min_users` "
                     "people have used a value feature (`accountlens value`)")
def reach_value(review: AccountReview) -> NextStep | None:
    value = review.value
    if not value.customer or value.value_reached_on is not None:
        return None
    missing = value.needed_users - value.value_users
    return _step("reach_value", "Get to first value",
                 f"{value.value_users} of the {value.needed_users} people needed have used a key "
                 f"feature ({', '.join(value.value_events)}); help {missing} more get there.")


@rule("enable_teams", "the `unused_seats` signal fires (`accountlens signals`): enablement for "
                      f"the {ENABLEMENT_TEAMS} teams with the lowest share of active members")
def enable_teams(review: AccountReview) -> NextStep | None:
    signal = next((s for s in review.signals if s.signal == "unused_seats"), None)
    if signal is None:
        return None
    units = [u for u in review.adoption.units if u.members > 0]
    quiet = sorted(units, key=lambda u: (u.active_30d / u.members, -u.members, u.name))
    named = ", ".join(f"{u.name} ({u.active_30d} of {u.members} active)"
                      for u in quiet[:ENABLEMENT_TEAMS])
    kind = words(review.adoption.unit_kind or "team")
    return _step("enable_teams", "Run enablement for the least active teams",
                 f"{signal.detail}." + (f" Start with the {kind}s {named}." if named else ""))


@rule("expansion", "the `seat_cap` or `over_entitlement` signal fires (`accountlens signals`)")
def expansion(review: AccountReview) -> NextStep | None:
    fired = [s for s in review.signals if s.signal in ("seat_cap", "over_entitlement")]
    if not fired:
        return None
    return _step("expansion", "Talk about expanding the contract",
                 "; ".join(s.detail for s in fired) + ".")


@rule("welcome_teams", "the `new_unit` signal fires: a team or department started using the "
                       "product lately (`accountlens signals`)")
def welcome_teams(review: AccountReview) -> NextStep | None:
    signal = next((s for s in review.signals if s.signal == "new_unit"), None)
    if signal is None:
        return None
    return _step("welcome_teams", "Onboard the new teams",
                 f"{signal.detail}: offer them an onboarding session and a contact person.")
