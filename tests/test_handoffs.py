"""Handoffs, bottlenecks, stalls and chains on a hand-computed fixture (tests/fixtures_b2b.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from accountlens.analysis.registry import AnalysisError, resolve_as_of
from tests import fixtures_b2b


@pytest.fixture
def ws(tmp_path):
    workspace = fixtures_b2b.build(tmp_path)
    yield workspace
    workspace.close()


def handoffs(ws, **params):
    return ws.analysis("handoffs", **params)


def pairs(df):
    return {(r.from_actor, r.to_actor): r for r in df.itertuples()}


def test_role_pairs_counts_and_latencies(ws) -> None:
    got = pairs(handoffs(ws))  # as_of defaults to the latest event day, 2024-03-20
    # editor→approver: w1 4 h (from ann's *last* event), w2 24 h, w3 0 h (simultaneous),
    # w4 48 h (dan became approver on 03-10: the role at event time counts)
    ea = got[("editor", "approver")]
    assert (ea.handoffs, ea.objects, ea.accounts) == (4, 4, 1)
    assert ea.median_latency_hours == 14.0
    assert ea.p90_latency_hours == pytest.approx(40.8)
    assert ea.stall_rate == 0
    ae = got[("approver", "editor")]  # w2: bob → ann after 1 h, then nothing: stalled
    assert (ae.handoffs, ae.median_latency_hours, ae.stalled_objects, ae.stall_rate) == (1, 1.0, 1, 1.0)
    assert got[("editor", "editor")].handoffs == 1  # w4: dan → ann, both editors then
    assert set(got) == {("editor", "approver"), ("approver", "editor"), ("editor", "editor")}


def test_department_and_user_levels(ws) -> None:
    got = pairs(handoffs(ws, level="department"))
    assert got[("Sales", "Finance")].handoffs == 3
    assert got[("Finance", "Sales")].handoffs == 1
    assert got[("Sales", "Sales")].handoffs == 2  # w4: dan → ann → dan
    users = pairs(handoffs(ws, level="user"))
    assert users[("ann", "bob")].handoffs == 2 and users[("dan", "ann")].handoffs == 1


def test_stalls_and_chains(ws) -> None:
    stalls = handoffs(ws, view="stalls")
    assert list(stalls.object_id) == ["w2"]  # r1 is recent, w1/w3/w4 reached a final event
    assert stalls.iloc[0].waiting_after == "editor"
    assert stalls.iloc[0].last_handoff == "approver → editor"
    # as of March 5th, nothing is older than 7 days yet
    assert handoffs(ws, view="stalls", as_of=dt.date(2024, 3, 5)).empty
    chains = handoffs(ws, view="chains").set_index("object_id")
    assert chains.loc["w2", "chain"] == "editor → approver → editor"
    assert chains.loc["w1", "chain"] == "editor → approver"  # ann's two events collapse
    assert (chains.loc["r1", "users"], chains.loc["r1", "handoffs"]) == (1, 0)  # one user: no handoff
    assert chains.loc["w2", "stalled"] and not chains.loc["w1", "stalled"]


def test_stall_counts_per_account_match_the_stalls_view(ws) -> None:
    """The health features count stalls per account without the view's tables: same rule."""
    from accountlens.analysis.handoffs import stalled_per_account

    for day in (dt.date(2024, 3, 5), dt.date(2024, 3, 31), dt.date(2024, 6, 30)):
        view = handoffs(ws, view="stalls", as_of=day, limit=1000)
        counted = stalled_per_account(ws.store, ws.config, day)
        assert dict(zip(counted.account_id, counted.open_stalls)) == (
            view.groupby("account_id").size().to_dict())
    default = resolve_as_of(ws.store, None)  # w2 alone, as test_stalls_and_chains finds by hand
    assert stalled_per_account(ws.store, ws.config, default).to_dict("records") == [
        {"account_id": "acme", "open_stalls": 1}]


def test_bottlenecks_rank_slowest_pair_first(ws) -> None:
    ranked = handoffs(ws, view="bottlenecks", min_handoffs=1)
    assert ranked.iloc[0].from_actor == "editor" and ranked.iloc[0].to_actor == "approver"
    # overall median of the 6 latencies [0, 1, 3, 4, 24, 48] is 3.5 h
    assert ranked.iloc[0].latency_ratio == pytest.approx(14 / 3.5, rel=1e-2)
    assert ranked.iloc[0].most_affected_accounts.startswith("acme")


def test_as_of_before_data_and_bad_level(ws) -> None:
    assert handoffs(ws, as_of=dt.date(2023, 1, 1)).empty
    with pytest.raises(AnalysisError, match="supports level"):
        handoffs(ws, level="account")


def test_results_are_kept_until_the_data_or_settings_change(ws, tmp_path) -> None:
    first = ws.analysis("handoffs", view="pairs")
    first.loc[:, "handoffs"] = -1  # callers get copies: changing one does not touch the kept one
    again = ws.analysis("handoffs", view="pairs")
    assert (again.handoffs > 0).all()
    assert again.equals(ws.analysis("handoffs", view="pairs", cached=False))
    # A new load changes the data version: the next answer includes the new handoff.
    before = pairs(again)[("editor", "approver")].handoffs
    extra = [fixtures_b2b.ev("x1", "ann", "Document Edited", "2024-03-20T09:00:00Z", "w9"),
             fixtures_b2b.ev("x2", "bob", "Workflow Approved", "2024-03-20T10:00:00Z", "w9")]
    path = tmp_path / "more.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in extra))
    ws.import_events(path)
    assert pairs(ws.analysis("handoffs", view="pairs"))[("editor", "approver")].handoffs == before + 1
    # Settings are part of the key too: a one-day lookback leaves only the new handoff.
    ws.config.handoffs.lookback_days = 1
    assert list(ws.analysis("handoffs", view="pairs").handoffs) == [1]


def test_the_same_request_at_the_same_time_is_computed_once(ws, monkeypatch) -> None:
    """Two threads asking the same question (the dashboard and the warmer): one computes, the
    other waits for its result. Counted on the real store's statements."""
    from concurrent.futures import ThreadPoolExecutor

    from accountlens.analysis import handoffs as module

    calls = []
    real = module.handoff_tables

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "handoff_tables", counted)
    with ThreadPoolExecutor(max_workers=4) as pool:
        frames = list(pool.map(lambda _: ws.analysis("handoffs", view="bottlenecks"), range(4)))
    assert len(calls) == 1
    assert all(f.equals(frames[0]) for f in frames)
