"""The report's words for the product's names: health factors and prediction features in
business terms, and what a customer team can do to move each factor. A name not listed here (a
configured factor such as `nps`, a `trait_…` feature) is shown as its name in words."""

from __future__ import annotations

import datetime as dt

FACTOR_LABELS = {
    "seat_utilization": "Licensed seats in use",
    "active_user_trend": "Growth in active people",
    "breadth": "Breadth of features used",
    "stickiness": "Regular (daily) use",
    "activation": "Reached first value",
    "champion": "Champion active",
    "contract_alignment": "Use of what was purchased",
    "open_stalls": "Shared work flowing",
}

# What raises each built-in factor: the health lever's next step says it.
FACTOR_ACTIONS = {
    "seat_utilization": "invite the licensed people who have not started yet and run a short "
                        "enablement session for them",
    "active_user_trend": "bring back people who used it before and onboard the newcomers of "
                         "each team",
    "breadth": "show the teams the features they have not tried that fit their work",
    "stickiness": "build it into a weekly routine: a recurring review, shared reports, alerts",
    "activation": "get a second person to complete a key workflow (create, share or approve "
                  "a report)",
    "champion": "name an internal owner who drives adoption and meets us regularly",
    "contract_alignment": "put the purchased modules and quotas to work in a pilot",
    "open_stalls": "clear the approvals and hand-offs that are waiting, and agree who owns them",
}

FEATURE_LABELS = {
    "arr": "contract value (ARR)",
    "seats": "seats purchased",
    "mau": "monthly active people",
    "active_user_trend": "change in active people",
    "events_30d": "activity in the last 30 days",
    "event_trend": "change in activity",
    "seat_utilization": "share of seats in use",
    "breadth": "breadth of features used",
    "depth": "activity per active person",
    "stickiness": "regular (daily) use",
    "activated": "reached first value",
    "time_to_value_days": "days to first value",
    "adoption_velocity": "early adoption pace",
    "champion_present": "champion active",
    "champion_share": "champion's share of activity",
    "contract_alignment": "use of what was purchased",
    "quota_alignment_max": "quota use",
    "open_stalls": "stalled shared work",
    "open_stalls_per_user": "stalled shared work per person",
    "members": "members",
    "users_left_90d": "people who left (90 days)",
    "days_since_active": "days since last activity",
    "tenure_days": "time as a customer",
    # the health score's drivers are its factors
    "activation": "reached first value",
    "champion": "champion active",
}


def words(name: str) -> str:
    """`trait_nps` → `nps`, `support_tickets` → `support tickets`."""
    return name.removeprefix("trait_").replace("_", " ")


def factor_label(name: str) -> str:
    return FACTOR_LABELS.get(name) or words(name).capitalize()


def feature_label(name: str) -> str:
    return FEATURE_LABELS.get(name) or words(name)


def factor_action(name: str) -> str:
    return FACTOR_ACTIONS.get(name) or f"work on {words(name)} with the customer"


def long_day(value: dt.date | None) -> str:
    """`6 September 2025` (– when missing)."""
    return "–" if value is None else f"{value.day} {value:%B %Y}"
