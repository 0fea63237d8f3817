"""The simulated customer base of the demo: accounts, org units, people and how often they use
the product.

Two years of history: every account is acquired inside it (most within the first year, so their
first annual contract ends inside it too). Hidden traits (health, seat headroom, momentum, the
champion's fate, how much shared work stalls, the training → plan-approval habit) shape what
people do; simulator.py then draws each contract's outcome from that behaviour (`Behaviour`,
`expected_mau`) and lets it shape what follows. Times are float seconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

import numpy as np

from accountlens.model.memberships import unit_id as sdk_unit_id

DAY, HOUR = 86_400.0, 3_600.0
END = dt.datetime(2025, 7, 1, tzinfo=dt.UTC).timestamp()  # data ends just before this instant
START = dt.datetime(2023, 7, 1, tzinfo=dt.UTC).timestamp()  # tracking starts here: two years
CONTRACT_DAYS, TRIAL_DAYS = 365, 30  # contracts are annual; some accounts start with a trial
RAMP_DAYS = 150  # a declining or growing account changes over this long before a contract end
LEAD_DAYS = 30  # the renewal decision follows behaviour as it stood this long before the end
# Acquisition, in days after START: an early account's first contract ends inside the history
# (a renewal decision); the rest arrive later in the first 18 months. The share is fixed by the
# account's index (18 of every 25 early), so the number of decisions does not depend on the seed.
EARLY_ACQUISITION, LATE_ACQUISITION, EARLY_OF_25 = (3.0, 345.0), (345.0, 548.0), 18

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
# role → (chance of being active on a working day, mean events in an active session)
# (thinner than a real product's, so two years of 60 accounts load in about 15 s)
ROLE_ACTIVITY = {
    "admin": (0.13, 3.0), "executive": (0.07, 2.0), "trainer": (0.09, 2.5),
    "approver": (0.10, 2.5), "editor": (0.13, 3.5), "analyst": (0.13, 3.5), "viewer": (0.075, 2.0),
}
WEEKEND_USE, DORMANT_USE, MAX_DAY_CHANCE = 0.08, 0.04, 0.92
MOMENTUM = {"decline": 0.3, "steady": 1.0, "grow": 1.3}  # usage reached by the contract end


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def day_start(t: float) -> float:
    return math.floor(t / DAY) * DAY


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

    def holds(self, account_id: str, when: float) -> bool:
        return (self.account_id == account_id and self.start <= when
                and (self.end is None or when < self.end))


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
    quiet_from: float | None = None  # stops using the product (gone quiet)
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


@dataclass(frozen=True)
class Behaviour:
    """An account's usage a month before a contract end: what its renewal decision follows."""
    utilization: float  # expected users active in the 30 days then ÷ seats
    user_trend: float  # relative change of those active users since three months earlier
    champion_gone: bool  # the champion left the account or went quiet by then
    stall_share: float  # share of the account's shared work items that stall
    habit: bool  # the trainer → executive planning habit (the planted sequence)


@dataclass
class Account:
    account_id: str
    name: str
    domain: str
    industry: str
    region: str
    employees: int
    plan: str
    created_at: float  # acquisition: the first contract (or trial) starts that day
    parent_account_id: str | None
    crm_roles: bool  # memberships come from the CRM; otherwise only from SDK identify/group
    group_context: bool  # the app's SDK sets context.groupId on every event
    health: float
    modules: list[str]
    api_quota: int
    trial: bool = False
    units: list[Unit] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    has_sequence: bool = False
    champion: User | None = None
    champion_fate: str = "stays"  # stays | leaves | quiet
    initial_staff: int = 0
    headroom: float = 1.25  # seats bought ÷ initial staff
    stall_share: float = 0.07  # chance that a shared work item never reaches its final step
    momentum: str = "steady"  # decline | steady | grow, towards the first paid contract's end
    trend_at: float = END  # that contract end (the first renewal decision)
    factor_after: float = 1.0  # relative usage after a renewal
    behaviour: Behaviour | None = None  # what the renewal decision saw
    active_until: float = END
    referred_by: str | None = None  # user id of the external inviter

    @property
    def teams(self) -> list[Unit]:
        return [u for u in self.units if u.kind == "team"]

    def activity_factor(self, t: np.ndarray) -> np.ndarray:
        """Relative activity over time: declines or grows before the renewal, settles after."""
        ramp = np.clip((t - (self.trend_at - RAMP_DAYS * DAY)) / (RAMP_DAYS * DAY), 0.0, 1.0)
        factor = 1.0 + (MOMENTUM[self.momentum] - 1.0) * ramp
        factor = np.where(t >= self.trend_at, self.factor_after, factor)
        return np.where(t < self.active_until, factor, 0.0)


@dataclass
class World:
    accounts: list[Account]
    names: Names  # draws further unique names (people who join after a renewal)
    consultants: list[User] = field(default_factory=list)


def stint_at(user: User, account: Account, when: float) -> Stint | None:
    return next((s for s in user.stints if s.holds(account.account_id, when)), None)


def day_chance(user: User, account: Account, role: str, days: np.ndarray) -> np.ndarray:
    """Chance that `user`, holding `role` in `account`, uses the product on each of `days`
    (UTC midnights): role, engagement, the account's momentum, weekends, dormancy, quiet."""
    weekday = ((days // DAY).astype(np.int64) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    p = ROLE_ACTIVITY[role][0] * user.engagement * account.activity_factor(days)
    p = p * np.where(weekday < 5, 1.0, WEEKEND_USE) * (DORMANT_USE if user.dormant else 1.0)
    if user.quiet_from is not None:
        p = np.where(days + DAY > user.quiet_from, 0.0, p)
    return np.clip(p, 0.0, MAX_DAY_CHANCE)


def expected_mau(account: Account, at: float) -> float:
    """Expected number of the account's users active in the 30 days before `at`."""
    days = day_start(at) - DAY * np.arange(30)
    total = 0.0
    for user in account.users:
        idle = 1.0
        for stint in user.stints:
            if stint.account_id != account.account_id:
                continue
            held = (days + DAY > stint.start) & (days < (stint.end or math.inf))
            idle *= float(np.prod(1.0 - day_chance(user, account, stint.role, days[held])))
        total += 1.0 - idle
    return total


class Names:
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


def joiner_roles(rng: np.random.Generator, n: int) -> list[str]:
    return [str(rng.choice(["editor", "viewer", "analyst", "viewer", "approver"])) for _ in range(n)]


def leave(user: User, account: Account, when: float) -> bool:
    """End the user's membership of `account` at `when` (later stints dropped); False if they
    hold none then."""
    stint = stint_at(user, account, when)
    if stint is None:
        return False
    stint.end = when
    user.stints = [s for s in user.stints if s.account_id != account.account_id or s.start < when]
    return True


def add_people(rng: np.random.Generator, names: Names, account: Account, roles: list[str],
               times: list[float], dormant_p: float = 0.0) -> list[User]:
    """New users of `account` holding `roles`, joining at `times`; the first approver sits in
    Finance."""
    teams = account.teams
    finance = [t for t in teams if t.lineage().get("department") == "Finance"]
    approvers = sum(s.role == "approver" for u in account.users for s in u.stints)
    added = []
    for role, joined in zip(roles, times):
        index = len(account.users)
        if role == "approver" and not approvers and finance:
            team, approvers = finance[0], 1
        else:
            team = teams[rng.integers(len(teams))]
        domain = "gmail.com" if rng.random() < 0.04 else account.domain
        full_name, email = names.person(domain)
        user = User(
            user_id=f"u-{account.account_id[4:]}-{index + 1:03d}", email=email, name=full_name,
            engagement=float(rng.lognormal(0.0, 0.5)) * (0.6 + 0.5 * sigmoid(account.health)),
            utc_offset=REGIONS[account.region] + int(rng.integers(-1, 2)),
            clock_skew=(float(rng.choice([-1, 1]) * rng.uniform(300, 4 * 3600))
                        if rng.random() < 0.05 else float(rng.normal(0, 0.5))),
            dormant=index > 3 and rng.random() < dormant_p,
        )
        user.stints.append(Stint(account.account_id, team, role, joined))
        account.users.append(user)
        added.append(user)
    return added


def _changes(rng: np.random.Generator, account: Account, user: User, index: int) -> None:
    """Later history of one user: a promotion, a team move or leaving."""
    stint = user.stints[0]
    window_from = stint.start + 30 * DAY
    if window_from >= END - 30 * DAY:
        return
    change_at = float(rng.uniform(window_from, END - 10 * DAY))
    draw, teams = rng.random(), account.teams
    promotions = {"viewer": "editor", "editor": "approver", "analyst": "editor"}
    if draw < 0.09 and stint.role in promotions:
        stint.end = change_at
        user.stints.append(Stint(account.account_id, stint.team, promotions[stint.role], change_at))
    elif draw < 0.15 and len(teams) > 1 and index > 3:
        stint.end = change_at
        other = teams[(teams.index(stint.team) + 1) % len(teams)]
        user.stints.append(Stint(account.account_id, other, stint.role, change_at))
    elif draw < 0.23 and index > 3:
        stint.end = change_at


def _people(rng: np.random.Generator, names: Names, account: Account) -> None:
    """Initial staff, later joiners, leavers, role and team changes, momentum, the champion."""
    base = {"starter": 5, "team": 11, "business": 20, "enterprise": 34}[account.plan]
    n_initial = max(6, int(base * rng.lognormal(0.0, 0.25)))
    account.initial_staff = n_initial
    growth = 0.12 + 0.22 * sigmoid(account.health)  # joiners per initial user and year
    first_join = account.created_at + 10 * DAY
    n_joiners = int(rng.poisson(n_initial * growth * max(END - first_join, 0.0) / (365 * DAY)))
    times = [account.created_at] + [account.created_at + float(rng.uniform(0, 21)) * DAY
                                    for _ in range(n_initial - 1)]
    times += [float(rng.uniform(first_join, END - 5 * DAY)) for _ in range(n_joiners)]
    roles = _role_mix(n_initial) + joiner_roles(rng, n_joiners)
    add_people(rng, names, account, roles, times, dormant_p=0.45 * sigmoid(-1.2 * account.health))
    for index, user in enumerate(account.users):
        _changes(rng, account, user, index)
    champion = account.users[0]
    champion.engagement = max(champion.engagement, 1.0) * 2.5
    champion.dormant = False
    account.champion = champion
    _momentum(rng, names, account)
    if account.champion_fate != "stays":
        when = max(min(account.trend_at, END) - float(rng.uniform(30, 110)) * DAY,
                   account.created_at + 60 * DAY)
        if when < END - 5 * DAY:
            _champion_departs(account, champion, when)


def _momentum(rng: np.random.Generator, names: Names, account: Account) -> None:
    """In the months before the first contract end a declining account loses active users
    (they go quiet or leave); a growing one adds users."""
    low = max(account.created_at + 60 * DAY, account.trend_at - RAMP_DAYS * DAY)
    high = min(account.trend_at - 10 * DAY, END - 5 * DAY)
    if high <= low or account.momentum == "steady":
        return
    if account.momentum == "grow":
        n = int(rng.poisson(account.initial_staff * 0.4))
        add_people(rng, names, account, joiner_roles(rng, n),
                   [float(rng.uniform(low, high)) for _ in range(n)])
        return
    for user in account.users[1:]:
        if rng.random() < 0.5:
            when = float(rng.uniform(low, high))
            if stint_at(user, account, when) is None:
                continue
            if rng.random() < 0.55:
                user.quiet_from = when
            else:
                leave(user, account, when)


def _champion_departs(account: Account, champion: User, when: float) -> None:
    if account.champion_fate == "quiet":
        champion.quiet_from = when
        return
    leave(champion, account, when)
    after = when + DAY
    for user in account.users[4:]:  # an editor becomes admin (less engaged than the champion)
        stint = stint_at(user, account, after)
        if stint is not None and stint.role == "editor":
            leave(user, account, after)
            user.stints.append(Stint(account.account_id, stint.team, "admin", after))
            return


def _draw_momentum(rng: np.random.Generator, health: float) -> str:
    draw = rng.random()
    if draw < 0.15 + 0.3 * sigmoid(-1.5 * health):
        return "decline"
    return "grow" if draw > 0.9 - 0.3 * sigmoid(1.5 * health) else "steady"


def build_world(rng: np.random.Generator, n_accounts: int) -> World:
    names = Names(rng)
    accounts: list[Account] = []
    for index in range(n_accounts):
        account_id = f"acc-{index + 1:03d}"
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
        low, high = EARLY_ACQUISITION if index % 25 < EARLY_OF_25 else LATE_ACQUISITION
        created = (START + math.floor(float(rng.uniform(low, high))) * DAY
                   + float(rng.uniform(8, 18)) * HOUR)
        account = Account(
            account_id=account_id, name=name, domain=domain, industry=industry, region=region,
            employees=employees, plan=plan, created_at=created,
            parent_account_id=parent.account_id if parent else None,
            crm_roles=index % 6 != 2, group_context=index % 3 == 0, health=health,
            modules=modules, api_quota=API_QUOTA[plan] if has_api else 0,
            trial=rng.random() < 0.35,
        )
        # hidden traits that shape behaviour (the outcome then follows the behaviour)
        account.has_sequence = rng.random() < sigmoid(0.9 * health - 0.2)
        fate_draw = rng.random()
        risk = 0.12 + 0.12 * sigmoid(-health)
        account.champion_fate = ("leaves" if fate_draw < risk else
                                 "quiet" if fate_draw < risk + 0.08 else "stays")
        account.momentum = _draw_momentum(rng, health)
        account.headroom = float(np.clip(rng.lognormal(math.log(1.25), 0.3), 0.9, 3.0))
        messy = rng.random() < 0.15 + 0.2 * sigmoid(-health)
        account.stall_share = float(rng.uniform(0.25, 0.45) if messy else rng.uniform(0.03, 0.1))
        paid_from = day_start(created) + (TRIAL_DAYS * DAY if account.trial else 0.0)
        account.trend_at = paid_from + CONTRACT_DAYS * DAY
        _org_units(rng, account)
        _people(rng, names, account)
        accounts.append(account)
    return World(accounts, names)
