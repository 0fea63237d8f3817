"""The org-unit tree is read as deep by the metrics as by the analyses (model/entities.py
UNIT_DEPTH): a user in a team nested ten levels below its business unit counts for that
business unit in both."""

from __future__ import annotations

from accountlens.analysis.registry import unit_level_sql
from accountlens.model.entities import UNIT_DEPTH
from tests.small_workspace import build

# bu > dept > t1 > t2 > … > t9: the deepest team is UNIT_DEPTH levels below the business unit
CHAIN = ["bu", "dept", *[f"t{i}" for i in range(1, UNIT_DEPTH)]]
KINDS = ["business_unit", "department", *["team"] * (UNIT_DEPTH - 1)]


def test_a_deeply_nested_team_counts_for_its_business_unit(tmp_path) -> None:
    units = "unit_id,account_id,kind,name,parent_unit_id\n" + "".join(
        f"{unit},acme,{kind},{unit.upper()},{parent}\n"
        for unit, kind, parent in zip(CHAIN, KINDS, ["", *CHAIN[:-1]]))
    ws = build(tmp_path, "deep", {
        "accounts": "account_id,name,domain\nacme,Acme,acme.com\n",
        "units": units,
        "users": "user_id,email\nana,ana@acme.com\nbob,bob@acme.com\n",
        "memberships": (f"user_id,account_id,unit_id,role,valid_from\nana,acme,{CHAIN[-1]},analyst,"
                        "2026-01-01\nbob,acme,dept,admin,2026-01-01\n"),
    }, [{"type": "track", "messageId": f"m{i}", "userId": user, "event": "Report Viewed",
         "timestamp": "2026-03-02T10:00:00Z"} for i, user in enumerate(["ana", "bob"])])
    try:
        assert len(CHAIN) == UNIT_DEPTH + 1
        metric = ws.metric("mau", level="business_unit", as_of="2026-03-31")
        assert metric[["unit_id", "mau"]].to_dict("records") == [{"unit_id": "bu", "mau": 2}]
        # the analyses' map of units to their business unit (handoffs, collaboration, paths, …)
        mapped = ws.store.df(unit_level_sql("business_unit"))
        assert dict(zip(mapped.unit_id, mapped.level_unit_id)) == {unit: "bu" for unit in CHAIN}
    finally:
        ws.close()
