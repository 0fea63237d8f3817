"""The account review (docs/report.md): a one- or two-page summary of one account as of a day, for
a meeting with the customer — value realised, adoption by team and role, seats against the
contract, health and its drivers, risks, and next steps from explicit rules (report/rules.py).

`review()` assembles the typed figures from the analyses the rest of the product shows (the
account page, health, predict, champions, signals, value), so the report agrees with them;
`account_review()` renders them as one self-contained HTML page (report/render.py). Everything
is as of one day and point-in-time (SPEC §8), as each of those analyses is."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from accountlens.analysis.account_detail import (
    AccountDetail,
    Contract,
    account_detail,
    parse_day,
    plain,
    used,
)
from accountlens.analysis.activity import rollup_relation
from accountlens.analysis.registry import MAX_ROWS, days_before, run_analysis
from accountlens.report.wording import factor_label, feature_label
from accountlens.store.base import Store

VALUE_DAYS = 90  # value users and value events: the days (as_of − 90, as_of]
TOP_USERS = 5  # the most active people listed (sponsor candidates)


class ValueRealised(BaseModel):
    customer: bool = Field(description="a subscription in force: the value analysis covers it")
    acquired_on: dt.date | None
    activated: bool | None = Field(description="value within metrics.account_activation_days")
    value_reached_on: dt.date | None = Field(description="the day min_users value users were reached")
    time_to_value_days: float | None
    expected_ttv_days: float | None = Field(description="the benchmark: median of similar accounts")
    benchmark_segment: str | None
    value_users: int = Field(description="people with a value event so far")
    needed_users: int = Field(description="metrics.min_users")
    value_events: list[str] = Field(description="metrics.value_events")
    value_users_90d: int
    value_events_90d: int
    projected_value_date: dt.date | None
    projection_basis: str | None


class Adopters(BaseModel):
    name: str
    members: int
    active_30d: int


class Adoption(BaseModel):
    unit_kind: str | None = Field(description="team, else department, else business_unit")
    units: list[Adopters] = Field(description="per unit of that kind with members or activity")
    roles: list[Adopters] = Field(description="current people per role, and the active among them")
    users_truncated: bool


class Person(BaseModel):
    user_id: str
    name: str | None
    role: str | None
    unit_name: str | None
    events_30d: int


class Factor(BaseModel):
    name: str
    label: str
    value: float | None
    score: float | None
    weight: float = Field(description="its share of the score (0–1)")
    contribution: float | None = Field(description="points of the score")


class Health(BaseModel):
    score: float | None
    grade: str
    previous_score: float | None
    trend: float | None
    lever: str | None
    lever_gain: float | None
    missing: list[str]
    factors: list[Factor]


class Driver(BaseModel):
    feature: str
    label: str
    value: float | None
    contribution: float = Field(description="log-odds; positive raises the risk")


class ChurnRisk(BaseModel):
    probability: float | None = Field(description="of churn within prediction.horizon_days")
    source: str | None = Field(description="logistic, lightgbm or health")
    decile: int | None
    horizon_days: int
    drivers: list[Driver]
    notes: list[str] = Field(description="the predict analysis's notes (why nothing, if so)")


class Champion(BaseModel):
    user_id: str | None
    name: str | None
    role: str | None
    status: str = Field(description="active, quiet, left or none")
    share_of_activity: float | None
    last_seen: dt.date | None
    left_on: dt.date | None
    risk: str


class Signal(BaseModel):
    signal: str
    kind: str
    detail: str
    items: list[str]


class NextStep(BaseModel):
    rule: str = Field(description="the rule of report/rules.py that made it")
    title: str
    detail: str


class AccountReview(BaseModel):
    as_of: dt.date
    account_id: str
    name: str
    domain: str | None
    industry: str | None
    plan: str | None
    owner: str | None
    contract: Contract
    renewal_date: dt.date | None = Field(description="earliest end of a subscription in force")
    days_to_renewal: int | None
    value: ValueRealised
    adoption: Adoption
    most_active: list[Person] = Field(description=f"the {TOP_USERS} most active current people")
    health: Health | None
    churn: ChurnRisk
    champion: Champion | None
    signals: list[Signal] = Field(description="every signal firing for the account")
    next_steps: list[NextStep] = Field(default_factory=list)


def account_review(store: Store, settings: Any, account_id: str, as_of: Any = None) -> str:
    """The review of `account_id` as of `as_of` (default: the default as-of) as one
    self-contained HTML page; EntityNotFound when the account is unknown then."""
    from accountlens.report.render import render

    return render(review(store, settings, account_id, as_of))


def review(store: Store, settings: Any, account_id: str, as_of: Any = None) -> AccountReview:
    """The report's figures, with its next steps."""
    from accountlens.report.rules import next_steps

    detail = account_detail(store, settings, account_id, parse_day(as_of))
    day = detail.as_of
    contract = detail.contract
    ends = [(s.end, s.days_to_end) for s in contract.subscriptions if s.end is not None]
    renewal = min(ends) if ends else (None, None)
    result = AccountReview(
        as_of=day, account_id=account_id, name=detail.account.name or account_id,
        domain=detail.account.domain, industry=detail.account.industry,
        plan=detail.account.plan, owner=detail.account.owner, contract=contract,
        renewal_date=renewal[0], days_to_renewal=renewal[1],
        value=_value(store, settings, account_id, day),
        adoption=_adoption(detail), most_active=_most_active(detail),
        health=_health(store, settings, account_id, day),
        churn=_churn(store, settings, account_id, day),
        champion=_champion(store, settings, detail),
        signals=_signals(store, settings, account_id, day))
    return result.model_copy(update={"next_steps": next_steps(result)})


def _rows(store: Store, settings: Any, name: str, account_id: str, day: dt.date,
          **params: Any) -> tuple[list[dict], list[str]]:
    """The account's rows of analysis `name` for every account as of `day` (the result the
    web app and other reports of the day keep and share), and its notes."""
    result = run_analysis(store, settings, name, as_of=day, limit=MAX_ROWS, **params)
    frame = result.frame[result.frame["account_id"] == account_id]
    return [{k: _cell(v) for k, v in row.items()} for row in frame.to_dict(orient="records")], \
        result.notes


def _cell(value: Any) -> Any:
    """A cell as a Python object: None for missing, lists for arrays (list columns)."""
    if getattr(value, "ndim", 0) > 0:
        return [_cell(v) for v in value.tolist()]
    return plain(value)


_VALUE_90D_SQL = """
SELECT count(DISTINCT user_id) AS users, coalesce(sum(events), 0) AS events FROM {source}
WHERE account_id = $account AND day > $since AND day <= $day AND actor_kind = 'human'
  AND user_id IS NOT NULL AND list_contains(CAST($value_events AS VARCHAR[]), name)
"""


def _value(store: Store, settings: Any, account_id: str, day: dt.date) -> ValueRealised:
    metrics = settings.metrics
    sql = _VALUE_90D_SQL.format(source=rollup_relation(store, settings))
    params = {"account": account_id, "day": day, "since": days_before(day, VALUE_DAYS),
              "value_events": list(metrics.value_events)}
    recent = store.rows(sql, used(sql, params))[0]
    rows, _ = _rows(store, settings, "value", account_id, day)
    row = rows[0] if rows else {}
    return ValueRealised(
        customer=bool(rows), acquired_on=parse_day(row.get("acquired_on")),
        activated=row.get("activated"), value_reached_on=parse_day(row.get("value_reached_on")),
        time_to_value_days=row.get("time_to_value_days"),
        expected_ttv_days=row.get("expected_ttv_days"),
        benchmark_segment=row.get("benchmark_segment"),
        value_users=int(row.get("value_users") or 0), needed_users=metrics.min_users,
        value_events=list(metrics.value_events), value_users_90d=int(recent["users"]),
        value_events_90d=int(recent["events"]),
        projected_value_date=parse_day(row.get("projected_value_date")),
        projection_basis=row.get("projection_basis"))


def _adoption(detail: AccountDetail) -> Adoption:
    """Per unit of the innermost kind that has members or activity (teams, usually), and per
    role of the current people: members, and the active among them in the last 30 days."""
    kind, units = None, []
    for candidate in ("team", "department", "business_unit"):
        units = [Adopters(name=u.name or u.unit_id, members=u.members, active_30d=u.active_users_30d)
                 for u in detail.units if u.kind == candidate and (u.members or u.active_users_30d)]
        if units:
            kind = candidate
            break
    roles: dict[str, Adopters] = {}
    for user in detail.users:
        if not user.current:
            continue
        entry = roles.setdefault(user.role or "(no role)",
                                 Adopters(name=user.role or "(no role)", members=0, active_30d=0))
        entry.members += 1
        entry.active_30d += user.events_30d > 0
    by_size = sorted(roles.values(), key=lambda r: (-r.members, r.name))
    return Adoption(unit_kind=kind, units=sorted(units, key=lambda r: (-r.members, r.name)),
                    roles=by_size, users_truncated=detail.users_truncated)


def _most_active(detail: AccountDetail) -> list[Person]:
    active = sorted((u for u in detail.users if u.current and u.events_30d > 0),
                    key=lambda u: (-u.events_30d, u.user_id))
    return [Person(user_id=u.user_id, name=u.name, role=u.role, unit_name=u.unit_name,
                   events_30d=u.events_30d) for u in active[:TOP_USERS]]


def _health(store: Store, settings: Any, account_id: str, day: dt.date) -> Health | None:
    rows, _ = _rows(store, settings, "health", account_id, day)
    if not rows:
        return None
    row = rows[0]
    factors = [Factor(name=name, label=factor_label(name), value=row.get(f"{name}_value"),
                      score=row.get(f"{name}_score"), weight=row.get(f"{name}_weight") or 0.0,
                      contribution=row.get(f"{name}_contribution"))
               for name in settings.health.factors]
    return Health(score=row["score"], grade=row["grade"], previous_score=row["previous_score"],
                  trend=row["trend"], lever=row["lever"], lever_gain=row["lever_gain"],
                  missing=list(row.get("missing") or []), factors=factors)


def _churn(store: Store, settings: Any, account_id: str, day: dt.date) -> ChurnRisk:
    rows, notes = _rows(store, settings, "predict", account_id, day, outcome="churn")
    horizon = settings.prediction.horizon_days
    if not rows:
        return ChurnRisk(probability=None, source=None, decile=None, horizon_days=horizon,
                         drivers=[], notes=notes)
    row = rows[0]
    drivers = [Driver(feature=d["feature"], label=feature_label(d["feature"]),
                      value=plain(d.get("value")), contribution=float(d["contribution"]))
               for d in row.get("drivers") or []]
    return ChurnRisk(probability=row["probability"], source=row["source"],
                     decile=row.get("decile"), horizon_days=horizon, drivers=drivers, notes=notes)


def _champion(store: Store, settings: Any, detail: AccountDetail) -> Champion | None:
    rows, _ = _rows(store, settings, "champions", detail.account.account_id, detail.as_of)
    if not rows:
        return None
    row = rows[0]
    names = {u.user_id: u.name for u in detail.users}
    return Champion(user_id=row["champion"], name=names.get(row["champion"]), role=row["role"],
                    status=row["status"], share_of_activity=row["share_of_activity"],
                    last_seen=parse_day(row["last_seen"]), left_on=parse_day(row["left_on"]),
                    risk=row["risk"])


def _signals(store: Store, settings: Any, account_id: str, day: dt.date) -> list[Signal]:
    rows, _ = _rows(store, settings, "signals", account_id, day)
    return [Signal(signal=r["signal"], kind=r["kind"], detail=r["detail"],
                   items=[str(i) for i in (r.get("items") or [])]) for r in rows]
