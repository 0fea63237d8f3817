"""SPEC §3.0 intervals and precedence: subscriptions are half-open `[start, end)`, and a CRM end
closes the SDK-derived membership of the same user and account unless later activity or a later
`group` call reopens it (model/memberships.py `effective_memberships_sql`), point-in-time (§8).

The scenario (as of 2024-06-30; every track at 09:00 UTC, one account per case):
- acme      ann: CRM admin [01-01, 06-20), SDK group 01-02 09:00 still open; bob CRM editor.
            Subscription A [01-01, 06-30) 10 seats, 12000 ARR; its renewal B [06-30, …) 4 seats,
            6000 ARR.
- globex    cat: CRM admin [01-01, 08-01) — the end is after as_of.
- initech   dan: CRM [01-01, 06-01), SDK group 01-02, active again 06-15 (reopens);
            frank: CRM [01-01, 06-01), SDK group 01-02, a `group` call "left" on 06-10.
- umbrella  eve: CRM [01-01, 06-01), SDK group 01-02, a new `group` call 06-20 (reopens).
- stark     hank: CRM [01-01, 05-01) only, busy before leaving; ida: CRM editor [01-01, 07-01)
            then admin from 07-01.
- vandelay  a customer with automation events only; hooli: a membership, nothing else;
            nobody: an imported account without dates, events or members.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from accountlens.analysis.registry import day_end
from accountlens.model.memberships import effective_memberships_sql
from accountlens.workspace import Workspace

AS_OF = dt.date(2024, 6, 30)

ACCOUNTS = """account_id,name,domain
acme,Acme,acme.com
globex,Globex,globex.com
initech,Initech,initech.com
umbrella,Umbrella,umbrella.com
stark,Stark,stark.com
vandelay,Vandelay,vandelay.com
hooli,Hooli,hooli.com
nobody,Nobody,nobody.com
"""
USERS = "user_id,email\n" + "".join(
    f"{u},{u}@{a}.com\n" for u, a in (("ann", "acme"), ("bob", "acme"), ("cat", "globex"),
                                      ("dan", "initech"), ("frank", "initech"),
                                      ("eve", "umbrella"), ("hank", "stark"), ("ida", "stark"),
                                      ("gus", "hooli")))
MEMBERSHIPS = """user_id,account_id,unit_id,role,valid_from,valid_to
ann,acme,,admin,2024-01-01,2024-06-20
bob,acme,,editor,2024-01-01,
cat,globex,,admin,2024-01-01,2024-08-01
dan,initech,,editor,2024-01-01,2024-06-01
frank,initech,,editor,2024-01-01,2024-06-01
eve,umbrella,,editor,2024-01-01,2024-06-01
hank,stark,,editor,2024-01-01,2024-05-01
ida,stark,,editor,2024-01-01,2024-07-01
ida,stark,,admin,2024-07-01,
gus,hooli,,viewer,2024-01-01,
"""
SUBSCRIPTIONS = """subscription_id,account_id,product,plan,seats,arr,start,end,status
acme-a,acme,core,pro,10,12000,2024-01-01,2024-06-30,active
acme-b,acme,core,pro,4,6000,2024-06-30,2025-06-30,active
vandelay-a,vandelay,core,pro,5,5000,2024-01-01,,active
"""


def track(user: str | None, day: str, account: str | None = None, hour: str = "09") -> dict:
    event = {"type": "track", "messageId": f"{user or account}-{day}", "event": "Report Viewed",
             "timestamp": f"2024-{day}T{hour}:00:00Z"}
    if user:
        event["userId"] = user
    if account:
        event["context"] = {"groupId": account}
    return event


def group(user: str, account: str, day: str, **traits: str) -> dict:
    return {"type": "group", "messageId": f"g-{user}-{day}", "userId": user, "groupId": account,
            "timestamp": f"2024-{day}T09:00:00Z", "traits": traits}


EVENTS = [
    {"type": "identify", "messageId": "i-ann", "userId": "ann", "timestamp": "2024-01-02T08:00:00Z",
     "traits": {"role": "admin"}},
    group("ann", "acme", "01-02"),
    *[track("ann", d) for d in ("05-05", "05-15", "05-25", "06-05", "06-15")],
    *[track("bob", d) for d in ("05-10", "06-10")],
    *[track("cat", d) for d in ("06-03", "06-24")],
    group("dan", "initech", "01-02"), group("frank", "initech", "01-02"),
    group("frank", "initech", "06-10", membership_status="left"),
    *[track("dan", d) for d in ("05-10", "05-20", "06-15", "06-25")],
    group("eve", "umbrella", "01-02"),
    *[track("eve", d) for d in ("05-05", "05-20")],
    group("eve", "umbrella", "06-20"),
    *[track("hank", d) for d in ("02-05", "02-20", "03-01", "03-10", "03-20", "03-30", "04-10",
                                 "04-20")],
    *[track("ida", d) for d in ("04-25", "05-10", "05-20", "06-01", "06-10", "06-20")],
    *[track(None, d, account="vandelay", hour="03") for d in ("06-10", "06-28")],
]


def build_scenario(root: Path) -> Workspace:
    ws = Workspace.init(root / "ws", name="precedence")
    for kind, text in (("accounts", ACCOUNTS), ("users", USERS), ("memberships", MEMBERSHIPS),
                       ("subscriptions", SUBSCRIPTIONS)):
        path = root / f"{kind}.csv"
        path.write_text(text)
        ws.import_entities(kind, path)
    path = root / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    ws.import_events(path)
    return ws


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    ws = build_scenario(tmp_path_factory.mktemp("precedence"))
    yield ws
    ws.close()


def effective(ws: Workspace, as_of: dt.date, *users: str) -> list[tuple]:
    """(user, account, role, valid_from, valid_to, source) of the effective memberships."""
    return [tuple(r.values()) for r in ws.store.rows(
        f"""SELECT user_id, account_id, role, strftime(valid_from, '%m-%d %H:%M') AS valid_from,
                   strftime(valid_to, '%m-%d %H:%M') AS valid_to, source
            FROM ({effective_memberships_sql()})
            WHERE list_contains($users, user_id) ORDER BY ALL""",
        {"end": day_end(as_of), "users": list(users)})]


def test_a_crm_end_closes_the_sdk_membership_until_activity_or_a_group_call(scenario) -> None:
    raw = scenario.store.rows("SELECT user_id, valid_to FROM memberships WHERE source = 'sdk' "
                              "AND user_id IN ('ann', 'dan', 'eve')")
    assert [r["valid_to"] for r in raw] == [None, None, None]  # the SDK alone never saw them go
    assert effective(scenario, AS_OF, "ann", "dan", "eve", "frank") == [
        # ann: no activity after 06-20: the SDK membership is closed at the CRM end
        ("ann", "acme", "admin", "01-01 00:00", "06-20 00:00", "import"),
        ("ann", "acme", "admin", "01-02 09:00", "06-20 00:00", "sdk"),
        # dan: closed 06-01, reopened by his event of 06-15 09:00
        ("dan", "initech", "editor", "01-01 00:00", "06-01 00:00", "import"),
        ("dan", "initech", None, "01-02 09:00", "06-01 00:00", "sdk"),
        ("dan", "initech", None, "06-15 09:00", None, "sdk"),
        # eve: closed 06-01, reopened by her group call of 06-20 09:00
        ("eve", "umbrella", "editor", "01-01 00:00", "06-01 00:00", "import"),
        ("eve", "umbrella", None, "01-02 09:00", "06-01 00:00", "sdk"),
        ("eve", "umbrella", None, "06-20 09:00", None, "sdk"),
        # frank: the SDK row ran to his "left" call of 06-10, which reopens nothing: cut at 06-01
        ("frank", "initech", "editor", "01-01 00:00", "06-01 00:00", "import"),
        ("frank", "initech", None, "01-02 09:00", "06-01 00:00", "sdk"),
    ]


def test_effective_memberships_are_point_in_time(scenario) -> None:
    # as of 05-31 (end 06-01 00:00) the CRM ends of 06-01 are not known yet: everything stands
    assert effective(scenario, dt.date(2024, 5, 31), "dan", "frank") == [
        ("dan", "initech", "editor", "01-01 00:00", None, "import"),
        ("dan", "initech", None, "01-02 09:00", None, "sdk"),
        ("frank", "initech", "editor", "01-01 00:00", None, "import"),
        ("frank", "initech", None, "01-02 09:00", None, "sdk"),
    ]
    # as of 06-14 dan's event of 06-15 is not known: his SDK membership stays closed
    assert effective(scenario, dt.date(2024, 6, 14), "dan")[1:] == [
        ("dan", "initech", None, "01-02 09:00", "06-01 00:00", "sdk")]
    # ida's end of 07-01 and her admin row from 07-01 are not known on 06-30; cat's 08-01 neither
    assert effective(scenario, AS_OF, "ida", "cat") == [
        ("cat", "globex", "admin", "01-01 00:00", None, "import"),
        ("ida", "stark", "editor", "01-01 00:00", None, "import"),
    ]
    assert effective(scenario, dt.date(2024, 7, 1), "ida") == [
        ("ida", "stark", "admin", "07-01 00:00", None, "import"),
        ("ida", "stark", "editor", "01-01 00:00", "07-01 00:00", "import"),
    ]


def test_the_end_parameter_must_be_a_parameter_name() -> None:
    assert "$as_of_end" in effective_memberships_sql("$as_of_end")
    with pytest.raises(ValueError, match="end_param must name a SQL parameter"):
        effective_memberships_sql("now()")


def test_a_renewal_starting_the_day_its_predecessor_ends_replaces_it(scenario) -> None:
    """acme on 06-30: A [01-01, 06-30) is over, B [06-30, …) in force: 4 seats, not 10 + 4.
    MAU over (05-31, 06-30]: ann (06-05, 06-15) and bob (06-10) = 2 → 2 / 4 = 0.5
    (counting both would give 2 / 14). On 06-29 only A: 2 / 10 = 0.2."""
    def acme(name: str, day: dt.date) -> dict:
        frame = scenario.metric(name, level="account", as_of=day)
        return frame.set_index("account_id").loc["acme"].to_dict()

    on_d = acme("seat_utilization", AS_OF)
    assert (on_d["mau"], on_d["seats"], on_d["seat_utilization"]) == (2, 4, 0.5)
    before = acme("seat_utilization", AS_OF - dt.timedelta(days=1))
    assert (before["mau"], before["seats"], before["seat_utilization"]) == (2, 10, 0.2)
    assert acme("arr", AS_OF)["arr"] == 6000.0
    assert acme("arr", AS_OF - dt.timedelta(days=1))["arr"] == 12000.0
    seats = scenario.metric("contract_alignment", level="account", as_of=AS_OF, account="acme")
    seats = seats[seats.entitlement == "seats"].iloc[0]
    assert (seats.entitled, seats.used, seats.alignment) == (4.0, 2.0, 0.5)
