"""Outcome attribution end to end (docs/attribution.md): journeys read from a real DuckDB
workspace, credit per role / feature / user / stage checked by hand on a small fixture, against a
pandas reference on a generated workspace, point-in-time, and the same rows from the CLI, REST
and Python."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from accountlens.analysis.credit_models import MODELS, NO_TOUCH
from accountlens.analysis.registry import AnalysisError
from accountlens.cli.main import app
from tests import outcome_world
from tests.small_workspace import build

ACCOUNTS = """account_id,name,domain
acme,Acme,acme.com
globex,Globex,globex.com
initech,Initech,initech.com
hooli,Hooli,hooli.com
"""
USERS = """user_id,email,name
ana,ana@acme.com,Ana
ada,ada@acme.com,Ada
pia,pia@acme.com,Pia
gus,gus@globex.com,Gus
ian,ian@initech.com,Ian
"""
MEMBERSHIPS = """user_id,account_id,role,valid_from
ana,acme,analyst,2026-01-01
ada,acme,admin,2026-01-01
pia,acme,procurement,2026-01-01
gus,globex,admin,2026-01-01
ian,initech,analyst,2026-01-01
"""
# Renewals of acme (ARR +1000) and globex (flat), initech's churn (the null journey of a
# renewal), hooli's renewal without any touch; and, after the as-of, a renewal of initech that
# must not be seen.
OUTCOMES = """account_id,kind,date,arr_delta
acme,renewal,2026-06-30,1000
globex,renewal,2026-06-30,0
initech,churn,2026-06-30,-500
hooli,renewal,2026-06-15,
initech,renewal,2026-07-20,800
globex,conversion,2026-06-25,
"""
AS_OF = dt.date(2026, 6, 30)


def track(mid: str, user: str, name: str, ts: str) -> dict:
    return {"type": "track", "messageId": mid, "userId": user, "event": name, "timestamp": ts}


EVENTS = [
    # acme: analyst (evaluation stage), admin twice on one day (one touch), procurement (decision)
    track("m1", "ana", "Export Run", "2026-04-15T10:00:00Z"),
    track("m2", "ada", "Report Viewed", "2026-06-01T10:00:00Z"),
    track("m3", "ada", "Report Viewed", "2026-06-01T11:00:00Z"),
    track("m4", "pia", "Contract Approved", "2026-06-25T10:00:00Z"),
    # before acme's lookback (365 days): not a touch
    track("m0", "ana", "Export Run", "2025-05-01T10:00:00Z"),
    track("m5", "gus", "Report Viewed", "2026-06-20T10:00:00Z"),
    track("m6", "ian", "Export Run", "2026-06-10T10:00:00Z"),
    # after acme's renewal and the as-of
    track("m7", "ana", "Export Run", "2026-07-05T10:00:00Z"),
]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("attribution")
    ws = build(root, "attribution", {"accounts": ACCOUNTS, "users": USERS, "memberships": MEMBERSHIPS,
                                     "outcomes": OUTCOMES}, EVENTS)
    yield ws
    ws.close()


def credit(ws, **params) -> dict:
    """Credit per channel (the channels credited nothing left out)."""
    frame = ws.analysis("attribution", **{"as_of": AS_OF, "resamples": 0, **params})
    key = {"user": "user_id"}.get(params.get("by", "role"), params.get("by", "role"))
    return {(None if pd.isna(k) else k): round(v, 9) for k, v in zip(frame[key], frame["credit"]) if v}


def decay(days: float) -> float:
    return 2 ** (-days / 30)


def test_heuristic_models_by_role_match_the_hand_computed_credit(small) -> None:
    # Renewals: acme (analyst 04-15, admin 06-01, procurement 06-25), globex (admin 06-20) and
    # hooli (no touch); each is worth 1.
    assert credit(small, model="linear") == {
        "admin": round(1 / 3 + 1, 9), "analyst": round(1 / 3, 9), "procurement": round(1 / 3, 9),
        NO_TOUCH: 1.0}
    assert credit(small, model="first_touch") == {"analyst": 1.0, "admin": 1.0, NO_TOUCH: 1.0}
    assert credit(small, model="last_touch") == {"procurement": 1.0, "admin": 1.0, NO_TOUCH: 1.0}
    assert credit(small, model="u_shaped") == {"admin": 1.2, "analyst": 0.4, "procurement": 0.4,
                                                NO_TOUCH: 1.0}
    # days before the end of 2026-06-30: 76 d 14 h, 29 d 14 h, 5 d 14 h
    weights = {"analyst": decay(76 + 14 / 24), "admin": decay(29 + 14 / 24),
               "procurement": decay(5 + 14 / 24)}
    total = sum(weights.values())
    expected = {role: round(w / total + (1 if role == "admin" else 0), 9) for role, w in weights.items()}
    assert credit(small, model="time_decay") == {**expected, NO_TOUCH: 1.0}


def test_arr_value_by_feature_user_and_stage(small) -> None:
    # acme's renewal is worth its +1000, globex's flat renewal 0, hooli's has no ARR change
    assert credit(small, model="linear", value="arr", by="feature") == {
        "Export Run": round(1000 / 3, 9), "Report Viewed": round(1000 / 3, 9),
        "Contract Approved": round(1000 / 3, 9)}
    assert credit(small, model="first_touch", by="user") == {"ana": 1.0, "gus": 1.0, None: 1.0}
    # stages (default: decision ≤ 30 days, evaluation ≤ 90, adoption beyond)
    assert credit(small, model="linear", by="stage") == {
        "decision": round(2 / 3 + 1, 9), "evaluation": round(1 / 3, 9), NO_TOUCH: 1.0}
    frame = small.analysis("attribution", as_of=AS_OF, resamples=0, by="user", model="linear")
    assert frame.loc[frame.user_id == "ana", "user_name"].item() == "Ana"


def test_every_model_credits_exactly_the_outcomes_value(small) -> None:
    for model in MODELS:
        for value in ("count", "arr"):
            frame = small.analysis("attribution", as_of=AS_OF, resamples=20, model=model, value=value)
            assert frame["credit"].sum() == pytest.approx(3.0 if value == "count" else 1000.0), model
            assert (frame["ci_low"] <= frame["credit"] + 1e-9).all(), model
            assert (frame["credit"] <= frame["ci_high"] + 1e-9).all(), model


def test_the_null_journeys_and_the_future_are_not_credited(small) -> None:
    # initech churned (a null journey of the renewal) and renewed after the as-of
    assert "analyst" not in credit(small, model="last_touch")
    result = small.analysis_result("attribution", as_of=AS_OF, resamples=0, model="linear")
    assert result.notes[0].startswith("3 renewal outcomes after 2025-06-30 through 2026-06-30")
    later = credit(small, model="linear", as_of="2026-07-31")
    assert later["analyst"] == round(1 / 3 + 1, 9)  # initech's renewal: ian's touch


def test_conversions_have_the_active_unconverted_accounts_as_null_journeys(small) -> None:
    # globex converted on 06-25 after gus's touch on 06-20; acme and initech were active and did
    # not convert (null journeys ending at the as-of); hooli was not active at all
    assert credit(small, model="linear", outcome="conversion") == {"admin": 1.0}
    result = small.analysis_result("attribution", as_of=AS_OF, resamples=0, model="markov",
                                   outcome="conversion")
    assert result.notes[0].startswith("1 conversion outcomes after 2025-06-30 through 2026-06-30")
    assert "2 null journeys (accounts active in the period and not converted" in " ".join(result.notes)


def test_bad_requests_name_the_problem(small) -> None:
    with pytest.raises(ValueError, match="model"):
        small.analysis("attribution", model="magic")
    with pytest.raises(AnalysisError, match="since .* must be before as_of"):
        small.analysis("attribution", as_of=AS_OF, since=AS_OF)
    with pytest.raises(AnalysisError, match="no attribution rule version 9"):
        small.analysis("attribution", as_of=AS_OF, rules_version=9)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("attribution-world")
    ws = outcome_world.build(root, accounts=60, seed=5)
    yield ws
    ws.close()


def pandas_linear_by_feature(ws, as_of: dt.date, since: dt.date) -> pd.Series:
    """Linear credit of renewals per feature, from raw events and outcomes, in pandas."""
    outcomes = ws.store.df("SELECT account_id, kind, date FROM outcomes")
    outcomes["date"] = pd.to_datetime(outcomes["date"]).dt.date
    renewals = outcomes[(outcomes.kind == "renewal") & (outcomes.date > since) & (outcomes.date <= as_of)]
    events = ws.store.df("SELECT account_id, user_id, name, timestamp FROM events "
                         "WHERE type = 'track' AND actor_kind = 'human' AND user_id IS NOT NULL")
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    credit: dict[str, float] = {}
    for row in renewals.itertuples():
        end = pd.Timestamp(row.date + dt.timedelta(days=1), tz="UTC")
        mine = events[(events.account_id == row.account_id) & (events.timestamp < end)
                      & (events.timestamp >= end - pd.Timedelta(days=365))]
        touches = mine.assign(day=mine.timestamp.dt.date).drop_duplicates(["user_id", "name", "day"])
        if touches.empty:
            credit[NO_TOUCH] = credit.get(NO_TOUCH, 0) + 1
        for name in touches.name:
            credit[name] = credit.get(name, 0) + 1 / len(touches)
    return pd.Series(credit).sort_index()


def test_linear_credit_matches_a_pandas_reference(world) -> None:
    as_of, since = dt.date(2024, 6, 30), dt.date(2023, 6, 30)
    ours = world.analysis("attribution", as_of=as_of, since=since, model="linear", by="feature",
                          resamples=0).set_index("feature")["credit"].sort_index()
    reference = pandas_linear_by_feature(world, as_of, since)
    pd.testing.assert_series_equal(ours, reference, check_names=False, rtol=1e-9)


def test_results_are_point_in_time(world, tmp_path) -> None:
    """Everything after the as-of rewritten (later events, outcomes flipped) changes nothing."""
    day = dt.date(2024, 3, 31)
    truncated = outcome_world.build(tmp_path, accounts=60, seed=5, truncate=day)
    try:
        for model in ("linear", "w_shaped", "markov", "shapley"):
            for outcome in ("renewal", "churn"):
                params = dict(as_of=day, model=model, outcome=outcome, by="feature", resamples=50)
                pd.testing.assert_frame_equal(world.analysis("attribution", **params),
                                              truncated.analysis("attribution", **params))
    finally:
        truncated.close()


def test_data_driven_models_separate_renewal_from_churn_touches(world) -> None:
    """In the generated world, declining accounts churn: their renewals' journeys carry more
    touches than the churns', so every feature's Markov removal effect is positive and credit is
    spread over the six features."""
    frame = world.analysis("attribution", as_of=dt.date(2024, 12, 31), model="markov",
                           by="feature", resamples=100)
    features = frame[frame.feature != NO_TOUCH]
    assert len(features) == 6 and (features.credit > 0).all()
    assert (features.ci_low < features.credit).all() and (features.credit < features.ci_high).all()


def test_cli_rest_and_python_give_the_same_rows(small, served_attribution) -> None:
    params = {"as_of": "2026-06-30", "model": "u_shaped", "by": "role", "resamples": "30"}
    python = small.analysis("attribution", **params).to_dict("records")
    runner = CliRunner()
    out = runner.invoke(app, ["attribution", "outcomes", "--dir", str(small.root), "--format", "json",
                              "--as-of", "2026-06-30", "--model", "u_shaped", "--by", "role",
                              "--resamples", "30"])
    assert out.exit_code == 0, out.output
    cli = json.loads(out.stdout)
    rest = httpx.get(f"{served_attribution.url}/api/v1/analyses/attribution", params=params,
                     timeout=60).json()["rows"]
    for rows in (cli, rest):
        assert [r["role"] for r in rows] == [r["role"] for r in python]
        assert np.allclose([r["credit"] for r in rows], [r["credit"] for r in python])
        assert np.allclose([r["ci_high"] for r in rows], [r["ci_high"] for r in python])
    bad = runner.invoke(app, ["attribution", "outcomes", "--dir", str(small.root), "--model", "magic"])
    assert bad.exit_code != 0 and "model" in bad.output


@pytest.fixture(scope="module")
def served_attribution(small, tmp_path_factory):
    from tests.conftest import start_server

    root = tmp_path_factory.mktemp("served")
    ws = build(root, "served", {"accounts": ACCOUNTS, "users": USERS, "memberships": MEMBERSHIPS,
                                "outcomes": OUTCOMES}, EVENTS)
    ws.close()
    server = start_server(Path(ws.root))
    yield server
    server.stop()
