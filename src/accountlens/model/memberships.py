"""Membership history (SCD type 2) derived from SDK calls, for teams that send no CRM data.

Rules, applied per user in timestamp order over that user's identify and group calls:
- `group(userId, groupId)` starts a membership in that account (a user may be in several);
  `traits.membership_status` of `removed` or `left` on a group call ends it.
- `identify` traits `role`, `department`, `team` (and `business_unit`) set the user's role and
  org unit in the account named by `context.groupId`, or else in the account the user joined
  last; a change closes the current row and opens a new one at the call's timestamp.
Rows derived here have `source = 'sdk'`. A load carries each user's replay on from the state
their last stored call left (`membership_states`); calls arriving late or out of order make it
replay that user's whole history, so the rows are always those of a full replay.

CRM rows (imported, any other source) and SDK rows are merged at read time by
`effective_memberships_sql` (SPEC §3.0): a CRM end closes the SDK membership of the same user and
account until that user's next activity there or next `group` call to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from accountlens.model.entities import UNIT_KINDS
from accountlens.store.base import WritableStore

if TYPE_CHECKING:
    import pyarrow as pa

ORG_TRAITS = UNIT_KINDS  # identify traits named like the unit kinds, outermost first
LEAVE_STATUSES = ("removed", "left")
SQL_PARAM = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


def unit_id(account_id: str, kind: str, name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-") or "unnamed"
    return f"{account_id}/{kind}/{slug}"


@dataclass
class _State:
    role: str | None = None
    business_unit: str | None = None
    department: str | None = None
    team: str | None = None

    def unit_chain(self, account_id: str) -> list[tuple[str, str, str, str | None]]:
        """(unit_id, kind, name, parent_unit_id) from the outermost unit inwards."""
        chain: list[tuple[str, str, str, str | None]] = []
        parent: str | None = None
        for kind in ORG_TRAITS:
            name = getattr(self, kind)
            if name:
                uid = unit_id(account_id, kind, name)
                chain.append((uid, kind, name, parent))
                parent = uid
        return chain


class _History:
    """One user's membership history replayed call by call: the state after the calls applied
    so far (`state()`: what `membership_states` keeps), and the rows this replay opened or,
    resumed from the store (`resumed`), holds open."""

    def __init__(self, user_id: str):
        self.user_id = user_id
        self.latest = _State()  # the user's latest traits; a newly joined account starts from them
        self.states: dict[str, _State] = {}  # per account with an open row
        self.open_rows: dict[str, list] = {}
        self.rows: list[list] = []
        self.units: dict[str, tuple] = {}
        self.last_account: str | None = None

    @classmethod
    def resumed(cls, user_id: str, state: dict, open_rows: list[tuple]) -> _History:
        """The replay as it stood after the user's last stored call: `state` from
        `membership_states`, `open_rows` the user's open SDK rows (one per account)."""
        history = cls(user_id)
        history.latest = _State(**state["latest"])
        history.states = {account: _State(**s) for account, s in state["accounts"].items()}
        history.last_account = state["last_account"]
        for row in open_rows:
            history.open_rows[row[1]] = list(row)
            history.rows.append(history.open_rows[row[1]])
        return history

    def state(self) -> dict:
        return {"latest": vars(self.latest), "last_account": self.last_account,
                "accounts": {account: vars(s) for account, s in self.states.items()}}

    def _close(self, account: str, ts: int) -> None:
        row = self.open_rows.pop(account, None)
        if row is not None:
            row[5] = ts

    def _open(self, account: str, ts: int) -> None:
        chain = self.states[account].unit_chain(account)
        for uid, kind, name, parent in chain:
            self.units[uid] = (uid, account, kind, name, parent, "sdk")
        row = [self.user_id, account, chain[-1][0] if chain else None, self.states[account].role,
               ts, None, "sdk"]
        self.rows.append(row)
        self.open_rows[account] = row

    def _join(self, account: str, ts: int) -> None:
        """A row in an account the user has none open in, with their latest traits."""
        self.states[account] = _State(**vars(self.latest))
        self._open(account, ts)
        self.last_account = account

    def apply(self, call: dict) -> None:
        ts, traits = call["timestamp"], call["traits"] or {}
        if call["type"] == "group":
            account = call["group_id"]
            status = str(traits.get("membership_status", "")).lower()
            if status in LEAVE_STATUSES:
                self._close(account, ts)
                self.states.pop(account, None)
                return
            if account not in self.open_rows:
                self._join(account, ts)
            self.last_account = account
            return
        # identify: org traits apply to the named account, else to the latest joined one
        changes = {k: str(traits[k]) for k in ("role", *ORG_TRAITS) if traits.get(k) not in (None, "")}
        if not changes:
            return
        for key, value in changes.items():
            setattr(self.latest, key, value)
        target = call["group_id"] or self.last_account
        if target is None:
            return
        if target not in self.open_rows:
            self._join(target, ts)
            return
        state = self.states[target]
        if all(getattr(state, k) == v for k, v in changes.items()):
            return
        for key, value in changes.items():
            setattr(state, key, value)
        self._close(target, ts)
        self._open(target, ts)

    def kept_rows(self) -> set[tuple]:
        # A row closed at the instant it opened carries no time; drop it.
        return {tuple(r) for r in self.rows if r[5] is None or r[5] > r[4]}


def _resumable(state: dict, stored: set[tuple]) -> bool:
    """Whether a user's stored SDK rows are the ones the replay that left `state` wrote: the
    same number of rows, and an open row per account of the state, with its role and unit.
    Anything else (rows deleted with a person, edited by hand) is replayed in full."""
    open_rows = [r for r in stored if r[5] is None]
    accounts = state["accounts"]

    def unit(account: str) -> str | None:
        chain = _State(**accounts[account]).unit_chain(account)
        return chain[-1][0] if chain else None

    return (state.get("rows") == len(stored) and len(open_rows) == len(accounts)
            and all(r[1] in accounts and r[3] == accounts[r[1]]["role"] and r[2] == unit(r[1])
                    for r in open_rows))


def _rows(table: pa.Table) -> list[dict]:
    """Rows as dicts, built column-wise (much faster than `Table.to_pylist`)."""
    columns = table.to_pydict()
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def first_difference(old: set[tuple], new: set[tuple]) -> int | None:
    """The earliest moment (µs) at which two histories of one user give different memberships
    (rows `(…, valid_from, valid_to, source)`), or None when they never do.

    Memberships valid at a moment change only where some row that is in one history and not the
    other starts or ends; a role change that closes a row and opens another at t changes nothing
    before t, so only events from t on need attributing again."""
    differing = old ^ new
    moments = sorted({r[4] for r in differing} | {r[5] for r in differing if r[5] is not None})

    def valid(rows: set[tuple], at: int) -> set[tuple]:
        # what attribution reads of the rows valid then: all but their end
        return {(*r[:5], r[6]) for r in rows if r[4] <= at and (r[5] is None or at < r[5])}

    return next((at for at in moments if valid(old, at) != valid(new, at)), None)


_NAMES = ["user_id", "account_id", "unit_id", "role", "valid_from", "valid_to", "source"]
_CALL_TYPES = "('identify', 'group')"


def _parsed_calls(table: pa.Table) -> dict[str, list[dict]]:
    """Ordered calls (`user_id, type, group_id, timestamp, message_id, traits`) by user, their
    traits parsed (anything but a JSON object reads as no traits)."""
    by_user: dict[str, list[dict]] = {}
    for call in _rows(table):
        try:
            traits = orjson.loads(call["traits"]) if call["traits"] else {}
        except orjson.JSONDecodeError:
            traits = {}
        call["traits"] = traits if isinstance(traits, dict) else {}
        by_user.setdefault(call["user_id"], []).append(call)
    return by_user


def _stored_rows(store: WritableStore, users: str) -> dict[str, set[tuple]]:
    """The SDK rows of the users of the SQL relation `users` (a `user_id` column)."""
    stored: dict[str, set[tuple]] = {}
    for row in _rows(store.arrow(
            "SELECT user_id, account_id, unit_id, role, epoch_us(valid_from) AS valid_from, "
            "epoch_us(valid_to) AS valid_to, source FROM memberships WHERE source = 'sdk' "
            f"AND user_id IN (SELECT user_id FROM {users})")):
        stored.setdefault(row["user_id"], set()).add(tuple(row[n] for n in _NAMES))
    return stored


def _call_sql(table: str, user_column: str) -> str:
    return (f"SELECT {user_column} AS user_id, type, group_id, epoch_us(timestamp) AS timestamp, "
            f"message_id, CAST(traits AS VARCHAR) AS traits FROM {table}")


def rebuild_from_sdk(store: WritableStore, new: str) -> dict[str, int | None]:
    """Bring the SDK-derived memberships of the users with identify/group calls in table `new`
    (the batch being loaded, not yet written) up to date with those calls.

    A user's replay resumes from where their last stored call left it (`membership_states`:
    the replay's state, and the position of that call in the `(timestamp, message_id)` order)
    and applies only the batch's calls, so a load reads no stored events for them; a user
    without a state row has no stored calls (every load writes the state of every user it
    replays, and the migration wrote one for every user with calls), and starts from nothing.
    A user whose batch holds a call at or before that position (late or out-of-order data),
    whose state is not known (`replay`), or whose stored rows are not the ones the state's
    replay wrote, is replayed in full from every stored call plus the batch's: either way the
    rows are those of a full replay.

    Returns the users whose membership history changed, each with the first moment (µs) from
    which their events must be attributed again (`first_difference`). Times are handled as
    integer microseconds: converting them to Python datetimes cost more than the history itself.
    """
    import pyarrow as pa  # here: loading it is costly, and `accountlens status` need not

    store.execute(f"""CREATE OR REPLACE TEMP TABLE _membership_calls AS
                      SELECT sent_user_id AS user_id, type, group_id, timestamp, message_id, traits
                      FROM {new} WHERE type IN {_CALL_TYPES} AND sent_user_id IS NOT NULL""")
    try:
        if not store.scalar("SELECT count(*) FROM _membership_calls"):
            return {}
        if store.scalar(f"SELECT EXISTS (SELECT 1 FROM membership_states WHERE {_UNFILLED})"):
            fill_states(store)  # a workspace from before the states: once
        # per user: the stored state, and whether every call of the batch comes after it
        states = {row["user_id"]: row for row in _rows(store.arrow(
            """SELECT c.user_id, any_value(CAST(s.state AS VARCHAR)) AS state,
                      bool_and(c.timestamp > s.last_timestamp OR (c.timestamp = s.last_timestamp
                               AND c.message_id > s.last_message_id)) AS after
               FROM _membership_calls c LEFT JOIN membership_states s USING (user_id)
               GROUP BY c.user_id"""))}
        stored = _stored_rows(store, "_membership_calls")
        resumed: dict[str, dict] = {}
        fresh: set[str] = set()  # no stored calls: the batch's are the whole history
        for user_id, row in states.items():
            if row["state"] is None:
                if not stored.get(user_id):
                    fresh.add(user_id)
                continue
            state = orjson.loads(row["state"])
            if row["after"] and not state.get("replay") and _resumable(state, stored.get(user_id, set())):
                resumed[user_id] = state
        replayed = sorted(set(states) - set(resumed) - fresh)
        calls_sql = _call_sql("_membership_calls", "user_id")
        if replayed:
            calls_sql += (" UNION ALL " + _call_sql("events", "sent_user_id")
                          + f" WHERE type IN {_CALL_TYPES} AND sent_user_id IN (SELECT unnest(?))")
        calls = _parsed_calls(store.arrow(
            f"SELECT * FROM ({calls_sql}) ORDER BY user_id, timestamp, message_id",
            [replayed] if replayed else None))
        histories: dict[str, _History] = {}
        new_rows: dict[str, set[tuple]] = {}
        for user_id, user_calls in calls.items():
            old = stored.get(user_id, set())
            if user_id in resumed:
                open_rows = [r for r in old if r[5] is None]
                history = _History.resumed(user_id, resumed[user_id], open_rows)
            else:
                history = _History(user_id)
            for call in user_calls:
                history.apply(call)
            histories[user_id] = history
            # a resumed replay holds the rows it opened and the stored open ones it took over
            new_rows[user_id] = history.kept_rows() | (
                {r for r in old if r[5] is not None} if user_id in resumed else set())
        _write_states(store, {u: (calls[u][-1], {**h.state(), "rows": len(new_rows[u])})
                              for u, h in histories.items()})
        changed = {u: first_difference(stored.get(u, set()), new_rows[u])
                   for u in histories if new_rows[u] != stored.get(u, set())}
        _write_rows(store, changed, new_rows)
        units = {u[0]: u for history in histories.values() for u in history.units.values()}
        if units:
            unit_names = ["unit_id", "account_id", "kind", "name", "parent_unit_id", "source"]
            table = pa.Table.from_pylist([dict(zip(unit_names, u)) for u in units.values()],
                                         schema=pa.schema([(n, pa.string()) for n in unit_names]))
            with store.registered("_sdk_units", table):
                store.execute("INSERT OR IGNORE INTO org_units SELECT * FROM _sdk_units")
        return changed
    finally:
        store.execute("DROP TABLE IF EXISTS _membership_calls")


def _write_rows(store: WritableStore, changed: dict, new_rows: dict[str, set[tuple]]) -> None:
    """Replace the SDK rows of the users in `changed` by their `new_rows`."""
    import pyarrow as pa

    if not changed:
        return
    store.execute("DELETE FROM memberships WHERE source = 'sdk' AND list_contains(?, user_id)",
                  [list(changed)])
    added = [dict(zip(_NAMES, r)) for u in changed for r in sorted(new_rows[u], key=str)]
    if added:
        schema = pa.schema([("user_id", pa.string()), ("account_id", pa.string()),
                            ("unit_id", pa.string()), ("role", pa.string()),
                            ("valid_from", pa.timestamp("us", tz="UTC")),
                            ("valid_to", pa.timestamp("us", tz="UTC")), ("source", pa.string())])
        with store.registered("_sdk_memberships", pa.Table.from_pylist(added, schema=schema)):
            store.execute(f"INSERT INTO memberships SELECT {', '.join(_NAMES)} FROM _sdk_memberships")


def _write_states(store: WritableStore, states: dict[str, tuple[dict, dict]]) -> None:
    """Keep each user's (last call, state): the position of that call and the replay's state."""
    import pyarrow as pa

    users = list(states)
    table = pa.table({
        "user_id": pa.array(users, pa.string()),
        "last_timestamp": pa.array([states[u][0]["timestamp"] for u in users],
                                   pa.timestamp("us", tz="UTC")),
        "last_message_id": pa.array([states[u][0]["message_id"] for u in users], pa.string()),
        "state": pa.array([orjson.dumps(states[u][1]).decode() for u in users], pa.string()),
    })
    with store.registered("_membership_states", table):
        store.execute("DELETE FROM membership_states "
                      "WHERE user_id IN (SELECT user_id FROM _membership_states)")
        store.execute("INSERT INTO membership_states SELECT user_id, last_timestamp, "
                      "last_message_id, CAST(state AS JSON) FROM _membership_states")


# The rows the migration wrote (store/schema.py, "membership replay states"): a user with
# stored calls whose state `fill_states` has not replayed yet.
_UNFILLED = "last_message_id = ''"


def fill_states(store: WritableStore) -> int:
    """Replay the stored identify/group calls of every user the migration left unfilled, and
    keep their states; a user whose stored SDK rows are not what the replay gives (rows
    removed, calls expired) is marked to be replayed in full when a call of theirs arrives.
    Once, for a workspace from before `membership_states`; returns the number of users."""
    users = f"(SELECT user_id FROM membership_states WHERE {_UNFILLED})"
    calls = _parsed_calls(store.arrow(
        f"SELECT * FROM ({_call_sql('events', 'sent_user_id')} WHERE type IN {_CALL_TYPES} "
        f"AND sent_user_id IN {users}) ORDER BY user_id, timestamp, message_id"))
    stored = _stored_rows(store, users)
    states: dict[str, tuple[dict, dict]] = {}
    for user_id, user_calls in calls.items():
        history = _History(user_id)
        for call in user_calls:
            history.apply(call)
        rows = history.kept_rows()
        state = ({**history.state(), "rows": len(rows)} if rows == stored.get(user_id, set())
                 else {"replay": True})
        states[user_id] = (user_calls[-1], state)
    store.execute(f"DELETE FROM membership_states WHERE {_UNFILLED}")
    if states:
        _write_states(store, states)
    return len(states)


def effective_memberships_sql(end_param: str = "$end") -> str:
    """SQL (a SELECT) of the memberships as known before the instant `end_param` (a named
    parameter, e.g. `$end` = `day_end(as_of)`), CRM and SDK rows merged (SPEC §3.0, §8).

    Columns: user_id, account_id, unit_id, role, valid_from, valid_to, source — one row per
    stretch of membership, half-open `[valid_from, valid_to)`, valid_to NULL while it stands at
    `end_param`. Several rows of one (user, account) may overlap (a CRM row and an SDK row).
    - Point in time: rows starting at or after `end_param` are not known yet and left out; an end
      at or after `end_param` is not known yet and reads as open (NULL).
    - CRM rows (`source` other than 'sdk') are kept as they are.
    - A CRM end is a *departure* when no CRM row of the same (user, account) continues past it
      (a role change ends one row where the next begins). A departure closes the SDK rows of the
      same (user, account) from that moment until the first *reopening* at or after it: an active
      human event of that user attributed to that account, or a `group` call of that user to it
      (not one with `traits.membership_status` removed/left). From the reopening on, the SDK rows
      stand again as derived; without one, they stay closed.
    """
    if not SQL_PARAM.fullmatch(end_param):
        raise ValueError(f"end_param must name a SQL parameter like '$end', got {end_param!r}")
    end = end_param
    leave = ", ".join(f"'{status}'" for status in LEAVE_STATUSES)
    return f"""
        WITH known AS (
            SELECT user_id, account_id, unit_id, role, valid_from,
                   CASE WHEN valid_to < {end} THEN valid_to END AS valid_to, source
            FROM memberships WHERE valid_from < {end}
        ),
        crm AS (SELECT * FROM known WHERE source <> 'sdk'),
        sdk AS (SELECT * FROM known WHERE source = 'sdk'),
        departures AS (  -- CRM ends no CRM row of the pair continues past, of pairs with SDK rows
            SELECT DISTINCT e.user_id, e.account_id, e.valid_to AS departed
            FROM crm e
            WHERE e.valid_to IS NOT NULL
              AND EXISTS (SELECT 1 FROM sdk s
                          WHERE s.user_id = e.user_id AND s.account_id = e.account_id)
              AND NOT EXISTS (SELECT 1 FROM crm c
                              WHERE c.user_id = e.user_id AND c.account_id = e.account_id
                                AND c.valid_from <= e.valid_to
                                AND (c.valid_to IS NULL OR c.valid_to > e.valid_to))
        ),
        reopenings AS (  -- moments a departed pair shows up again: activity or a group call
            SELECT e.user_id, e.account_id, e.timestamp AS at
            FROM events e SEMI JOIN departures d USING (user_id, account_id)
            WHERE e.type IN ('track', 'page', 'screen') AND e.actor_kind = 'human'
              AND e.timestamp < {end}
            UNION ALL
            SELECT e.sent_user_id, e.group_id, e.timestamp
            FROM events e SEMI JOIN departures d
                 ON d.user_id = e.sent_user_id AND d.account_id = e.group_id
            WHERE e.type = 'group' AND e.timestamp < {end}
              AND coalesce(lower(e.traits ->> 'membership_status'), '') NOT IN ({leave})
        ),
        gaps AS (  -- departures reopened at the same moment make one gap [first of them, reopened)
            SELECT user_id, account_id, min(departed) AS gap_from, reopened AS gap_to
            FROM (SELECT d.user_id, d.account_id, d.departed, min(r.at) AS reopened
                  FROM departures d LEFT JOIN reopenings r
                       ON r.user_id = d.user_id AND r.account_id = d.account_id
                      AND r.at >= d.departed
                  GROUP BY ALL)
            GROUP BY ALL
        ),
        windows AS (  -- between the gaps (disjoint and ordered): NULL = unbounded
            SELECT user_id, account_id,
                   lag(gap_to) OVER (PARTITION BY user_id, account_id ORDER BY gap_from) AS open_from,
                   gap_from AS open_to
            FROM gaps
            UNION ALL  -- after the last gap, when it was reopened
            SELECT user_id, account_id, max(gap_to), NULL FROM gaps
            GROUP BY ALL HAVING count(gap_to) = count(*)
        ),
        cut AS (  -- SDK rows of departed pairs, within the windows (least/greatest skip NULLs)
            SELECT s.user_id, s.account_id, s.unit_id, s.role,
                   greatest(s.valid_from, w.open_from) AS valid_from,
                   least(s.valid_to, w.open_to) AS valid_to,
                   s.source
            FROM sdk s JOIN windows w USING (user_id, account_id)
        )
        SELECT * FROM crm
        UNION ALL
        SELECT * FROM sdk s
        WHERE NOT EXISTS (SELECT 1 FROM gaps g
                          WHERE g.user_id = s.user_id AND g.account_id = s.account_id)
        UNION ALL
        SELECT * FROM cut WHERE valid_to IS NULL OR valid_from < valid_to
    """
