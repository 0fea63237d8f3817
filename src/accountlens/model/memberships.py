"""Membership history (SCD type 2) derived from SDK calls, for teams that send no CRM data.

Rules, applied per user in timestamp order over that user's identify and group calls:
- `group(userId, groupId)` starts a membership in that account (a user may be in several);
  `traits.membership_status` of `removed` or `left` on a group call ends it.
- `identify` traits `role`, `department`, `team` (and `business_unit`) set the user's role and
  org unit in the account named by `context.groupId`, or else in the account the user joined
  last; a change closes the current row and opens a new one at the call's timestamp.
Rows derived here have `source = 'sdk'` and are rebuilt whole for the users touched by a load,
so calls arriving late or out of order give the same history.

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


def _history_of_user(user_id: str, calls: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """Membership rows and org units of one user from that user's ordered calls."""
    latest = _State()  # the user's latest traits; a newly joined account starts from them
    states: dict[str, _State] = {}
    open_rows: dict[str, list] = {}
    rows: list[list] = []
    units: dict[str, tuple] = {}
    last_account: str | None = None

    def close(account: str, ts) -> None:
        row = open_rows.pop(account, None)
        if row is not None:
            row[5] = ts

    def open_row(account: str, ts) -> None:
        state = states[account]
        chain = state.unit_chain(account)
        for uid, kind, name, parent in chain:
            units[uid] = (uid, account, kind, name, parent, "sdk")
        row = [user_id, account, chain[-1][0] if chain else None, state.role, ts, None, "sdk"]
        rows.append(row)
        open_rows[account] = row

    for call in calls:
        ts, traits = call["timestamp"], call["traits"] or {}
        if call["type"] == "group":
            account = call["group_id"]
            status = str(traits.get("membership_status", "")).lower()
            if status in LEAVE_STATUSES:
                close(account, ts)
                states.pop(account, None)
                continue
            if account not in open_rows:
                states[account] = _State(**vars(latest))
                open_row(account, ts)
            last_account = account
            continue
        # identify: org traits apply to the named account, else to the latest joined one
        changes = {k: str(traits[k]) for k in ("role", *ORG_TRAITS) if traits.get(k) not in (None, "")}
        if not changes:
            continue
        for key, value in changes.items():
            setattr(latest, key, value)
        target = call["group_id"] or last_account
        if target is None:
            continue
        if target not in open_rows:
            states[target] = _State(**vars(latest))
            open_row(target, ts)
            last_account = target
            continue
        state = states[target]
        if all(getattr(state, k) == v for k, v in changes.items()):
            continue
        for key, value in changes.items():
            setattr(state, key, value)
        close(target, ts)
        open_row(target, ts)
    # A row closed at the instant it opened carries no time; drop it.
    kept = [tuple(r) for r in rows if r[5] is None or r[5] > r[4]]
    return kept, list(units.values())


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


def rebuild_from_sdk(store: WritableStore, new: str) -> dict[str, int | None]:
    """Recompute SDK-derived memberships of the users with identify/group calls in table `new`.

    Calls come from the stored events plus the batch `new` (not yet written). Returns the users
    whose membership history changed, each with the first moment (µs) from which their events
    must be attributed again (`first_difference`). Times are handled as integer microseconds:
    converting them to Python datetimes cost more than the history itself.
    """
    import pyarrow as pa  # here: loading it is costly, and `accountlens status` need not

    calls = store.arrow(
        f"""
        WITH touched AS (
            SELECT DISTINCT sent_user_id FROM {new}
            WHERE type IN ('identify', 'group') AND sent_user_id IS NOT NULL
        ),
        all_calls AS (
            SELECT message_id, sent_user_id, type, group_id, timestamp, traits FROM events
            WHERE type IN ('identify', 'group') AND sent_user_id IN (SELECT * FROM touched)
            UNION ALL
            SELECT message_id, sent_user_id, type, group_id, timestamp, traits FROM {new}
            WHERE type IN ('identify', 'group') AND sent_user_id IN (SELECT * FROM touched)
        )
        SELECT sent_user_id AS user_id, type, group_id, epoch_us(timestamp) AS timestamp,
               CAST(traits AS VARCHAR) AS traits
        FROM all_calls ORDER BY sent_user_id, timestamp, message_id
        """
    )
    calls = _rows(calls)
    if not calls:
        return {}
    by_user: dict[str, list[dict]] = {}
    for call in calls:
        try:
            traits = orjson.loads(call["traits"]) if call["traits"] else {}
        except orjson.JSONDecodeError:
            traits = {}
        call["traits"] = traits if isinstance(traits, dict) else {}
        by_user.setdefault(call["user_id"], []).append(call)
    new_rows: dict[str, set[tuple]] = {}
    all_units: dict[str, tuple] = {}
    for user_id, user_calls in by_user.items():
        rows, units = _history_of_user(user_id, user_calls)
        new_rows[user_id] = set(rows)
        all_units.update({u[0]: u for u in units})
    touched = pa.table({"user_id": list(by_user)})
    names = ["user_id", "account_id", "unit_id", "role", "valid_from", "valid_to", "source"]
    with store.registered("_touched_users", touched):
        old = _rows(store.arrow(
            "SELECT user_id, account_id, unit_id, role, epoch_us(valid_from) AS valid_from, "
            "epoch_us(valid_to) AS valid_to, source FROM memberships WHERE source = 'sdk' "
            "AND user_id IN (SELECT user_id FROM _touched_users)"
        ))
        old_rows: dict[str, set[tuple]] = {}
        for row in old:
            old_rows.setdefault(row["user_id"], set()).add(tuple(row[n] for n in names))
        changed = {u: first_difference(old_rows.get(u, set()), new_rows[u])
                   for u in by_user if new_rows[u] != old_rows.get(u, set())}
        if not changed:
            return {}
        store.execute(
            "DELETE FROM memberships WHERE source = 'sdk' AND list_contains(?, user_id)",
            [list(changed)])
    added = [dict(zip(names, r)) for u in changed for r in sorted(new_rows[u], key=str)]
    if added:
        schema = pa.schema([("user_id", pa.string()), ("account_id", pa.string()),
                            ("unit_id", pa.string()), ("role", pa.string()),
                            ("valid_from", pa.timestamp("us", tz="UTC")),
                            ("valid_to", pa.timestamp("us", tz="UTC")), ("source", pa.string())])
        with store.registered("_sdk_memberships", pa.Table.from_pylist(added, schema=schema)):
            store.execute(f"INSERT INTO memberships SELECT {', '.join(names)} FROM _sdk_memberships")
    if all_units:
        unit_names = ["unit_id", "account_id", "kind", "name", "parent_unit_id", "source"]
        table = pa.Table.from_pylist([dict(zip(unit_names, u)) for u in all_units.values()],
                                     schema=pa.schema([(n, pa.string()) for n in unit_names]))
        with store.registered("_sdk_units", table):
            store.execute("INSERT OR IGNORE INTO org_units SELECT * FROM _sdk_units")
    return changed


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
