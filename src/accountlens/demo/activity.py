"""Product telemetry of the simulated world as Segment-format events (track, page, identify, group).

People use the product on working days in their time zone (as often as world.day_chance says),
pass reports, workflows and plans between roles, and integrations call the API; the planted
effects live here: slow Finance approvals, stalled objects (as many as the account's stall
share) and the `trainer: Training Completed → executive: Plan Approved` habit. Nothing of an
account is sent after it churned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accountlens.demo.world import (
    DAY,
    END,
    HOUR,
    PARTNER_DOMAINS,
    ROLE_ACTIVITY,
    START,
    Account,
    Stint,
    User,
    World,
    day_chance,
    stint_at,
)

WEB = {"name": "analytics.js", "version": "4.1.0"}
SERVER = {"name": "analytics-python", "version": "2.3.0"}

# role → what a session is made of; `/Name` is a page view
ROLE_EVENTS: dict[str, dict[str, float]] = {
    "viewer": {"Dashboard Viewed": 5, "Report Viewed": 4, "/Dashboard": 3, "/Reports": 2,
               "Comment Added": 1, "Search Performed": 1, "Training Completed": 0.15},
    "editor": {"Dashboard Viewed": 3, "Report Viewed": 3, "Report Edited": 3, "Comment Added": 2,
               "/Reports": 2, "/Workflows": 1, "Module Used": 1, "Filter Applied": 1},
    "analyst": {"Report Viewed": 3, "Query Run": 4, "Dashboard Viewed": 3, "Export Downloaded": 2,
                "Module Used": 1, "/Reports": 2},
    "approver": {"Dashboard Viewed": 3, "Report Viewed": 3, "/Approvals": 3, "Comment Added": 1},
    "admin": {"Dashboard Viewed": 3, "Settings Updated": 0.5, "/Settings": 1, "Report Viewed": 2,
              "Integration Connected": 0.2, "Module Used": 1, "/Billing": 0.5},
    "trainer": {"Course Viewed": 3, "Dashboard Viewed": 2, "Session Scheduled": 0.5, "/Academy": 2},
    "executive": {"Dashboard Viewed": 5, "Report Viewed": 2, "/Dashboard": 2},
}
EVENT_PRODUCT = {
    "Dashboard Viewed": "dashboards", "Report Viewed": "reports", "Report Edited": "reports",
    "Report Created": "reports", "Report Shared": "reports", "Report Approved": "reports",
    "Report Exported": "reports", "Export Downloaded": "reports", "Query Run": "reports",
    "Comment Added": "reports", "Filter Applied": "dashboards", "Search Performed": "platform",
    "Workflow Created": "workflows", "Workflow Submitted": "workflows",
    "Workflow Approved": "workflows", "Plan Drafted": "planning", "Plan Approved": "planning",
    "Training Completed": "academy", "Course Viewed": "academy", "Session Scheduled": "academy",
    "Settings Updated": "platform", "Integration Connected": "platform", "User Invited": "platform",
    "Signed Up": "platform", "API Called": "api", "Sync Completed": "platform",
}
INTEGRATIONS = ("salesforce", "hubspot", "netsuite", "slack")
API_ENDPOINTS = ("/v1/reports", "/v1/dashboards", "/v1/workflows", "/v1/exports")
ONBOARDING_DAYS, ONBOARDING_BOOST = 42, 2.0  # new accounts set up their first work items busily


@dataclass
class EventBuffer:
    """Events with the true moment they happened and the clock skew of the sending device."""
    times: list[float] = field(default_factory=list)
    skews: list[float] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def add(self, when: float, event: dict, skew: float = 0.0, until: float = END) -> None:
        """Keep the event if it happened in the history and before `until`; the stored
        timestamp is the true moment plus under a second of network time, which must not
        carry it past `until`."""
        if when >= START and when + 1.0 < until:
            self.times.append(when)
            self.skews.append(skew)
            self.events.append(event)


def _pick_members(account: Account, role: str, when: float) -> list[User]:
    """Users of `account` holding `role` at `when` and still using the product."""
    return [user for user in account.users
            if not user.dormant and (user.quiet_from is None or when < user.quiet_from)
            and any(s.role == role and s.holds(account.account_id, when) for s in user.stints)]


class ActivitySimulator:
    def __init__(self, world: World, rng: np.random.Generator):
        self.world, self.rng = world, rng
        self.buffer = EventBuffer()
        self.object_counter = 0

    # --- event shapes ------------------------------------------------------------------------
    def _context(self, account: Account | None, user: User | None, library: dict = WEB) -> dict:
        context: dict[str, Any] = {"library": library}
        if account is not None and (user is None or account.group_context or user.is_consultant):
            context["groupId"] = account.account_id
        return context

    def track(self, when: float, user: User | None, account: Account, name: str,
              properties: dict | None = None) -> None:
        props = dict(properties or {})
        product = EVENT_PRODUCT.get(name)
        if name == "Module Used":
            product = props["module"]
        if product is not None:
            props.setdefault("product", product)
        event = {"type": "track", "event": name, "properties": props,
                 "context": self._context(account, user, WEB if user else SERVER)}
        if user is not None:
            event["userId"] = user.user_id
        self.buffer.add(when, event, user.clock_skew if user else 0.0, account.active_until)

    def page(self, when: float, user: User, account: Account, name: str) -> None:
        path = "/" + name.lower()
        event = {"type": "page", "name": name, "userId": user.user_id,
                 "properties": {"path": path, "url": f"https://app.accountlens.example{path}",
                                "title": f"{name} · accountlens"},
                 "context": self._context(account, user)}
        self.buffer.add(when, event, user.clock_skew, account.active_until)

    def next_object(self, kind: str, account: Account) -> str:
        self.object_counter += 1
        return f"{kind}-{account.account_id[4:]}-{self.object_counter:05d}"

    # --- people ------------------------------------------------------------------------------
    def lifecycle(self, user: User, account: Account) -> None:
        """Sign-up, identify/group calls, SDK-side role/team changes and leaving, invites."""
        rng = self.rng
        stints = [s for s in user.stints if s.account_id == account.account_id]
        first = stints[0]
        joined = first.start
        anonymous_id = f"anon-{user.user_id}"
        if joined >= START and joined == user.joined:
            inviter = self._inviter(account, joined)
            if inviter is not None and user is not account.users[0]:
                self.track(joined - float(rng.uniform(1, 72)) * HOUR, inviter, account, "User Invited",
                           {"invitee_email": user.email, "invite_type": "internal"})
            if rng.random() < 0.4:  # browsed the marketing site before signing up
                for k in range(int(rng.integers(1, 4))):
                    page = ("Home", "Pricing", "Docs")[k % 3]
                    self.buffer.add(joined - (3 - k) * HOUR, {
                        "type": "page", "name": page, "anonymousId": anonymous_id,
                        "properties": {"path": "/" + page.lower()}, "context": {"library": WEB}},
                        user.clock_skew, account.active_until)
            self.track(joined + 60, user, account, "Signed Up", {"method": "invite"
                       if user is not account.users[0] else "self-serve"})
        traits = {"email": user.email, "name": user.name}
        if not account.crm_roles:
            traits.update(self._org_traits(first))
        identify = {"type": "identify", "userId": user.user_id, "anonymousId": anonymous_id,
                    "traits": traits, "context": {"library": WEB}}
        if not account.crm_roles:
            identify["context"] = {"library": WEB, "groupId": account.account_id}
        self.buffer.add(joined + 1, identify, user.clock_skew, account.active_until)
        if account.crm_roles:
            return
        self.buffer.add(joined + 2, {
            "type": "group", "userId": user.user_id, "groupId": account.account_id,
            "traits": {"name": account.name, "domain": account.domain, "industry": account.industry,
                       "plan": account.plan, "employees": account.employees},
            "context": {"library": WEB}}, user.clock_skew, account.active_until)
        for stint in stints[1:]:  # role or team changes, told by the app's identify call
            self.buffer.add(stint.start, {
                "type": "identify", "userId": user.user_id, "traits": self._org_traits(stint),
                "context": {"library": WEB, "groupId": account.account_id}}, user.clock_skew,
                account.active_until)
        if stints[-1].end is not None:
            self.buffer.add(stints[-1].end, {
                "type": "group", "userId": user.user_id, "groupId": account.account_id,
                "traits": {"membership_status": "removed"}, "context": {"library": SERVER}},
                until=account.active_until)

    @staticmethod
    def _org_traits(stint: Stint) -> dict:
        traits = {"role": stint.role}
        traits.update(stint.team.lineage())
        return traits

    def _inviter(self, account: Account, when: float) -> User | None:
        admins = _pick_members(account, "admin", when) or _pick_members(account, "editor", when)
        return admins[self.rng.integers(len(admins))] if admins else None

    def external_invites(self, account: Account) -> None:
        """Invites to people outside the account; referred accounts' first admins among them."""
        rng = self.rng
        by_id = {u.user_id: (u, a) for a in self.world.accounts for u in a.users}
        if account.referred_by is not None:
            inviter, home = by_id[account.referred_by]
            when = account.created_at - float(rng.uniform(7, 40)) * DAY
            if stint_at(inviter, home, when) is not None:
                self.track(when, inviter, home, "User Invited",
                           {"invitee_email": account.users[0].email, "invite_type": "external"})
        for _ in range(int(rng.poisson(1.2))):
            when = float(rng.uniform(max(START, account.created_at), account.active_until))
            admin = self._inviter(account, when)
            if admin is not None:
                domain = PARTNER_DOMAINS[rng.integers(len(PARTNER_DOMAINS))]
                self.track(min(when, END - HOUR), admin, account, "User Invited",
                           {"invitee_email": f"guest{rng.integers(1000)}@{domain}",
                            "invite_type": "external"})

    def daily_use(self, user: User, account: Account, stint: Stint) -> None:
        """Sessions on working days: activity depends on role, engagement and account trend."""
        rng = self.rng
        begin = max(stint.start, START)
        stop = min(stint.end or END, END, account.active_until, user.quiet_from or END)
        if stop <= begin:
            return
        day0 = np.floor(begin / DAY) * DAY
        days = np.arange(day0, stop, DAY)
        per_session = ROLE_ACTIVITY[stint.role][1]
        active_days = days[rng.random(len(days)) < day_chance(user, account, stint.role, days)]
        if not len(active_days):
            return
        counts = 1 + rng.poisson(per_session * min(user.engagement, 2.0), len(active_days))
        local_start = np.clip(rng.normal(10.5, 2.0, len(active_days)), 7.0, 19.0)
        session_start = active_days + (local_start - user.utc_offset) * HOUR
        names_weights = ROLE_EVENTS[stint.role]
        names = list(names_weights)
        weights = np.array([names_weights[n] for n in names], dtype=float)
        total = int(counts.sum())
        picks = rng.choice(len(names), total, p=weights / weights.sum())
        gaps = rng.exponential(240.0, total)
        # each event follows the previous one of its session by an exponential gap
        elapsed = np.cumsum(gaps)
        session_first = np.cumsum(counts) - counts
        offsets = elapsed - np.repeat(elapsed[session_first] - gaps[session_first], counts)
        when = np.repeat(session_start, counts) + offsets
        modules = account.modules
        module_picks = rng.integers(len(modules), size=total)
        for i in range(total):
            if when[i] < begin or when[i] >= stop:
                continue
            name = names[picks[i]]
            if name[0] == "/":
                self.page(float(when[i]), user, account, name[1:])
            elif name == "Module Used":
                self.track(float(when[i]), user, account, name, {"module": modules[module_picks[i]]})
            else:
                self.track(float(when[i]), user, account, name)

    # --- shared objects ------------------------------------------------------------------------
    def _approval_delay(self, approver: User, account: Account, when: float) -> float:
        stint = stint_at(approver, account, when)
        slow = stint is not None and stint.team.lineage().get("department") == "Finance"
        return float(self.rng.lognormal(np.log(5 * HOUR), 0.7)) * (5.0 if slow else 1.0)

    def _approver(self, account: Account, when: float) -> User | None:
        approvers = _pick_members(account, "approver", when)
        if not approvers:
            return None
        finance = [a for a in approvers
                   if (s := stint_at(a, account, when)) and s.team.lineage().get("department") == "Finance"]
        if finance and self.rng.random() < 0.45:
            return finance[self.rng.integers(len(finance))]
        return approvers[self.rng.integers(len(approvers))]

    def work_items(self, account: Account) -> None:
        """Reports and workflows go editor → approver; some stall before their final event."""
        rng = self.rng
        begin = max(START, account.created_at)
        stop = min(END, account.active_until)
        if stop <= begin:
            return
        editors = len([u for u in account.users if any(s.role == "editor" for s in u.stints)])
        weeks = (stop - begin) / (7 * DAY)
        onboarding = min(stop, account.created_at + ONBOARDING_DAYS * DAY)
        for kind in ("report", "workflow"):
            if kind == "workflow" and "workflows" not in account.modules:
                continue
            rate = max(editors, 1) * 0.28  # items per week
            times = rng.uniform(begin, stop, int(rng.poisson(rate * weeks)))
            extra = max(onboarding - begin, 0.0) / (7 * DAY) * rate * (ONBOARDING_BOOST - 1)
            times = np.concatenate([times, rng.uniform(begin, onboarding, int(rng.poisson(extra)))])
            keep = rng.random(len(times)) < account.activity_factor(times) / 1.35
            for t0 in np.sort(times[keep]):
                self._one_item(kind, account, float(t0))

    def _one_item(self, kind: str, account: Account, t0: float) -> None:
        rng = self.rng
        editors = _pick_members(account, "editor", t0)
        if not editors:
            return
        editor = editors[rng.integers(len(editors))]
        obj = self.next_object("rpt" if kind == "report" else "wf", account)
        title = {"object_id": obj, "object_type": kind}
        t = t0
        if kind == "report":
            self.track(t, editor, account, "Report Created", title)
            t += float(rng.lognormal(np.log(HOUR), 0.8))
            self.track(t, editor, account, "Report Edited", title)
            reviewers = _pick_members(account, "analyst", t) + _pick_members(account, "viewer", t)
            if reviewers and rng.random() < 0.5:
                t += float(rng.lognormal(np.log(6 * HOUR), 0.8))
                self.track(t, reviewers[rng.integers(len(reviewers))], account, "Comment Added", title)
            final = "Report Approved"
        else:
            self.track(t, editor, account, "Workflow Created", title)
            t += float(rng.lognormal(np.log(3 * HOUR), 0.8))
            self.track(t, editor, account, "Workflow Submitted", title)
            final = "Workflow Approved"
        if rng.random() < account.stall_share:  # stalled: nobody ever approves it
            return
        approver = self._approver(account, t)
        if approver is None:
            return
        t += self._approval_delay(approver, account, t)
        if t >= min(END, account.active_until) or stint_at(approver, account, t) is None:
            return
        self.track(t, approver, account, final, title)
        if kind == "report":
            self.track(t + float(rng.uniform(0.2, 3)) * HOUR, editor, account, "Report Shared", title)

    def training_and_plans(self, account: Account) -> None:
        """Course completions everywhere; in accounts with the habit, a trainer's team training is
        followed within weeks by an executive approving a plan."""
        rng = self.rng
        begin = max(START, account.created_at) + 10 * DAY
        stop = min(END, account.active_until) - 2 * DAY
        if stop <= begin:
            return
        for t in rng.uniform(begin, stop, int(rng.poisson(2.0 + 3 * (account.health > 0)))):
            trainees = (_pick_members(account, "viewer", t) + _pick_members(account, "editor", t)
                        + _pick_members(account, "analyst", t))
            if trainees:  # people completing courses on their own
                self.track(float(t), trainees[self.rng.integers(len(trainees))], account,
                           "Training Completed", {"course": "Getting started"})
        anchors = []
        if account.has_sequence:
            anchor_end = account.trend_at if account.trend_at < END else END
            low, high = max(begin, anchor_end - 150 * DAY), anchor_end - 35 * DAY
            if high > low:
                anchors.append(float(rng.uniform(low, high)))
            anchors += list(rng.uniform(begin, max(begin + DAY, stop - 30 * DAY), int(rng.integers(0, 2))))
        for t0 in anchors:
            trainers = _pick_members(account, "trainer", t0)
            if not trainers:
                continue
            self.track(t0, trainers[0], account, "Training Completed",
                       {"course": "Planning with accountlens", "attendees": int(rng.integers(3, 20))})
            self._plan(account, t0 + float(rng.uniform(1, 10)) * DAY, float(rng.uniform(2, 15)) * DAY)
        if not account.has_sequence and rng.random() < 0.6:
            # the same events without the habit: a plan approved, a team training only later
            approved_at = float(rng.uniform(begin, stop))
            if rng.random() < 0.7:
                review = float(rng.uniform(1, 10)) * DAY
                self._plan(account, approved_at - review, review)
            t = approved_at + float(rng.uniform(2, 25)) * DAY
            trainers = _pick_members(account, "trainer", t)
            if trainers and t < stop:
                self.track(t, trainers[0], account, "Training Completed",
                           {"course": "Team onboarding", "attendees": int(rng.integers(3, 20))})

    def _plan(self, account: Account, drafted_at: float, delay: float) -> None:
        drafters = _pick_members(account, "analyst", drafted_at) or _pick_members(account, "editor", drafted_at)
        executives = _pick_members(account, "executive", drafted_at + delay)
        if not drafters or not executives:
            return
        obj = self.next_object("plan", account)
        props = {"object_id": obj, "object_type": "plan"}
        self.track(drafted_at, drafters[0], account, "Plan Drafted", props)
        if drafted_at + delay < min(END, account.active_until):
            self.track(drafted_at + delay, executives[0], account, "Plan Approved", props)

    # --- automation ----------------------------------------------------------------------------
    def automation(self, account: Account, index: int) -> None:
        """Integration syncs and API calls (no user), scheduled exports (automation on a user)."""
        rng = self.rng
        begin = max(START, account.created_at)
        stop = min(END, account.active_until)
        if stop <= begin:
            return
        days = np.arange(np.ceil(begin / DAY) * DAY, stop, DAY)
        if index % 5 != 4:
            integration = INTEGRATIONS[index % len(INTEGRATIONS)]
            for day in days:
                self.track(float(day) + 2 * HOUR + float(rng.uniform(0, 600)), None, account,
                           "Sync Completed", {"integration": integration,
                                              "records": int(rng.integers(10, 5000))})
        if account.api_quota:
            usage = 0.25 + 0.9 / (1 + np.exp(-account.health))
            daily = account.api_quota / 30 * usage * account.activity_factor(days)
            counts = rng.poisson(daily)
            for day, count in zip(days, counts):
                for t in np.sort(rng.uniform(0, DAY, count)):
                    self.track(float(day + t), None, account, "API Called",
                               {"endpoint": API_ENDPOINTS[int(t) % len(API_ENDPOINTS)], "status": 200})
        admins = _pick_members(account, "admin", stop - DAY) or _pick_members(account, "admin", begin)
        if admins and index % 2 == 0:
            for day in days[days.astype(np.int64) // int(DAY) % 7 == 0]:
                if stint_at(admins[0], account, float(day)) is not None:
                    self.track(float(day) + 6 * HOUR, admins[0], account, "Report Exported",
                               {"actor_kind": "automation", "schedule": "weekly", "format": "pdf"})

    def anonymous_visitors(self, count: int) -> None:
        """Marketing-site visitors who never sign up: unattributed, never dropped."""
        rng = self.rng
        for k in range(count):
            anon = f"anon-visitor-{k:05d}"
            when = float(rng.uniform(START, END - DAY))
            for j in range(int(rng.integers(1, 4))):
                page = ("Home", "Pricing", "Docs", "Blog")[int(rng.integers(4))]
                self.buffer.add(when + j * 90, {"type": "page", "name": page, "anonymousId": anon,
                                                "properties": {"path": "/" + page.lower()},
                                                "context": {"library": WEB}})

    def invalid_events(self, count: int, rand: random.Random) -> None:
        """Broken client calls that must land in quarantine."""
        for k in range(count):
            when = START + (k + 1) * (END - START) / (count + 2)
            shapes: list[dict[str, Any]] = [
                {"type": "track", "userId": "u-unknown", "properties": {"note": "missing event name"}},
                {"type": "track", "event": "Report Viewed", "properties": {"note": "no identity"}},
                {"type": "track", "event": "Dashboard Viewed", "userId": f"u-{rand.randint(1, 99):03d}",
                 "originalTimestamp": "yesterday"},
            ]
            self.buffer.add(when, shapes[k % len(shapes)])

    def run(self, invalid: int, rand: random.Random) -> EventBuffer:
        for index, account in enumerate(self.world.accounts):
            for user in account.users:
                self.lifecycle(user, account)
                for stint in user.stints:
                    if stint.account_id == account.account_id:
                        self.daily_use(user, account, stint)
            self.external_invites(account)
            self.work_items(account)
            self.training_and_plans(account)
            self.automation(account, index)
        self.anonymous_visitors(8 * len(self.world.accounts))
        self.invalid_events(invalid, rand)
        self.experiment(self.rng.spawn(1)[0])  # a child stream: the parent's draws are unchanged
        return self.buffer

    # --- an account-level experiment (docs/experiments.md) ----------------------------------------
    def experiment(self, rng: np.random.Generator) -> None:
        """`guided-setup`: 120 days before the data ends, the first active member of every
        account still active then sees a variant (a Segment `Experiment Viewed` event), chosen
        by a coin per account. The treatment has a planted effect: its members create about one
        more report a week from then on. Its own random stream, so that the rest
        of the demo is the same with or without it."""
        start = END - 120 * DAY
        for account in self.world.accounts:
            if account.active_until <= start:
                continue
            members = [u for u in account.users if not u.dormant
                       and any(s.holds(account.account_id, start) for s in u.stints)]
            if not members:
                continue
            variant = "treatment" if rng.random() < 0.5 else "control"
            exposed_at = start + float(rng.uniform(0, 2 * DAY))
            self.track(exposed_at, members[0], account, "Experiment Viewed",
                       {"experiment_id": "guided-setup", "variation_name": variant})
            if variant == "treatment":
                for user in members:
                    for when in exposed_at + rng.uniform(0, END - exposed_at, rng.poisson(16)):
                        self.track(float(when), user, account, "Report Created")
