"""SDK memberships carried on from each user's stored replay state (model/memberships.py) are
those of a full replay of every call, whatever the batches and their order."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accountlens.workspace import Workspace

USERS = ("ann", "bob")
ACCOUNTS = ("acme", "globex", "initech")
_example = itertools.count()

group_calls = st.fixed_dictionaries({
    "type": st.just("group"), "user": st.sampled_from(USERS), "account": st.sampled_from(ACCOUNTS),
    "status": st.sampled_from([None, None, None, "left", "Removed", "active"]),
})
identify_calls = st.fixed_dictionaries({
    "type": st.just("identify"), "user": st.sampled_from(USERS),
    "account": st.sampled_from([None, None, *ACCOUNTS]),
    "role": st.sampled_from([None, "admin", "editor", ""]),
    "department": st.sampled_from([None, "Sales", "sales", "R&D"]),
    "team": st.sampled_from([None, None, "Blue"]),
})
calls = st.lists(st.tuples(st.one_of(group_calls, identify_calls),
                           st.integers(0, 40)),  # minute: ties happen
                 min_size=1, max_size=14)


def _event(prefix: str, number: int, call: dict, minute: int) -> dict:
    event = {"type": call["type"], "messageId": f"{prefix}-m{number:03d}",
             "userId": f"{prefix}-{call['user']}",
             "timestamp": f"2024-03-01T10:{minute:02d}:00Z"}
    if call["type"] == "group":
        event["groupId"] = f"{prefix}-{call['account']}"
        event["traits"] = {"membership_status": call["status"]} if call["status"] else {}
    else:
        event["traits"] = {k: call[k] for k in ("role", "department", "team") if call[k] is not None}
        if call["account"]:
            event["context"] = {"groupId": f"{prefix}-{call['account']}"}
    return event


def _track(prefix: str, number: int, user: str, minute: int) -> dict:
    return {"type": "track", "event": "Report Created", "messageId": f"{prefix}-t{number:03d}",
            "userId": f"{prefix}-{user}", "timestamp": f"2024-03-01T10:{minute:02d}:30Z"}


def _import(ws: Workspace, folder: Path, events: list[dict]) -> None:
    path = folder / f"batch-{next(_example)}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(path)


def _derived(ws: Workspace, prefix: str) -> dict[str, list[tuple]]:
    like = [f"{prefix}-%"]
    return {
        "memberships": ws.store.arrow(
            "SELECT user_id, account_id, unit_id, role, valid_from, valid_to FROM memberships "
            "WHERE source = 'sdk' AND user_id LIKE ? ORDER BY ALL", like).to_pylist(),
        # the units the memberships name (org units, once derived, stay: a history revised
        # by a late call may leave one no row names; a unit's name is the spelling first
        # stored, 'Sales' and 'sales' being one unit, and so is its parent: a team's id does
        # not name its department — as when every load replayed it all)
        "units": ws.store.arrow(
            "SELECT unit_id, account_id, kind FROM org_units WHERE unit_id IN "
            "(SELECT unit_id FROM memberships WHERE user_id LIKE ?) ORDER BY ALL", like).to_pylist(),
        "attribution": ws.store.arrow(
            "SELECT message_id, account_id, attribution, unit_id, role FROM events "
            "WHERE message_id LIKE ? ORDER BY ALL", like).to_pylist(),
    }


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    carried, whole = Workspace.init(root / "carried"), Workspace.init(root / "whole")
    yield root, carried, whole
    carried.close()
    whole.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=calls, cuts=st.lists(st.integers(0, 14), max_size=4), order=st.randoms(use_true_random=False))
def test_loading_in_batches_gives_the_full_replay(workspaces, calls, cuts, order) -> None:
    """The calls (and a track event after each, to be attributed) loaded in batches — cut at
    random, each batch shuffled, the batches in a random order, so some carry calls older than
    the stored ones — give the memberships, org units and attribution of one load of them all
    (a full replay)."""
    root, carried, whole = workspaces
    prefix = f"x{next(_example)}"
    events = [e for number, (call, minute) in enumerate(calls)
              for e in (_event(prefix, number, call, minute), _track(prefix, number, call["user"], minute))]
    bounds = sorted({0, len(events), *(min(2 * c, len(events)) for c in cuts)})
    batches = [events[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    if order.random() < 0.5:
        order.shuffle(batches)
    for batch in batches:
        order.shuffle(batch)
        _import(carried, root, batch)
    _import(whole, root, events)
    assert _derived(carried, prefix) == _derived(whole, prefix)


def test_a_replay_resumes_from_the_stored_state_without_the_stored_calls(tmp_path) -> None:
    """A call after the stored ones is applied to the stored state: the earlier calls are not
    read again (here: removed from the events table, as `retention.identify_days` removes them,
    and the membership they made stays)."""
    with Workspace.init(tmp_path / "ws") as ws:
        _import(ws, tmp_path, [
            {"type": "group", "messageId": "g1", "userId": "ann", "groupId": "acme",
             "timestamp": "2024-03-01T10:00:00Z"},
            {"type": "identify", "messageId": "i1", "userId": "ann", "traits": {"role": "admin"},
             "timestamp": "2024-03-01T11:00:00Z"}])
        ws.store.execute("DELETE FROM events WHERE type IN ('identify', 'group')")
        _import(ws, tmp_path, [{"type": "identify", "messageId": "i2", "userId": "ann",
                                "traits": {"role": "editor"}, "timestamp": "2024-03-02T09:00:00Z"}])
        rows = ws.store.arrow("SELECT account_id, role, strftime(valid_from, '%d %H') AS since, "
                              "strftime(valid_to, '%d %H') AS until FROM memberships "
                              "ORDER BY valid_from").to_pylist()
        assert rows == [
            {"account_id": "acme", "role": None, "since": "01 10", "until": "01 11"},
            {"account_id": "acme", "role": "admin", "since": "01 11", "until": "02 09"},
            {"account_id": "acme", "role": "editor", "since": "02 09", "until": None}]
        state = ws.store.arrow("SELECT user_id, last_message_id FROM membership_states").to_pylist()
        assert state == [{"user_id": "ann", "last_message_id": "i2"}]


def test_stored_rows_unlike_the_state_are_replayed_in_full(tmp_path) -> None:
    """Rows removed behind the loader's back make the next load of the user replay their
    stored calls."""
    with Workspace.init(tmp_path / "ws") as ws:
        _import(ws, tmp_path, [GROUP_ACME])
        ws.store.execute("DELETE FROM memberships")
        _import(ws, tmp_path, [GROUP_GLOBEX])
        assert _memberships(ws) == [("acme", None), ("globex", None)]


GROUP_ACME = {"type": "group", "messageId": "g1", "userId": "ann", "groupId": "acme",
              "timestamp": "2024-03-01T10:00:00Z"}
GROUP_GLOBEX = {"type": "group", "messageId": "g2", "userId": "ann", "groupId": "globex",
                "timestamp": "2024-03-02T10:00:00Z"}


def _memberships(ws: Workspace) -> list[tuple]:
    return [tuple(r.values()) for r in ws.store.arrow(
        "SELECT account_id, valid_to FROM memberships ORDER BY ALL").to_pylist()]


def test_a_workspace_from_before_the_states_fills_them_on_its_first_load(tmp_path) -> None:
    """The migration marks every user with stored calls; the first load replays them once
    (a user whose stored rows differ from the replay's stays marked for a full replay)."""
    from accountlens.store.schema import MIGRATIONS

    with Workspace.init(tmp_path / "ws") as ws:
        _import(ws, tmp_path, [GROUP_ACME, {**GROUP_ACME, "messageId": "g9", "userId": "bob"}])
        ws.store.execute("DELETE FROM memberships WHERE user_id = 'bob'")  # unlike the replay
        version = [d for d, _ in MIGRATIONS].index("membership replay states") + 1
        ws.store.execute("DROP TABLE membership_states")
        with ws.store.transaction():  # the step again, on a workspace with calls
            for statement in MIGRATIONS[version - 1][1]:
                ws.store.execute(statement)
        assert ws.store.scalar("SELECT count(*) FROM membership_states "
                               "WHERE last_message_id = ''") == 2
        _import(ws, tmp_path, [GROUP_GLOBEX])
        states = {r["user_id"]: (r["last_message_id"], json.loads(r["state"]).get("replay"))
                  for r in ws.store.arrow("SELECT * FROM membership_states").to_pylist()}
        assert states == {"ann": ("g2", None), "bob": ("g9", True)}
        assert _memberships(ws) == [("acme", None), ("globex", None)]
