"""One user as of a day (docs/web-api.md): their record, memberships across accounts, activity per
account, daily activity and most used events, as one typed object for the user page,
`accountlens user` and `ws.user_detail`.

Point-in-time (SPEC §8) like the account page (analysis/account_detail.py): activity from the
daily rollup up to as_of, memberships as known then (`effective_memberships_sql`), traits as sent
by then. Every query is filtered by the user.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from accountlens.analysis.account_detail import (
    RECENT_DAYS,
    EntityNotFound,
    day_and_source,
    deciding_rows,
    json_object,
    kept_detail,
    plain,
    used,
)
from accountlens.analysis.registry import day_end, days_before
from accountlens.model.memberships import effective_memberships_sql
from accountlens.store.base import Store
from accountlens.store.cache import BoundedCache

if TYPE_CHECKING:
    import pandas as pd

_KEPT = BoundedCache(64)  # pages asked recently (copies handed out)
ACTIVITY_DAYS = 90  # the daily series and the top events: the days (as_of − 90, as_of]
TOP_EVENTS = 10


class UserInfo(BaseModel):
    user_id: str
    email: str | None
    name: str | None
    created_at: dt.datetime | None = Field(description=(
        "when the user was first known: the profile's creation, or the first membership or "
        "active event when earlier"))
    traits: dict[str, Any] = Field(description=(
        "traits as known on as_of: the profile's, without keys first sent after as_of, with the "
        "values of the identify calls up to as_of"))


class UserMembership(BaseModel):
    account_id: str
    account_name: str | None
    unit_id: str | None
    unit_name: str | None
    role: str | None
    valid_from: dt.datetime
    valid_to: dt.datetime | None = Field(description="null: standing at the end of as_of")
    source: str = Field(description="import (CRM) or sdk (derived from identify/group calls)")


class UserAccount(BaseModel):
    account_id: str
    account_name: str | None
    role: str | None = Field(description="of the standing membership, else the last one, else "
                                         "of the user's last event in the account")
    current: bool = Field(description=(
        "a membership stands at the end of as_of; without any membership there: active in the "
        "account in the last 30 days"))
    last_active_at: dt.datetime | None
    events_30d: int


class DayEvents(BaseModel):
    day: dt.date
    events: int


class NamedEvents(BaseModel):
    name: str
    events: int


class UserDetail(BaseModel):
    as_of: dt.date
    user: UserInfo
    memberships: list[UserMembership] = Field(description="effective, as known on as_of, oldest first")
    accounts: list[UserAccount] = Field(description="accounts of a membership or of an active event")
    activity: list[DayEvents] = Field(description="active events per day, last 90 days, zero-filled")
    top_events: list[NamedEvents] = Field(description="the 10 most frequent active events, 90 days")


_USER_SQL = """
SELECT u.user_id, u.email, u.name, u.created_at, CAST(u.traits AS VARCHAR) AS traits,
       u.updated_at
FROM users u WHERE u.user_id = $user
"""

_MEMBERSHIPS_SQL = f"""
SELECT m.account_id, a.name AS account_name, m.unit_id, o.name AS unit_name, m.role,
       m.valid_from, m.valid_to, m.source
FROM (SELECT * FROM ({effective_memberships_sql("$end")}) WHERE user_id = $user) m
LEFT JOIN accounts a USING (account_id) LEFT JOIN org_units o USING (unit_id)
ORDER BY m.valid_from, m.account_id, m.valid_to NULLS LAST
"""

_ACTIVITY_SQL = """
SELECT day, account_id, name, role, events, first_at, last_at FROM {source}
WHERE user_id = $user AND day <= $day
"""

_IDENTIFY_SQL = """
SELECT CAST(traits AS VARCHAR) AS traits, timestamp < $end AS known FROM events
WHERE user_id = $user AND type = 'identify' AND traits IS NOT NULL
ORDER BY timestamp, message_id
"""

_ACCOUNT_NAMES_SQL = "SELECT account_id, name FROM accounts WHERE list_contains($ids, account_id)"


def user_detail(store: Store, settings: Any, user_id: str,
                as_of: dt.date | str | None = None) -> UserDetail:
    """The user `user_id` as of `as_of` (default: the default as-of); EntityNotFound when there
    is no such user or nothing of them is known by then. Kept like account_detail's."""
    return kept_detail(_KEPT, store, settings, ("user", user_id, as_of),
                       lambda: _user_detail(store, settings, user_id, as_of))


def _user_detail(store: Store, settings: Any, user_id: str,
                 as_of: dt.date | str | None) -> UserDetail:
    import pandas as pd

    as_of, source = day_and_source(store, settings, as_of)
    end = day_end(as_of)
    since = days_before(as_of, ACTIVITY_DAYS)
    params = {"user": user_id, "day": as_of, "end": end}
    found = store.rows(_USER_SQL, used(_USER_SQL, params))
    memberships = store.df(_MEMBERSHIPS_SQL, used(_MEMBERSHIPS_SQL, params))
    activity = store.df(_ACTIVITY_SQL.format(source=source),
                        used(_ACTIVITY_SQL, params))
    record = found[0] if found else None
    created = _created(record, memberships, activity, end)
    if created is None:
        if record is None:
            raise EntityNotFound(f"no user {user_id!r}")
        raise EntityNotFound(f"no user {user_id!r} as of {as_of.isoformat()}: nothing of them is "
                             "known by then (no membership, activity or creation date)")
    traits = json_object(record["traits"]) if record else {}
    if record and traits and (record["updated_at"] is None or record["updated_at"] >= end):
        # the profile changed after as_of (or cannot say when): undo what came later
        traits = _known_traits(traits, store.rows(_IDENTIFY_SQL, used(_IDENTIFY_SQL, params)))
    window = activity[activity["day"] > since]
    daily = window.groupby("day")["events"].sum()
    days = [since + dt.timedelta(days=k) for k in range(1, (as_of - since).days + 1)]
    top = window.groupby("name")["events"].sum().reset_index()
    top = top.sort_values(["events", "name"], ascending=[False, True]).head(TOP_EVENTS)
    return UserDetail(
        as_of=as_of,
        user=UserInfo(user_id=user_id, email=record["email"] if record else None,
                      name=record["name"] if record else None,
                      created_at=created, traits=traits),
        memberships=[UserMembership(
            account_id=str(r.account_id), account_name=plain(r.account_name), unit_id=plain(r.unit_id),
            unit_name=plain(r.unit_name), role=plain(r.role), valid_from=plain(r.valid_from),
            valid_to=plain(r.valid_to), source=str(r.source)) for r in memberships.itertuples()],
        accounts=_accounts(store, memberships, activity, as_of, pd.Timestamp(end)),
        activity=[DayEvents(day=d, events=int(daily.get(d, 0))) for d in days],
        top_events=[NamedEvents(name=str(r.name), events=int(plain(r.events)))
                    for r in top.itertuples() if plain(r.name) is not None])


def _created(record: dict | None, memberships: pd.DataFrame, activity: pd.DataFrame,
             end: dt.datetime) -> dt.datetime | None:
    """When the user was first known as of `end`: the profile's creation time, or their first
    membership or first active event when earlier. (A profile made or changed by calls after
    as_of may carry a later time, which was not known then.)"""
    moments = [plain(m) for m in (memberships["valid_from"].min(), activity["first_at"].min())]
    if record is not None and record["created_at"] is not None and record["created_at"] < end:
        moments.append(record["created_at"])
    moments = [m for m in moments if m is not None]
    return min(moments) if moments else None


def _known_traits(profile: dict[str, Any], calls: list[dict]) -> dict[str, Any]:
    """The profile's traits as they stood at the end of as_of: keys that identify calls sent
    only after it are dropped, and the keys sent up to it take the last value sent by then."""
    before: dict[str, Any] = {}
    later: set[str] = set()
    for call in calls:
        traits = json_object(call["traits"])
        if call["known"]:
            before.update(traits)
        else:
            later.update(traits)
    kept = {k: v for k, v in profile.items() if k not in later or k in before}
    kept.update(before)
    return kept


def _accounts(store: Store, memberships: pd.DataFrame, activity: pd.DataFrame, as_of: dt.date,
              end: pd.Timestamp) -> list[UserAccount]:
    import pandas as pd

    attributed = activity[activity["account_id"].notna()]
    recent = attributed[attributed["day"] > days_before(as_of, RECENT_DAYS)]
    events_30d = recent.groupby("account_id")["events"].sum()
    last_at = attributed.groupby("account_id")["last_at"].max()
    last_role = (attributed.sort_values("last_at").drop_duplicates("account_id", keep="last")
                 .set_index("account_id")["role"])
    standing = (deciding_rows(memberships, by="account_id").set_index("account_id")
                if len(memberships) else None)
    ids = sorted(set(memberships["account_id"]) | set(attributed["account_id"]))
    names = {r["account_id"]: r["name"]
             for r in store.rows(_ACCOUNT_NAMES_SQL, {"ids": ids})} if ids else {}
    accounts = []
    for account_id in ids:
        last = plain(last_at.get(account_id))
        if standing is not None and account_id in standing.index:
            role = standing.at[account_id, "role"]
            current = bool(standing.at[account_id, "standing"])
        else:
            role = last_role.get(account_id)
            current = last is not None and pd.Timestamp(last) >= end - pd.Timedelta(days=RECENT_DAYS)
        accounts.append(UserAccount(account_id=account_id, account_name=names.get(account_id),
                                    role=plain(role), current=current, last_active_at=last,
                                    events_30d=int(events_30d.get(account_id, 0))))
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    accounts.sort(key=lambda a: (a.current, a.last_active_at or oldest), reverse=True)
    return accounts
