"""The simulated customer base of the demo: accounts, org units, people, contracts and outcomes.

Every account gets hidden traits (health, the planted training → plan-approval habit, its
champion's fate) that drive both its product activity and the outcome at contract end.
Times are float seconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

import numpy as np

from accountlens.model.memberships import unit_id as sdk_unit_id

DAY = 86_400.0
END = dt.datetime(2025, 7, 1, tzinfo=dt.UTC).timestamp()  # data ends just before this instant
START = END - 365 * DAY

INDUSTRIES = ("software", "financial services", "healthcare", "retail", "manufacturing",
              "logistics", "education", "public sector")
REGIONS = {"NA": -5, "EMEA": 1, "APAC": 8, "LATAM": -3}  # region → typical UTC offset (hours)
NAME_STEMS = ("Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Acme", "Vandelay", "Stark",
              "Tyrell", "Hooli", "Soylent", "Cyberdyne", "Wonka", "Oscorp", "Gringotts", "Monarch",
              "Aperture", "Massive", "Blue Sun", "Wayland", "Dunder", "Sirius", "Nakatomi", "Ollivander",
              "Prestige", "Octan", "Virtucon", "Kramerica", "Zorg", "Bluth")
NAME_KINDS = ("Logistics", "Health", "Bank", "Retail", "Systems", "Foods", "Energy", "Labs",
              "Insurance", "Partners", "Manufacturing", "Media")
FIRST_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
               "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara",
               "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Aaron", "Bea", "Carlos", "Dana")
LAST_NAMES = ("Smith", "Garcia", "Chen", "Müller", "Okafor", "Rossi", "Kowalski", "Tanaka",
              "Silva", "Novak", "Haddad", "Johansson", "Patel", "Dubois", "Kim", "Larsen",
              "Moreau", "Nguyen", "Ortiz", "Schmidt", "Walsh", "Yilmaz", "Andersen", "Brown")
BUSINESS_UNITS = ("Corporate", "Commercial", "Products", "International")
DEPARTMENTS = {
    "Finance": ("FP&A", "Controlling", "Accounts Payable"),
    "Sales": ("Inside Sales", "Enterprise Sales", "Sales Ops"),
    "Operations": ("Supply Chain", "Facilities", "Service Delivery"),
    "Marketing": ("Growth", "Brand", "Marketing Ops"),
    "Engineering": ("Platform", "Data", "Applications"),
    "People": ("Recruiting", "Learning", "People Ops"),
    "Legal": ("Contracts", "Compliance"),
    "Customer Success": ("Onboarding", "Support", "Renewals"),
    "Procurement": ("Sourcing", "Vendor Management"),
}
CONSULTANCY_DOMAINS = ("brightpath-consulting.com", "lumen-advisory.com")
PARTNER_DOMAINS = ("agency-north.io", "datafirm.co", "freelance-studio.net")
PLANS = ("starter", "team", "business", "enterprise")
SEAT_PRICE = {"starter": 180.0, "team": 300.0, "business": 450.0, "enterprise": 600.0}
API_QUOTA = {"starter": 50, "team": 80, "business": 150, "enterprise": 300}
ROLES = ("admin", "editor", "approver", "viewer", "trainer", "executive", "analyst")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class Unit:
    unit_id: str
    account_id: str
    kind: str
    name: str
    parent: Unit | None = None

    def lineage(self) -> dict[str, str]:
        """{kind: name} of this unit and its ancestors (the SDK's org traits)."""
        found: dict[str, str] = {}
        unit: Unit | None = self
        while unit is not None:
            found[unit.kind] = unit.name
            unit = unit.parent
        return found


@dataclass
class Stint:
    """One membership row: the user holds `role` in `team` of `account_id` during [start, end)."""
    account_id: str
    team: Unit
    role: str
    start: float
    end: float | None = None


@dataclass
class User:
    user_id: str
    email: str
    name: str
    engagement: float
    utc_offset: int
    clock_skew: float  # seconds the user's device clock is off; a few devices are far off
    stints: list[Stint] = field(default_factory=list)
    dormant: bool = False
    quiet_from: float | None = None  # stops using the product (champion gone quiet)
    invited_by: str | None = None
    is_consultant: bool = False

    @property
    def joined(self) -> float:
        return min(s.start for s in self.stints)


@dataclass
class Subscription:
    subscription_id: str
    account_id: str
    plan: str
    seats: int
    arr: float
    start: float
    end: float
    status: str
    entitlements: dict


@dataclass
class Outcome:
    account_id: str
    kind: str
    at: float
    arr_delta: float
    source: str


@dataclass
class Account:
    account_id: str
    name: str
    domain: str
    industry: str
    region: str
    employees: int
    plan: str
    created_at: float
    parent_account_id: str | None
    crm_roles: bool  # memberships come from the CRM; otherwise only from SDK identify/group
    group_context: bool  # the app's SDK sets context.groupId on every event
    health: float
    modules: list[str]
    api_quota: int
    units: list[Unit] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    has_sequence: bool = False
    champion: User | None = None
    champion_fate: str = "stays"  # stays | leaves | quiet
    active_until: float = END
    trend_kind: str = "steady"  # steady | decline | shrink | grow
    trend_at: float = END  # the contract end the trend leads up to
    referred_by: str | None = None  # user id of the external inviter
    planned_outcome: str | None = None  # the outcome at the contract end inside the window

    @property
    def teams(self) -> list[Unit]:
        return [u for u in self.units if u.kind == "team"]

    def activity_factor(self, t: np.ndarray) -> np.ndarray:
        """Relative activity over time: declines before churn, grows before expansion."""
        ramp = np.clip((t - (self.trend_at - 150 * DAY)) / (150 * DAY), 0.0, 1.0)
        target = {"steady": 1.0, "decline": 0.25, "shrink": 0.6, "grow": 1.35}[self.trend_kind]
        factor = 1.0 + (target - 1.0) * ramp
        if self.trend_kind == "shrink":
            factor = np.where(t >= self.trend_at, 0.7, factor)
        return np.where(t < self.active_until, factor, 0.0)


@dataclass
class World:
    accounts: list[Account]
    consultants: list[User]


class _Names:
    """Unique company and person names drawn from the seeded generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.companies: set[str] = set()
        self.emails: set[str] = set()

    def company(self) -> str:
        for attempt in range(1000):
            stem = NAME_STEMS[self.rng.integers(len(NAME_STEMS))]
            kind = NAME_KINDS[self.rng.integers(len(NAME_KINDS))]
            name = f"{stem} {kind}" if attempt < 50 else f"{stem} {kind} {attempt}"
            if name not in self.companies:
                self.companies.add(name)
                return name
        raise RuntimeError("ran out of company names")

    def person(self, domain: str) -> tuple[str, str]:
        first = FIRST_NAMES[self.rng.integers(len(FIRST_NAMES))]
        last = LAST_NAMES[self.rng.integers(len(LAST_NAMES))]
        local = slug(f"{first}.{last}".replace("ü", "ue")).replace("-", ".")
        email, n = f"{local}@{domain}", 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return f"{first} {last}", email


def _org_units(rng: np.random.Generator, account: Account) -> None:
    """Business units → departments → teams; every account has a Finance department."""
    n_bu = {"starter": 1, "team": 1, "business": 2, "enterprise": 3}[account.plan]
    n_dept = {"starter": 2, "team": 3, "business": 4, "enterprise": 6}[account.plan]
    others = [d for d in DEPARTMENTS if d != "Finance"]
    chosen = ["Finance"] + [others[i] for i in rng.permutation(len(others))[: n_dept - 1]]
    counter = 0

    def add(kind: str, name: str, parent: Unit | None) -> Unit:
        nonlocal counter
        counter += 1
        uid = (f"{account.account_id}-u{counter:02d}" if account.crm_roles
               else sdk_unit_id(account.account_id, kind, name))
        unit = Unit(uid, account.account_id, kind, name, parent)
        account.units.append(unit)
        return unit

    bus = [add("business_unit", name, None) for name in BUSINESS_UNITS[:n_bu]]
    for index, dept_name in enumerate(chosen):
        dept = add("department", dept_name, bus[index % n_bu])
        names = DEPARTMENTS[dept_name]
        for team_name in names[: 1 + int(rng.random() < 0.5 and account.plan != "starter")]:
            add("team", team_name, dept)


def _role_mix(n: int) -> list[str]:
    roles = ["admin", "executive", "trainer", "approver", "editor", "viewer"]
    if n > 15:
        roles += ["admin", "approver"]
    if n > 30:
        roles += ["executive", "approver"]
    rest = n - len(roles)
    editors, analysts = round(rest * 0.35), round(rest * 0.2)
    return roles + ["editor"] * editors + ["analyst"] * analysts + ["viewer"] * (rest - editors - analysts)


def _people(rng: np.random.Generator, names: _Names, account: Account,
            contract_end: float | None) -> None:
    """Initial staff, later joiners, leavers, role and team changes, the champion's fate."""
    base = {"starter": 5, "team": 11, "business": 20, "enterprise": 34}[account.plan]
    n_initial = max(6, int(base * rng.lognormal(0.0, 0.25)))
    growth = 0.15 + 0.25 * sigmoid(account.health) + (0.2 if account.trend_kind == "grow" else 0.0)
    n_joiners = int(rng.poisson(n_initial * growth))
    teams = account.teams
    finance_teams = [t for t in teams if t.lineage().get("department") == "Finance"]
    region_offset = REGIONS[account.region]
    dormant_p = 0.45 * sigmoid(-1.2 * account.health)
    roles = _role_mix(n_initial) + [
        str(rng.choice(["editor", "viewer", "analyst", "viewer", "approver"])) for _ in range(n_joiners)
    ]
    first_approver_seen = False
    window_start = max(START, account.created_at)
    for index, role in enumerate(roles):
        if index < n_initial:
            joined = account.created_at + (0.0 if index == 0 else float(rng.uniform(0, 45)) * DAY)
            if joined < START:  # existing customers: initial staff joined before the window
                joined = min(joined, START - float(rng.uniform(1, 90)) * DAY)
        else:
            joined = float(rng.uniform(window_start + 10 * DAY, END - 5 * DAY))
        if role == "approver" and not first_approver_seen and finance_teams:
            team, first_approver_seen = finance_teams[0], True
        else:
            team = teams[rng.integers(len(teams))]
        domain = "gmail.com" if rng.random() < 0.04 else account.domain
        full_name, email = names.person(domain)
        user = User(
            user_id=f"u-{account.account_id[4:]}-{index + 1:03d}", email=email, name=full_name,
            engagement=float(rng.lognormal(0.0, 0.5)) * (0.6 + 0.5 * sigmoid(account.health)),
            utc_offset=region_offset + int(rng.integers(-1, 2)),
            clock_skew=(float(rng.choice([-1, 1]) * rng.uniform(300, 4 * 3600))
                        if rng.random() < 0.05 else float(rng.normal(0, 0.5))),
            dormant=index > 3 and rng.random() < dormant_p,
        )
        stint = Stint(account.account_id, team, role, joined)
        user.stints.append(stint)
        # later history: role changes, team moves, leavers
        window_from = max(joined, START) + 30 * DAY
        if window_from < END - 30 * DAY:
            change_at = float(rng.uniform(window_from, END - 10 * DAY))
            draw = rng.random()
            promotions = {"viewer": "editor", "editor": "approver", "analyst": "editor"}
            if draw < 0.09 and role in promotions:
                stint.end = change_at
                user.stints.append(Stint(account.account_id, team, promotions[role], change_at))
            elif draw < 0.15 and len(teams) > 1 and index > 3:
                stint.end = change_at
                other = teams[(teams.index(team) + 1) % len(teams)]
                user.stints.append(Stint(account.account_id, other, role, change_at))
            elif draw < 0.23 and index > 3:
                stint.end = change_at
        account.users.append(user)
    champion = account.users[0]
    champion.engagement = max(champion.engagement, 1.0) * 2.5
    champion.dormant = False
    account.champion = champion
    if account.champion_fate != "stays":
        anchor = contract_end if contract_end is not None and contract_end < END else END
        when = max(anchor - float(rng.uniform(40, 140)) * DAY, START + 20 * DAY)
        if account.champion_fate == "leaves":
            champion.stints[-1].end = when
            successor = next((u for u in account.users[4:] if u.stints[-1].role == "editor"
                              and u.stints[-1].end is None and u.joined < when), None)
            if successor is not None:  # someone else becomes admin, less engaged
                successor.stints[-1].end = when + DAY
                successor.stints.append(Stint(account.account_id, successor.stints[-1].team,
                                              "admin", when + DAY))
        else:
            champion.quiet_from = when


def _contracts(rng: np.random.Generator, account: Account, contract_end: float | None,
               is_new: bool) -> None:
    """Subscriptions, and the outcome at the end of each contract that ends in the window."""
    seats = max(5, int(round(len(account.users) * rng.uniform(0.85, 1.3))) + 1)
    price = SEAT_PRICE[account.plan] * float(rng.uniform(0.85, 1.1))
    entitlements = {"api_calls": account.api_quota, "modules": account.modules}
    if account.api_quota == 0:
        entitlements = {"modules": account.modules}
    sid = f"sub-{account.account_id[4:]}"

    def subscribe(n: int, plan: str, seat_count: int, arr: float, start: float, end: float,
                  status: str, ents: dict) -> Subscription:
        sub = Subscription(f"{sid}-{n}", account.account_id, plan, seat_count, round(arr, 2),
                           start, end, status, ents)
        account.subscriptions.append(sub)
        return sub

    if is_new:
        trial_end = account.created_at + 30 * DAY
        subscribe(1, "trial", seats, 0.0, account.created_at, trial_end, "ended",
                  {"modules": account.modules})
        if account.trend_kind == "decline":  # trial never converted
            account.outcomes.append(Outcome(account.account_id, "churn", trial_end, 0.0, "crm"))
            account.active_until = trial_end
            return
        arr = seats * price
        subscribe(2, account.plan, seats, arr, trial_end, trial_end + 365 * DAY, "active", entitlements)
        account.outcomes.append(Outcome(account.account_id, "conversion", trial_end, arr, "crm"))
        return
    assert contract_end is not None
    start = contract_end - 365 * DAY
    arr = seats * price
    if start - 365 * DAY > account.created_at:
        subscribe(0, account.plan, seats, arr * 0.9, start - 365 * DAY, start, "renewed", entitlements)
    if contract_end >= END:
        subscribe(1, account.plan, seats, arr, start, contract_end, "active", entitlements)
        return
    kind = account.planned_outcome
    assert kind is not None  # planned for every contract that ends inside the window
    status = "churned" if kind == "churn" else "renewed"
    subscribe(1, account.plan, seats, arr, start, contract_end, status, entitlements)
    if kind == "churn":
        delta = -arr
        account.active_until = contract_end + float(rng.uniform(0, 5)) * DAY
    else:
        factor = {"renewal": float(rng.uniform(1.0, 1.05)), "expansion": float(rng.uniform(1.2, 1.6)),
                  "contraction": float(rng.uniform(0.55, 0.85))}[kind]
        new_seats = max(3, int(round(seats * factor)))
        new_ents = dict(entitlements)
        if kind == "expansion" and "workflows" not in account.modules:
            new_ents["modules"] = account.modules + ["workflows"]
        new_arr = new_seats * price * (1.03 if kind != "contraction" else 1.0)
        subscribe(2, account.plan, new_seats, new_arr, contract_end, contract_end + 365 * DAY,
                  "active", new_ents)
        delta = new_arr - arr
    account.outcomes.append(Outcome(account.account_id, kind, contract_end, round(delta, 2), "billing"))


def _outcome_kind(score: float, health: float) -> str:
    """Retention follows the behaviour score; only already thriving accounts expand."""
    if score > -0.3:
        return "expansion" if health > 1.0 and score > 1.0 else "renewal"
    if score > -1.0:
        return "contraction"
    return "churn"


def build_world(rng: np.random.Generator, n_accounts: int) -> World:
    names = _Names(rng)
    accounts: list[Account] = []
    for index in range(n_accounts):
        account_id = f"acc-{index + 1:03d}"
        is_new = index >= 3 and rng.random() < 0.2
        parent = None
        if index >= 4 and rng.random() < 0.12:
            candidates = [a for a in accounts if a.parent_account_id is None]
            parent = candidates[rng.integers(len(candidates))] if candidates else None
        region = list(REGIONS)[rng.integers(len(REGIONS))]
        if parent is not None:
            name = f"{parent.name} {region}"
            names.companies.add(name)
            domain = f"{slug(parent.name)}-{region.lower()}.com"
            industry = parent.industry
        else:
            name = names.company()
            domain = f"{slug(name)}.com"
            industry = INDUSTRIES[rng.integers(len(INDUSTRIES))]
        employees = int(np.clip(rng.lognormal(math.log(400), 1.3), 12, 40_000))
        plan_index = int(np.clip(np.searchsorted([60, 300, 2000], employees) + rng.integers(-1, 2), 0, 3))
        plan = PLANS[plan_index]
        health = float(rng.normal(0.0, 1.0))
        modules = ["reports", "dashboards", "planning"]
        if plan_index >= 1 or rng.random() < 0.3:
            modules.append("workflows")
        has_api = rng.random() < (0.5 if plan_index >= 2 else 0.15)
        if has_api:
            modules.append("api")
        if is_new:
            created = START + float(rng.uniform(20, 300)) * DAY
            contract_end = None
        else:
            contract_end = START + float(rng.uniform(60, 520)) * DAY
            contract_end = math.floor(contract_end / DAY) * DAY
            created = contract_end - 365 * DAY * int(rng.integers(1, 4)) - float(rng.uniform(1, 20)) * DAY
        account = Account(
            account_id=account_id, name=name, domain=domain, industry=industry, region=region,
            employees=employees, plan=plan, created_at=created,
            parent_account_id=parent.account_id if parent else None,
            crm_roles=index % 6 != 2, group_context=index % 3 == 0, health=health,
            modules=modules, api_quota=API_QUOTA[plan] if has_api else 0,
        )
        # hidden behaviour that drives both activity and the outcome
        account.has_sequence = rng.random() < sigmoid(0.9 * health - 0.2)
        fate_draw = rng.random()
        risk = 0.12 + 0.1 * sigmoid(-health)
        account.champion_fate = ("leaves" if fate_draw < risk else
                                 "quiet" if fate_draw < risk + 0.1 else "stays")
        score = (0.6 * health + 2.2 * account.has_sequence - 0.5
                 - 1.5 * (account.champion_fate != "stays") + float(rng.normal(0, 0.5)))
        if is_new:
            account.trend_kind = "decline" if rng.random() < 0.2 else "steady"
            account.trend_at = created + 30 * DAY
        elif contract_end is not None and contract_end < END:  # (None only for new accounts)
            kind = _outcome_kind(score, health)
            account.trend_kind = {"churn": "decline", "contraction": "shrink",
                                  "expansion": "grow", "renewal": "steady"}[kind]
            account.trend_at = contract_end
        else:
            kind = None
        account.planned_outcome = None if is_new else kind
        _org_units(rng, account)
        _people(rng, names, account, contract_end)
        _contracts(rng, account, contract_end, is_new)
        accounts.append(account)
    _referrals(rng, accounts)
    consultants = _consultants(rng, names, accounts)
    return World(accounts, consultants)


def _referrals(rng: np.random.Generator, accounts: list[Account]) -> None:
    """Some new accounts were referred: a user elsewhere invited their first admin earlier."""
    for account in accounts:
        if account.created_at <= START + 20 * DAY or rng.random() < 0.4:
            continue
        inviters = [u for a in accounts if a is not account and a.created_at < account.created_at - 30 * DAY
                    and a.active_until > account.created_at for u in a.users[:6] if not u.dormant]
        if inviters:
            inviter = inviters[rng.integers(len(inviters))]
            account.referred_by = inviter.user_id
            account.users[0].invited_by = inviter.user_id


def _consultants(rng: np.random.Generator, names: _Names, accounts: list[Account]) -> list[User]:
    """A few outside consultants who work in two customer accounts at once."""
    crm = [a for a in accounts if a.crm_roles and a.created_at < START and a.active_until >= END]
    found = []
    for index in range(max(1, len(accounts) // 20)):
        if len(crm) < 2:
            break
        first, second = (crm[i] for i in rng.choice(len(crm), 2, replace=False))
        full_name, email = names.person(CONSULTANCY_DOMAINS[index % len(CONSULTANCY_DOMAINS)])
        user = User(f"c-{index + 1:03d}", email, full_name, engagement=1.3,
                    utc_offset=REGIONS[first.region], clock_skew=0.0)
        start = START + float(rng.uniform(10, 120)) * DAY
        for account in (first, second):
            team = account.teams[rng.integers(len(account.teams))]
            user.stints.append(Stint(account.account_id, team, "analyst", start))
            account.users.append(user)
            start += float(rng.uniform(5, 40)) * DAY
        user.is_consultant = True
        found.append(user)
    return found
