"""One account as of a day (docs/web-api.md): its record, hierarchy, org units, users, contract,
entitlements and timeline, as one typed object for the account page, `accountlens account` and
`ws.account_detail`.

Point-in-time (SPEC §8): activity from the daily rollup up to as_of (events before the end of that
day), memberships as known then (`effective_memberships_sql`: CRM and SDK rows merged, ends after
as_of not yet known), subscriptions by their dates (half-open `[start, end)`), outcomes dated up
to as_of, traits from their dated history. Every query is filtered by the account: the page costs
the same whatever the size of the rest of the store.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, Field

from accountlens.analysis.activity import rollup_current, rollup_sql
from accountlens.analysis.registry import MAX_ROWS, day_end, days_before, run_analysis
from accountlens.model.as_of import default_as_of
from accountlens.model.entities import UNIT_KINDS
from accountlens.model.memberships import effective_memberships_sql
from accountlens.store.base import Store
from accountlens.store.cache import BoundedCache

if TYPE_CHECKING:
    import pandas as pd

MAX_USERS = 5_000  # the users list stops here (`users_truncated` says so)
MAX_TIMELINE = 200  # the newest entries of the timeline
RECENT_DAYS = 30  # events_30d, active_users_30d, MAU: the days (as_of − 30, as_of]
TIMELINE_KINDS = ("outcome", "subscription_started", "subscription_ended", "user_joined",
                  "user_left", "role_changed", "first_event", "champion")


# contract_alignment of every account as of a day, kept while the data and settings are the
# same: its SQL is compiled once (~0.3 s) and run once (0.15 s at 10M events) for all pages.
_ALIGNMENT = BoundedCache(8)
_KEPT = BoundedCache(64)  # pages asked recently (copies handed out)
T = TypeVar("T", bound=BaseModel)


class EntityNotFound(LookupError):
    """No such account or user as of the day asked; the message says which (REST: 404)."""


# --- the typed answer (REST's response model) -------------------------------------------------
class AccountInfo(BaseModel):
    account_id: str
    name: str | None
    domain: str | None
    industry: str | None
    region: str | None
    employees: int | None
    plan: str | None = Field(description="the plan of its largest subscription in force, else the CRM's")
    size_band: str = Field(description="band of `employees` (metrics.size_bands); (none) without")
    owner: str | None = Field(description="the `owner` trait as known on as_of")
    created_at: dt.datetime | None = Field(description="null when it is after as_of")
    traits: dict[str, Any] = Field(description="traits as known on as_of (imported, then group calls)")


class AccountRef(BaseModel):
    account_id: str
    name: str | None


class ChildAccount(BaseModel):
    account_id: str
    name: str | None
    arr: float = Field(description="ARR of its subscriptions in force on as_of")
    health_score: float | None
    health_grade: str = Field(description="healthy, concerning, poor or unknown")


class Unit(BaseModel):
    unit_id: str
    name: str | None
    kind: str = Field(description="business_unit, department or team")
    parent_unit_id: str | None
    members: int = Field(description="users whose membership in this very unit stands on as_of")
    active_users_30d: int = Field(description="human users with active events in it, last 30 days")


class AccountUser(BaseModel):
    user_id: str
    email: str | None
    name: str | None
    role: str | None = Field(description="of the standing membership, else the last one, else "
                                         "of the user's last event in the account")
    unit_id: str | None
    unit_name: str | None
    member_since: dt.datetime | None = Field(description="start of the first membership here")
    last_active_at: dt.datetime | None = Field(description="last active event in the account")
    events_30d: int = Field(description="active events in the account in the last 30 days")
    current: bool = Field(description=(
        "a membership stands at the end of as_of; for a user who never had one here (attributed "
        "by group call or e-mail domain): active in the account in the last 30 days"))


class Subscription(BaseModel):
    subscription_id: str
    product: str | None
    plan: str | None
    seats: int | None
    arr: float | None
    start: dt.date
    end: dt.date | None
    days_to_end: int | None = Field(description="end − as_of in days (null: open-ended)")


class Entitlement(BaseModel):
    entitlement: str = Field(description="seats, a quota of metrics.quota_events, or modules")
    usage: float | None
    limit: float | None
    alignment: float | None = Field(description="usage ÷ limit (contract_alignment metric)")


class Contract(BaseModel):
    subscriptions: list[Subscription] = Field(description="in force on as_of, [start, end)")
    seats: int
    arr: float
    mau: int = Field(description="human users active in the account in the last 30 days")
    seat_utilization: float | None = Field(description="mau ÷ seats (null without seats)")
    entitlements: list[Entitlement]


class TimelineEntry(BaseModel):
    at: dt.date
    kind: Literal[TIMELINE_KINDS]  # type: ignore[valid-type]
    text: str
    user_id: str | None = None


class AccountDetail(BaseModel):
    as_of: dt.date
    account: AccountInfo
    parent: AccountRef | None
    children: list[ChildAccount] = Field(description="direct child accounts known on as_of")
    units: list[Unit]
    users: list[AccountUser] = Field(description=(
        "users with a membership known on as_of or an active event in the account: current "
        f"first, then by last activity; at most {MAX_USERS}"))
    users_total: int = Field(description="how many users there are in all")
    users_truncated: bool = Field(description=f"more than {MAX_USERS} users: the list is cut")
    contract: Contract
    timeline: list[TimelineEntry] = Field(description=f"newest first, at most {MAX_TIMELINE}")


# --- queries (every one filtered by the account) ----------------------------------------------
_ACCOUNT_SQL = """
SELECT a.account_id, a.name, a.domain, a.industry, a.region, a.employees, a.plan,
       a.parent_account_id, a.created_at, p.name AS parent_name,
       (SELECT arg_max(s.plan, coalesce(s.arr, 0)) FROM subscriptions s
        WHERE s.account_id = a.account_id AND s.start_date <= $day
          AND (s.end_date IS NULL OR s.end_date > $day)) AS live_plan,
       -- known on as_of as analysis/features.py knows accounts: created, a contract started,
       -- or the parent of an account (or activity by then: read with the activity)
       coalesce(a.created_at < $end, FALSE)
       OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = a.account_id
                  AND s.start_date <= $day)
       OR EXISTS (SELECT 1 FROM accounts c WHERE c.parent_account_id = a.account_id) AS known,
       coalesce(a.created_at < $end, FALSE) AS created_by_then
FROM accounts a LEFT JOIN accounts p ON p.account_id = a.parent_account_id
WHERE a.account_id = $account
"""

_TRAITS_SQL = """
SELECT CAST(traits AS VARCHAR) AS traits FROM account_traits_history
WHERE account_id = $account AND valid_from < $end ORDER BY valid_from, message_id NULLS FIRST
"""

_MEMBERSHIPS_SQL = f"""
SELECT user_id, unit_id, role, valid_from, valid_to, source
FROM ({effective_memberships_sql("$end")}) WHERE account_id = $account
"""

# per user (and unit and role of their events): activity in the account up to as_of, one scan
_ACTIVITY_SQL = """
SELECT user_id, unit_id, role, actor_kind, max(last_at) AS last_at, min(first_at) AS first_at,
       arg_min(name, first_at) AS first_name,
       coalesce(sum(events) FILTER (WHERE day > $recent), 0) AS events_30d
FROM {source}
WHERE account_id = $account AND day <= $day
GROUP BY ALL
"""

_UNITS_SQL = """
SELECT unit_id, name, kind, parent_unit_id, source FROM org_units WHERE account_id = $account
"""

_USERS_SQL = """
SELECT user_id, email, name FROM users WHERE user_id IN (SELECT user_id FROM {ids})
"""

_SUBSCRIPTIONS_SQL = """
SELECT subscription_id, product, plan, seats, arr, start_date, end_date FROM subscriptions
WHERE account_id = $account AND start_date <= $day
ORDER BY start_date, subscription_id
"""

_OUTCOMES_SQL = """
SELECT kind, date, arr_delta, source FROM outcomes
WHERE account_id = $account AND date <= $day ORDER BY date, kind
"""


def used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The named parameters `sql` uses (DuckDB refuses any other)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def parse_day(value: Any) -> dt.date | None:
    """A day given as a date or YYYY-MM-DD text (None stays None); ValueError otherwise."""
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"as_of must be a date YYYY-MM-DD, not {value!r}") from exc


def account_detail(store: Store, settings: Any, account_id: str,
                   as_of: dt.date | str | None = None) -> AccountDetail:
    """The account `account_id` as of `as_of` (default: the default as-of); EntityNotFound when
    there is no such account or nothing of it is known by then. Kept while the store's data and
    the settings are unchanged (the web app asks again on every visit of the page)."""
    return kept_detail(_KEPT, store, settings, ("account", account_id, as_of),
                       lambda: _account_detail(store, settings, account_id, as_of))


def kept_detail(cache: BoundedCache, store: Store, settings: Any, request: tuple,
                compute: Callable[[], T]) -> T:
    """`compute()` or the copy kept for `request` (the default day is today's: in the key)."""
    def key() -> tuple:
        return (store.instance, store.data_version, repr(request), dt.date.today(),
                settings.model_dump_json())

    kept = cache.get(key())
    if kept is None:
        kept = compute()
        cache.put(key(), kept)  # after: bringing the rollup up to date moves the data version
    return kept.model_copy(deep=True)


def _account_detail(store: Store, settings: Any, account_id: str,
                    as_of: dt.date | str | None) -> AccountDetail:
    import pyarrow as pa

    as_of, source = day_and_source(store, settings, as_of)
    params = {"account": account_id, "day": as_of, "end": day_end(as_of),
              "recent": days_before(as_of, RECENT_DAYS)}
    rows = store.rows(_ACCOUNT_SQL, used(_ACCOUNT_SQL, params))
    if not rows:
        raise EntityNotFound(f"no account {account_id!r}")
    row = rows[0]
    activity = store.df(_ACTIVITY_SQL.format(source=source), used(_ACTIVITY_SQL, params))
    if not (row["known"] or len(activity)):
        raise EntityNotFound(f"no account {account_id!r} as of {as_of.isoformat()}: nothing of "
                             "it is known by then (no contract, activity or creation date)")
    traits = _known_traits(store.rows(_TRAITS_SQL, used(_TRAITS_SQL, params)))
    memberships = store.df(_MEMBERSHIPS_SQL, used(_MEMBERSHIPS_SQL, params))
    human = activity[(activity["actor_kind"] == "human") & activity["user_id"].notna()]
    ids = sorted(set(memberships["user_id"]) | set(human["user_id"]))
    with store.registered("_detail_user_ids", pa.table({"user_id": pa.array(ids, pa.string())})) as view:
        people = store.df(_USERS_SQL.format(ids=view))
    unit_rows = store.df(_UNITS_SQL, used(_UNITS_SQL, params))
    users, total = _users(memberships, human, people, unit_rows, as_of)
    return AccountDetail(
        as_of=as_of,
        account=AccountInfo(
            account_id=row["account_id"], name=row["name"], domain=row["domain"],
            industry=row["industry"], region=row["region"], employees=row["employees"],
            plan=row["live_plan"] or row["plan"],
            size_band=size_band(row["employees"], settings.metrics.size_bands),
            owner=_text(traits.get("owner")), traits=traits,
            created_at=row["created_at"] if row["created_by_then"] else None),
        parent=(AccountRef(account_id=row["parent_account_id"], name=row["parent_name"])
                if row["parent_account_id"] else None),
        children=_children(store, settings, account_id, as_of),
        units=_units(unit_rows, memberships, human, as_of),
        users=users, users_total=total, users_truncated=total > len(users),
        contract=_contract(store, settings, params, as_of, human),
        timeline=_timeline(store, settings, params, memberships, activity))


def day_and_source(store: Store, settings: Any, as_of: Any) -> tuple[dt.date, str]:
    """The day asked (else the default as-of, read from the rollup when it is current) and the
    SQL relation of the rollup (made current as metrics make it)."""
    day = parse_day(as_of)
    fresh = rollup_current(store, settings)
    return (day if day is not None else default_as_of(store, rollup_fresh=fresh)), rollup_sql(fresh)


def size_band(employees: int | None, edges: list[int]) -> str:
    """The size band of `employees` as features and metrics label it; (none) without."""
    from accountlens.analysis.accounts import band_label

    return "(none)" if employees is None else band_label(employees, edges)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def json_object(text: str | None) -> dict:
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _known_traits(rows: list[dict]) -> dict[str, Any]:
    """Traits as known: the import's (known from the start), then each dated group call's."""
    known: dict[str, Any] = {}
    for row in rows:
        known.update(json_object(row["traits"]))
    return known


def plain(value: Any) -> Any:
    """None for a missing cell (NaN, NaT, pd.NA), else the value as a Python object."""
    import pandas as pd

    if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def python_values(column: pd.Series) -> list[Any]:
    """The cells of `column` as Python objects (None for missing), converted column-wise."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return [None if pd.isna(v) else v for v in column.dt.to_pydatetime()]
    return [None if v is None or (not isinstance(v, list | dict) and pd.isna(v)) else v
            for v in column.astype(object).tolist()]


def deciding_rows(memberships: pd.DataFrame, by: str = "user_id") -> pd.DataFrame:
    """Per `by` (a user, or an account), the membership row that says the role and unit: a
    standing one, else the last that ended; among those, one with a role (a `group` call's
    row has none), then the latest started, then a CRM row before an SDK row. `standing` says
    whether it stands."""
    if memberships.empty:
        return memberships.assign(standing=[])
    ordered = memberships.assign(
        standing=memberships["valid_to"].isna(), has_role=memberships["role"].notna(),
        crm=memberships["source"] != "sdk")
    ordered = ordered.sort_values([by, "standing", "has_role", "valid_from", "crm"],
                                  ascending=[True, False, False, False, False], kind="stable")
    return ordered.drop_duplicates(by)


def _users(memberships: pd.DataFrame, human: pd.DataFrame, people: pd.DataFrame,
           units: pd.DataFrame, as_of: dt.date) -> tuple[list[AccountUser], int]:
    """Every user of the account, one frame (no per-user lookups: 2,000 users in milliseconds)."""
    import pandas as pd

    since = pd.Timestamp(day_end(as_of)) - pd.Timedelta(days=RECENT_DAYS)
    ids = pd.Index(sorted(set(memberships["user_id"]) | set(human["user_id"])), name="user_id")
    frame = pd.DataFrame(index=ids)
    frame = frame.join(human.groupby("user_id").agg(
        last_active_at=("last_at", "max"), events_30d=("events_30d", "sum")))
    last_event = human.sort_values("last_at").drop_duplicates("user_id", keep="last")
    frame = frame.join(last_event.set_index("user_id")[["role", "unit_id"]].add_prefix("event_"))
    deciding = deciding_rows(memberships).set_index("user_id")[["role", "unit_id", "standing"]]
    frame = frame.join(deciding).join(
        memberships.groupby("user_id")["valid_from"].min().rename("member_since"))
    member = frame["standing"].notna()
    frame["role"] = frame["role"].where(member, frame["event_role"])
    frame["unit_id"] = frame["unit_id"].where(member, frame["event_unit_id"])
    active = frame["last_active_at"].notna() & (frame["last_active_at"] >= since)
    frame["current"] = frame["standing"].where(member, active).fillna(False).astype(bool)
    frame = frame.join(people.drop_duplicates("user_id").set_index("user_id")[["email", "name"]])
    frame["unit_name"] = frame["unit_id"].map(units.set_index("unit_id")["name"])
    frame["events_30d"] = frame["events_30d"].fillna(0).astype("int64")
    frame = frame.reset_index().sort_values(
        ["current", "last_active_at", "user_id"], ascending=[False, False, True],
        na_position="last", kind="stable")
    shown = frame.head(MAX_USERS)
    columns = {name: python_values(shown[name]) for name in AccountUser.model_fields}
    users = [AccountUser(**dict(zip(columns, values))) for values in zip(*columns.values())]
    return users, len(frame)


def _units(units: pd.DataFrame, memberships: pd.DataFrame, human: pd.DataFrame,
           as_of: dt.date) -> list[Unit]:
    """The account's org units: CRM ones, and units derived from SDK calls that a membership or
    an event up to as_of names (with their parents)."""
    standing = memberships[memberships["valid_to"].isna()]
    members = standing.groupby("unit_id")["user_id"].nunique()
    recent = human[human["events_30d"] > 0]
    active = recent.groupby("unit_id")["user_id"].nunique()
    parents = units.set_index("unit_id")["parent_unit_id"]
    seen = set(memberships["unit_id"].dropna()) | set(human["unit_id"].dropna())
    for _ in UNIT_KINDS:  # a unit's parents are known with it
        seen |= {p for p in (parents.get(u) for u in seen) if isinstance(p, str)}
    order = {kind: i for i, kind in enumerate(UNIT_KINDS)}
    kept = units[(units["source"] != "sdk") | units["unit_id"].isin(seen)]
    kept = kept.assign(order=kept["kind"].map(order)).sort_values(["order", "name", "unit_id"])
    return [Unit(unit_id=str(r.unit_id), name=plain(r.name), kind=str(r.kind),
                 parent_unit_id=plain(r.parent_unit_id), members=int(members.get(r.unit_id, 0)),
                 active_users_30d=int(active.get(r.unit_id, 0)))
            for r in kept.itertuples()]


def _contract(store: Store, settings: Any, params: dict, as_of: dt.date,
              human: pd.DataFrame) -> Contract:
    from accountlens.metrics.registry import metric_request
    from accountlens.metrics.registry import run as run_metric

    subscriptions = []
    for r in store.rows(_SUBSCRIPTIONS_SQL, used(_SUBSCRIPTIONS_SQL, params)):
        if r["end_date"] is not None and r["end_date"] <= as_of:
            continue  # ended: [start, end)
        subscriptions.append(Subscription(
            subscription_id=r["subscription_id"], product=r["product"], plan=r["plan"],
            seats=r["seats"], arr=r["arr"], start=r["start_date"], end=r["end_date"],
            days_to_end=(r["end_date"] - as_of).days if r["end_date"] else None))
    seats = sum(s.seats or 0 for s in subscriptions)
    mau = int(human.loc[human["events_30d"] > 0, "user_id"].nunique())
    key = (store.instance, store.data_version, as_of, settings.metrics.model_dump_json(),
           settings.analysis.model_dump_json())
    rows = _ALIGNMENT.get(key)
    if rows is None:  # every account's at once: one compiled query for every page of the day
        request = metric_request("contract_alignment", "account", as_of, {}, {})
        rows = run_metric(store, settings.metrics, settings.analysis, request).frame
        _ALIGNMENT.put(key, rows)
    rows = rows[rows["account_id"] == params["account"]]
    entitlements = [Entitlement(entitlement=r.entitlement, usage=plain(r.used), limit=plain(r.entitled),
                                alignment=plain(r.alignment)) for r in rows.itertuples()]
    return Contract(subscriptions=subscriptions, seats=seats,
                    arr=float(sum(s.arr or 0.0 for s in subscriptions)), mau=mau,
                    seat_utilization=mau / seats if seats else None, entitlements=entitlements)


def _children(store: Store, settings: Any, account_id: str, as_of: dt.date) -> list[ChildAccount]:
    """Direct children known on as_of, with their health (the health analysis, kept between
    requests); no health is computed for an account without children."""
    if not store.scalar("SELECT count(*) FROM accounts WHERE parent_account_id = ?", [account_id]):
        return []
    health = run_analysis(store, settings, "health", as_of=as_of, limit=MAX_ROWS).frame
    children = health[health["parent_account_id"] == account_id].sort_values("account_id")
    return [ChildAccount(account_id=str(r.account_id), name=plain(r.account_name),
                         arr=float(plain(r.arr) or 0.0), health_score=plain(r.score),
                         health_grade=str(r.grade)) for r in children.itertuples()]


def _money(value: float | None) -> str:
    return "no ARR change" if value is None else f"ARR {value:+,.0f}"


def _timeline(store: Store, settings: Any, params: dict, memberships: pd.DataFrame,
              activity: pd.DataFrame) -> list[TimelineEntry]:
    as_of = params["day"]
    entries: list[TimelineEntry] = []
    for r in store.rows(_OUTCOMES_SQL, used(_OUTCOMES_SQL, params)):
        entries.append(TimelineEntry(at=r["date"], kind="outcome",
                                     text=f"{r['kind']} ({_money(r['arr_delta'])})"))
    for r in store.rows(_SUBSCRIPTIONS_SQL, used(_SUBSCRIPTIONS_SQL, params)):
        what = " ".join(str(v) for v in (r["product"], r["plan"]) if v) or "subscription"
        terms = ", ".join(t for t in (f"{r['seats']} seats" if r["seats"] is not None else "",
                                      f"ARR {r['arr']:,.0f}" if r["arr"] is not None else "") if t)
        entries.append(TimelineEntry(at=r["start_date"], kind="subscription_started",
                                     text=f"{r['subscription_id']} started: {what}"
                                          + (f" ({terms})" if terms else "")))
        if r["end_date"] is not None and r["end_date"] <= as_of:
            entries.append(TimelineEntry(at=r["end_date"], kind="subscription_ended",
                                         text=f"{r['subscription_id']} ended: {what}"))
    entries += _membership_changes(memberships)
    if len(activity):  # the account's first active event, human or not
        first = activity.sort_values(["first_at", "first_name", "user_id"]).iloc[0]
        user_id = plain(first["user_id"])
        who = f" by {user_id}" if user_id else " (account-wide)"
        entries.append(TimelineEntry(at=first["first_at"].date(), kind="first_event",
                                     text=f"first event: {first['first_name']}{who}",
                                     user_id=user_id))
    entries += _champion(store, settings, params)
    entries.sort(key=lambda e: (-e.at.toordinal(), TIMELINE_KINDS.index(e.kind),
                                e.user_id or "", e.text))
    return entries[:MAX_TIMELINE]


def _membership_changes(memberships: pd.DataFrame) -> list[TimelineEntry]:
    """Joins and departures (the stretches of membership, all sources merged) and role changes
    (a row of one source ending where the next of the same source begins with another role)."""
    import itertools

    ordered = memberships.sort_values(["user_id", "valid_from"], kind="stable")
    columns = {name: python_values(ordered[name]) for name in ordered.columns}
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    entries: list[TimelineEntry] = []
    for user_id, grouped in itertools.groupby(rows, key=lambda r: r["user_id"]):
        group = list(grouped)
        stretches: list[list] = []  # [start, end]: rows overlapping or touching; end None = standing
        for r in group:
            last = stretches[-1] if stretches else None
            if last is not None and (last[1] is None or r["valid_from"] <= last[1]):
                last[1] = None if last[1] is None or r["valid_to"] is None else max(
                    last[1], r["valid_to"])
            else:
                stretches.append([r["valid_from"], r["valid_to"]])
        for start, end in stretches:
            entries += _stretch(user_id, start, end)
        for source in {r["source"] for r in group}:
            previous = None
            for r in (r for r in group if r["source"] == source):
                if (previous is not None and previous["valid_to"] == r["valid_from"]
                        and previous["role"] != r["role"]):
                    entries.append(TimelineEntry(
                        at=r["valid_from"].date(), kind="role_changed", user_id=user_id,
                        text=f"{user_id}: role {previous['role'] or '(none)'} → "
                             f"{r['role'] or '(none)'}"))
                previous = r
    unique = {(e.at, e.kind, e.user_id, e.text): e for e in entries}  # CRM and SDK rows agree
    return list(unique.values())


def _stretch(user_id: str, start: Any, end: Any) -> list[TimelineEntry]:
    out = [TimelineEntry(at=start.date(), kind="user_joined", user_id=user_id,
                         text=f"{user_id} joined")]
    if end is not None:
        out.append(TimelineEntry(at=end.date(), kind="user_left", user_id=user_id,
                                 text=f"{user_id} left"))
    return out


def _champion(store: Store, settings: Any, params: dict) -> list[TimelineEntry]:
    """The champion's departure or silence (champions analysis), if either. Every account's
    champions are asked for, as the account features ask (analysis/features.py): the result
    the accounts list and health already keep, computed once per day for all account pages
    (one account alone costs ~0.6 s at 10M events, every time another account is shown)."""
    rows = run_analysis(store, settings, "champions", as_of=params["day"], limit=MAX_ROWS).frame
    rows = rows[rows["account_id"] == params["account"]]
    entries = []
    for r in rows.to_dict(orient="records"):
        share = f"{r['share_of_activity']:.0%} of the activity" if plain(
            r["share_of_activity"]) is not None else ""
        if r["status"] == "left" and plain(r["left_on"]):
            entries.append(TimelineEntry(
                at=dt.date.fromisoformat(r["left_on"]), kind="champion", user_id=r["champion"],
                text=f"champion {r['champion']} left ({share}; risk {r['risk']})"))
        elif r["status"] == "quiet" and plain(r["last_seen"]):
            entries.append(TimelineEntry(
                at=dt.date.fromisoformat(r["last_seen"]), kind="champion", user_id=r["champion"],
                text=f"champion {r['champion']} went quiet: last seen "
                     f"{r['days_since_seen']} days before as_of ({share}; risk {r['risk']})"))
    return entries
