"""Versioned attribution rule sets (docs/attribution.md, "Rule sets"): create, edit, activate,
history and audit on a real DuckDB workspace; the CLI, REST and Python give the same; only an
admin changes rules; a diff shows credit moving between two versions."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import Field
from typer.testing import CliRunner

from accountlens.analysis import rule_versions
from accountlens.analysis.attribution_rules import AttributionRules
from accountlens.analysis.registry import REGISTRY, Analysis, AnalysisRequest
from accountlens.analysis.rule_versions import RulesError, UnknownRuleVersion
from accountlens.workspace import Workspace
from tests.small_workspace import build

ROLES_CSVS = {
    "accounts": "account_id,name,domain\nacme,Acme,acme.com\nglobex,Globex,globex.com\n",
    "users": "user_id,email,name\nann,ann@acme.com,Ann\nbob,bob@acme.com,Bob\n"
             "cid,cid@globex.com,Cid\ndee,dee@globex.com,Dee\n",
    "memberships": "user_id,account_id,unit_id,role,valid_from,valid_to\n"
                   "ann,acme,,procurement,2024-01-01,\nbob,acme,,editor,2024-01-01,\n"
                   "cid,globex,,procurement,2024-01-01,\ndee,globex,,editor,2024-01-01,\n",
    "outcomes": "account_id,kind,date,arr_delta\nacme,renewal,2024-06-01,0\n"
                "globex,churn,2024-06-01,-1000\n",
}


def _events() -> list[dict]:
    """Each user active on a few days before the outcomes (editors twice as often)."""
    events, number = [], 0
    for user, days in (("ann", (10, 40)), ("bob", (5, 12, 20, 45)),
                       ("cid", (8, 30)), ("dee", (3, 14, 25, 50))):
        for before in days:
            number += 1
            moment = dt.datetime(2024, 6, 1, 9, tzinfo=dt.UTC) - dt.timedelta(days=before)
            events.append({"type": "track", "messageId": f"m{number}", "userId": user,
                           "event": "Report Created" if number % 2 else "Report Shared",
                           "timestamp": moment.isoformat().replace("+00:00", "Z")})
    return events


@pytest.fixture
def roles_ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = build(tmp_path, "rules", ROLES_CSVS, _events())
    yield workspace
    workspace.close()


# --- versions, edits, activation ----------------------------------------------------------------
def test_create_edit_activate_round_trip(ws: Workspace) -> None:
    assert ws.attribution_rules() is None and ws.attribution_rule_versions() == []
    assert rule_versions.rules_for(ws.store, None) == (None, AttributionRules())  # the defaults

    first = ws.create_attribution_rules({"half_life_days": 14}, name="faster decay", note="try")
    assert (first.version, first.name, first.note, first.based_on) == (1, "faster decay", "try", None)
    assert first.rules == AttributionRules(half_life_days=14)
    assert not first.active and first.activated_at is None
    assert first.created_by == ws.actor.name and first.created_at.tzinfo is not None
    assert rule_versions.rules_for(ws.store, None) == (None, AttributionRules())  # not active yet

    edited = ws.edit_attribution_rules(1, {"role_weights": {"procurement": 3}}, note="buyers")
    assert edited.rules == AttributionRules(half_life_days=14, role_weights={"procurement": 3})
    assert edited.note == "buyers"

    active = ws.activate_attribution_rules(1)
    assert active.active and active.activated_at is not None
    assert rule_versions.rules_for(ws.store, None) == (1, edited.rules)
    assert ws.attribution_rules().version == 1

    # based on 1: its rules with the changes applied (a top-level merge)
    second = ws.create_attribution_rules({"markov_order": 2, "role_weights": {"admin": 0.5}},
                                         based_on=1)
    assert second.based_on == 1 and second.rules == AttributionRules(
        half_life_days=14, markov_order=2, role_weights={"admin": 0.5})
    assert rule_versions.rules_for(ws.store, 2) == (2, second.rules)
    assert rule_versions.rules_for(ws.store, None)[0] == 1  # creating does not activate

    ws.activate_attribution_rules(2)
    listed = ws.attribution_rule_versions()
    assert [(v["version"], v["active"], v["based_on"]) for v in listed] == [
        (1, False, None), (2, True, 1)]
    assert set(listed[0]) == {"version", "name", "active", "created_by", "created_at",
                              "activated_at", "note", "based_on"}
    assert listed[0]["activated_at"] is not None  # was active once
    ws.activate_attribution_rules(1)  # back again: still exactly one active
    assert [v["version"] for v in ws.attribution_rule_versions() if v["active"]] == [1]


def test_an_activated_version_is_never_edited(ws: Workspace) -> None:
    ws.create_attribution_rules({})
    ws.activate_attribution_rules(1)
    ws.activate_attribution_rules(ws.create_attribution_rules({"lookback_days": 90}).version)
    with pytest.raises(RulesError, match=r"version 1 has been activated.*--based-on 1"):
        ws.edit_attribution_rules(1, {"half_life_days": 7})  # inactive now, but it fed dashboards
    assert ws.attribution_rules(1).rules == AttributionRules()
    with pytest.raises(RulesError, match="version 2 has been activated"):
        ws.edit_attribution_rules(2, {"half_life_days": 7})


def test_unknown_versions_are_named_with_those_there_are(ws: Workspace) -> None:
    with pytest.raises(UnknownRuleVersion, match="none yet"):
        rule_versions.rules_for(ws.store, 1)
    for _ in range(3):
        ws.create_attribution_rules({})
    with pytest.raises(UnknownRuleVersion, match="^no attribution rule version 7; versions: 1, 2, 3$"):
        rule_versions.rules_for(ws.store, 7)
    for call in (lambda: ws.activate_attribution_rules(7), lambda: ws.edit_attribution_rules(7, {"x": 1}),
                 lambda: ws.create_attribution_rules({}, based_on=7), lambda: ws.attribution_rules(7)):
        with pytest.raises(UnknownRuleVersion, match="version 7"):
            call()
    assert rule_versions.get_version(ws.store, 7) is None
    assert len(ws.attribution_rule_versions()) == 3  # nothing stored by the refused calls


@pytest.mark.parametrize(("rules", "message"), [
    ({"half_life_days": -3}, "half_life_days: Input should be greater than 0"),
    ({"stage_role_weights": {"negotiation": {"procurement": 2}}},
     "stage_role_weights names stage 'negotiation'"),
    ({"half_life": 14}, "half_life: not a rule set field (the fields: lookback_days"),
    ({"role_weights": {"procurement": "lots"}}, "role_weights.procurement: Input should be a valid number"),
    ({"touch": "click"}, "touch: Input should be"),
    ({"u_shaped": [0.7, 0.7]}, "u_shaped shares must be ≥ 0 and sum to at most 1"),
    ({"stages": [{"name": "late", "days_before": 60}, {"name": "early", "days_before": 10},
                 {"name": "rest"}]}, "stages go from the outcome outwards"),
])
def test_invalid_rules_are_refused_naming_the_field(ws: Workspace, rules: dict, message: str) -> None:
    with pytest.raises(RulesError, match="invalid attribution rules: ") as caught:
        ws.create_attribution_rules(rules)
    assert message in str(caught.value) and isinstance(caught.value, ValueError)
    ws.create_attribution_rules({})
    with pytest.raises(RulesError, match="invalid attribution rules: "):
        ws.edit_attribution_rules(1, rules)
    assert ws.attribution_rules(1).rules == AttributionRules()  # unchanged
    assert [h["action"] for h in ws.attribution_rule_history()] == ["create"]
    assert [e["action"] for e in ws.audit.entries(action="attribution.")] == ["attribution.rules.create"]


def test_history_and_audit_record_who_and_when(ws: Workspace) -> None:
    before = dt.datetime.now(dt.UTC)
    ws.create_attribution_rules({"half_life_days": 14}, note="first")
    ws.edit_attribution_rules(1, {"half_life_days": 21})
    ws.activate_attribution_rules(1)
    ws.create_attribution_rules({"lookback_days": 180}, based_on=1)
    ws.activate_attribution_rules(2)
    changes = ws.attribution_rule_history()
    assert [(c["version"], c["action"]) for c in changes] == [
        (1, "create"), (1, "edit"), (1, "activate"), (2, "create"), (2, "activate")]
    assert {c["actor"] for c in changes} == {ws.actor.name}
    times = [dt.datetime.fromisoformat(c["at"]) for c in changes]
    assert times == sorted(times) and len(set(times)) == 5
    assert before <= times[0] <= dt.datetime.now(dt.UTC)
    assert changes[0]["detail"]["changed"] == {"half_life_days": [30.0, 14.0]}
    assert changes[1]["detail"]["changed"] == {"half_life_days": [14.0, 21.0]}
    assert changes[2]["detail"] == {"previous": None}
    assert changes[3]["detail"]["based_on"] == 1
    assert changes[3]["detail"]["changed"] == {"lookback_days": [365, 180]}  # against version 1
    assert changes[4]["detail"] == {"previous": 1}
    assert [c["action"] for c in ws.attribution_rule_history(2)] == ["create", "activate"]

    audited = ws.audit.entries(action="attribution.rules.")
    assert [(e["action"], e["details"]["version"]) for e in audited] == [
        ("attribution.rules.create", 1), ("attribution.rules.edit", 1),
        ("attribution.rules.activate", 1), ("attribution.rules.create", 2),
        ("attribution.rules.activate", 2)]
    assert all(e["actor"] == ws.actor.name and e["outcome"] == "ok" for e in audited)
    assert audited[-1]["details"]["previous"] == 1
    assert ws.audit.verify()["ok"]


# --- the CLI ------------------------------------------------------------------------------------
def _cli(*args: str) -> Any:
    from accountlens.cli.main import app

    result = CliRunner().invoke(app, list(args))
    return result


def _json(*args: str) -> Any:
    result = _cli(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_manages_versions_as_python_does(ws: Workspace, tmp_path: Path) -> None:
    root = str(ws.root)
    ws.close()  # the commands open the workspace themselves
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text('lookback_days = 180\nexclude_events = ["Login"]\n\n'
                          '[role_weights]\nprocurement = 2\n')
    made = _json("attribution", "rules", "create", "--dir", root, "--file", str(rules_file),
                 "--set", "half_life_days=14", "--set", 'role_weights={"procurement": 3}',
                 "--set", "touch=event", "--name", "buyers", "--note", "from the board")
    assert [(m["version"], m["name"], m["active"], m["note"]) for m in made] == [
        (1, "buyers", False, "from the board")]
    assert _json("attribution", "rules", "edit", "1", "--dir", root,
                 "--set", "markov_order=2")[0]["version"] == 1
    refused = _cli("attribution", "rules", "edit", "1", "--dir", root, "--set", "half_life_days=-1")
    assert refused.exit_code == 1 and "half_life_days: Input should be greater than 0" in refused.output
    assert _json("attribution", "rules", "activate", "1", "--dir", root)[0]["active"] is True
    again = _cli("attribution", "rules", "edit", "1", "--dir", root, "--set", "markov_order=3")
    assert again.exit_code == 1 and "create a new version based on it" in again.output
    _json("attribution", "rules", "create", "--dir", root, "--based-on", "1", "--set", "max_channels=10")

    shown = {row["field"]: row for row in _json("attribution", "rules", "show", "--dir", root)}
    assert {row["version"] for row in shown.values()} == {1}  # the active one by default
    assert shown["half_life_days"]["value"] == 14 and shown["half_life_days"]["changed"] is True
    assert shown["role_weights"]["value"] == {"procurement": 3}  # --set overrides the file
    assert shown["exclude_events"]["value"] == ["Login"] and shown["touch"]["value"] == "event"
    assert shown["max_channels"] == {"version": 1, "field": "max_channels", "value": 30,
                                     "default": 30, "changed": False}
    assert _json("attribution", "rules", "show", "2", "--dir", root)[-1]["value"] == 10
    history = _json("attribution", "rules", "show", "--history", "--dir", root)
    csv_history = _cli("attribution", "rules", "show", "1", "--history", "--dir", root, "--format", "csv")
    assert csv_history.stdout.splitlines()[0] == "version,action,actor,at,detail"

    listed = _json("attribution", "rules", "list", "--dir", root)
    with Workspace.open(root) as reopened:  # the CLI's changes are what Python reads
        assert listed == reopened.attribution_rule_versions()
        assert history == reopened.attribution_rule_history()
        assert reopened.attribution_rules().rules == AttributionRules(
            lookback_days=180, exclude_events=["Login"], half_life_days=14, touch="event",
            role_weights={"procurement": 3}, markov_order=2)
        audited = [e["action"] for e in reopened.audit.entries(action="attribution.rules.")]
        assert audited == ["attribution.rules.create", "attribution.rules.edit",
                           "attribution.rules.activate", "attribution.rules.create"]
    bad_set = _cli("attribution", "rules", "create", "--dir", root, "--set", "half_life_days")
    assert bad_set.exit_code == 1 and "write FIELD=VALUE" in bad_set.output
    unknown = _cli("attribution", "rules", "show", "9", "--dir", root)
    assert unknown.exit_code == 1 and "no attribution rule version 9; versions: 1, 2" in unknown.output


def test_cli_show_without_versions_gives_the_defaults(ws: Workspace) -> None:
    root = str(ws.root)
    ws.close()
    shown = _json("attribution", "rules", "show", "--dir", root)
    assert {row["field"]: row["value"] for row in shown} == AttributionRules().model_dump(mode="json")
    assert _json("attribution", "rules", "list", "--dir", root) == []
    table = _cli("attribution", "rules", "show", "--dir", root)
    assert "built-in defaults" in table.stdout


def test_the_old_attribution_command_still_prints_the_events_summary(roles_ws: Workspace) -> None:
    from accountlens.model.attribution import unattributed_summary

    expected = json.loads(json.dumps(unattributed_summary(roles_ws.store), default=str))
    root = str(roles_ws.root)
    roles_ws.close()
    assert expected and _json("attribution", "--dir", root) == expected
    assert _json("attribution", "events", "--dir", root) == expected
    table = _cli("attribution", "--dir", root)
    assert table.exit_code == 0 and "membership" in table.stdout and "events" in table.stdout


# --- REST ---------------------------------------------------------------------------------------
def _client(ws: Workspace) -> TestClient:
    from accountlens.api.app import create_app
    from accountlens.serve.live import LiveWorkspace

    return TestClient(create_app([LiveWorkspace(workspace=ws, log=None, loader=None)]))  # type: ignore[arg-type]


def test_rest_manages_versions_and_only_an_admin_changes_them(roles_ws: Workspace) -> None:
    ws = roles_ws
    tokens = {role: ws.create_token(role, owner="x@vendor.example" if role == "csm" else None)["token"]
              for role in ("admin", "analyst", "viewer", "csm")}
    client = _client(ws)
    base = "/api/v1/attribution/rules"

    def call(method: str, path: str, role: str, **kwargs: Any) -> Any:
        return client.request(method, base + path, headers={"Authorization": f"Bearer {tokens[role]}"},
                              **kwargs)

    shown = call("GET", "/active", "viewer").json()
    assert shown == {"version": None, "rules": AttributionRules().model_dump(mode="json"), "detail": None}
    for role in ("analyst", "viewer", "csm"):
        refused = call("POST", "", role, json={"rules": {"half_life_days": 14}})
        assert refused.status_code == 403 and f"a {role} token may not do this" in refused.json()["error"]
    created = call("POST", "", "admin", json={"rules": {"half_life_days": 14}, "name": "fast",
                                              "note": "n"})
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and created.json()["rules"]["half_life_days"] == 14
    for role in ("analyst", "viewer", "csm"):
        assert call("PATCH", "/1", role, json={"rules": {"markov_order": 2}}).status_code == 403
        assert call("POST", "/1/activate", role).status_code == 403
    bad = call("POST", "", "admin", json={"rules": {"half_life_days": -1}})
    assert bad.status_code == 400 and "half_life_days: Input should be greater than 0" in bad.json()["error"]
    unknown_stage = call("PATCH", "/1", "admin", json={"rules": {"stage_role_weights": {"x": {"a": 1}}}})
    assert unknown_stage.status_code == 400 and "names stage 'x'" in unknown_stage.json()["error"]
    edited = call("PATCH", "/1", "admin", json={"rules": {"markov_order": 2}, "note": "order 2"})
    assert edited.status_code == 200 and edited.json()["rules"]["markov_order"] == 2
    assert call("PATCH", "/9", "admin", json={"rules": {"markov_order": 2}}).status_code == 404
    activated = call("POST", "/1/activate", "admin")
    assert activated.status_code == 200 and activated.json()["active"] is True
    refused_edit = call("PATCH", "/1", "admin", json={"rules": {"markov_order": 3}})
    assert refused_edit.status_code == 400 and "based on it" in refused_edit.json()["error"]
    assert call("POST", "", "admin", json={"based_on": 1, "rules": {"max_channels": 5}}).status_code == 201

    for role in ("analyst", "viewer", "csm"):  # everyone reads, a csm too
        assert call("GET", "", role).json() == ws.attribution_rule_versions()
        assert call("GET", "/active", role).json()["version"] == 1
        assert call("GET", "/2", role).json()["rules"] == ws.attribution_rules(2).rules.model_dump(mode="json")
        assert call("GET", "/history", role).json() == ws.attribution_rule_history()
    assert [c["action"] for c in call("GET", "/history", "viewer", params={"version": 1}).json()] == [
        "create", "edit", "activate"]
    assert call("GET", "/7", "viewer").status_code == 404
    assert "versions: 1, 2" in call("GET", "/7", "viewer").json()["error"]
    assert call("GET", "/latest", "viewer").status_code == 400
    audited = ws.audit.entries(action="attribution.rules.")
    assert [e["action"].split(".")[-1] for e in audited] == ["create", "edit", "activate", "create"]
    assert all(e["actor"].startswith("token:") and e["role"] == "admin" for e in audited)
    denied = ws.audit.entries(action="access.denied")
    assert any(e["target"] == "POST /api/v1/attribution/rules" for e in denied)
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/attribution/rules", "/api/v1/attribution/rules/{version}",
            "/api/v1/attribution/rules/{version}/activate", "/api/v1/attribution/rules/diff",
            "/api/v1/attribution/rules/history"} <= set(paths)


# --- the diff -----------------------------------------------------------------------------------
class StandInRequest(AnalysisRequest):
    """The attribution analysis's request, as far as the diff uses it."""

    level: Literal["role"] = "role"
    outcome: Literal["renewal", "churn"] = "renewal"
    model: Literal["linear"] = "linear"
    by: Literal["role", "user"] = "role"
    rules_version: int | None = None
    resamples: int = Field(default=0, ge=0)
    since: dt.date | None = None


def _stand_in(store: Any, settings: Any, request: StandInRequest) -> pd.DataFrame:
    """Credit = touches × the role's weight, shared out: enough to see rules move credit."""
    _, rules = rule_versions.rules_for(store, request.rules_version)
    touches = store.df(f"SELECT {request.by} AS channel, role, count(*) AS touches FROM events "
                       "WHERE role IS NOT NULL GROUP BY ALL")
    touches["credit"] = touches.touches * touches.role.map(lambda r: rules.role_weights.get(r, 1.0))
    frame = touches.groupby("channel", as_index=False)[["credit", "touches"]].sum()
    frame["credit"] = frame.credit / frame.credit.sum()
    frame["share"] = frame.credit
    frame = frame.rename(columns={"channel": request.by})
    frame["ci_low"], frame["ci_high"], frame["journeys"] = frame.credit, frame.credit, 1
    frame.attrs["notes"] = [f"stand-in, rules version {request.rules_version}"]
    return frame


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `attribution` analysis, whether or not the real one is installed."""
    REGISTRY.all()  # loaded first, so that the real one cannot replace the stand-in
    monkeypatch.setitem(REGISTRY._items, "attribution",
                        Analysis("attribution", "stand-in", StandInRequest, _stand_in))


def test_diff_shows_credit_moving_with_a_role_weight(roles_ws: Workspace, stand_in: None) -> None:
    ws = roles_ws
    ws.create_attribution_rules({}, name="plain")
    ws.activate_attribution_rules(1)
    ws.create_attribution_rules({"role_weights": {"procurement": 4}}, based_on=1, name="buyers")
    diff = ws.attribution_diff(1, 2, outcome="renewal", model="linear", by="role")
    assert list(diff.columns) == ["role", "credit_v1", "credit_v2", "change", "share_v1",
                                  "share_v2", "share_change"]
    # 4 procurement and 8 editor touches: 1/3 → 4·4 / (16 + 8) = 2/3 of the credit
    rows = {r["role"]: r for r in diff.to_dict(orient="records")}
    assert rows["procurement"]["credit_v1"] == pytest.approx(1 / 3)
    assert rows["procurement"]["credit_v2"] == pytest.approx(2 / 3)
    assert rows["procurement"]["change"] == pytest.approx(1 / 3)
    assert rows["editor"]["change"] == pytest.approx(-1 / 3)
    assert rows["editor"]["share_change"] == pytest.approx(-1 / 3)
    assert list(diff.change.abs()) == sorted(diff.change.abs(), reverse=True)
    notes = diff.attrs["notes"]
    assert "v1 = version 1 (plain), v2 = version 2 (buyers)" in notes
    assert 'role_weights: {} → {"procurement":4.0}' in notes
    assert "v1: stand-in, rules version 1" in notes

    # None is the active version; the same version twice moves nothing
    same = ws.attribution_diff(None, 1, by="user")
    assert list(same.columns)[0] == "user" and (same.change == 0).all()
    assert "the two versions' rules are the same" in same.attrs["notes"]
    with pytest.raises(UnknownRuleVersion, match="versions: 1, 2"):
        ws.attribution_diff(1, 5)

    # the CLI and REST give the same rows
    root = str(ws.root)
    client = _client(ws)
    rest = client.get("/api/v1/attribution/rules/diff",
                      params={"v1": "1", "v2": "2", "outcome": "renewal", "by": "role"})
    assert rest.status_code == 200, rest.text
    body = rest.json()
    assert (body["v1"], body["v2"], body["by"]) == (1, 2, "role")
    assert body["changed_rules"] == {"role_weights": [{}, {"procurement": 4.0}]}
    assert [(r["channel"], r["change"]) for r in body["rows"]] == [
        (r["role"], r["change"]) for r in diff.to_dict(orient="records")]
    assert client.get("/api/v1/attribution/rules/diff", params={"v1": "1", "v2": "8"}).status_code == 404
    assert client.get("/api/v1/attribution/rules/diff",
                      params={"v1": "1", "v2": "2", "by": "moon"}).status_code == 400
    ws.close()
    cli = _cli("attribution", "rules", "diff", "1", "2", "--by", "role", "--outcome", "renewal",
               "--dir", root, "--format", "json")
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout) == [pytest.approx(row) for row in diff.to_dict(orient="records")]
    table = _cli("attribution", "rules", "diff", "active", "2", "--dir", root)
    assert table.exit_code == 0 and "note: role_weights" in table.stdout


def test_diff_with_the_attribution_analysis(roles_ws: Workspace) -> None:
    """The real analysis (analysis/attribution.py): a higher weight of procurement's touches
    moves credit to procurement."""
    pytest.importorskip("accountlens.analysis.attribution",
                        reason="the attribution analysis (analysis/attribution.py) is not there yet")
    ws = roles_ws
    ws.create_attribution_rules({"touch": "event"})
    ws.activate_attribution_rules(1)
    ws.create_attribution_rules({"role_weights": {"procurement": 5}}, based_on=1)
    request = {"outcome": "renewal", "model": "role_weighted", "by": "role", "as_of": "2024-06-30",
               "resamples": 0}
    diff = ws.attribution_diff(1, 2, **request)
    rows = {r["role"]: r for r in diff.to_dict(orient="records")}
    assert rows["procurement"]["change"] > 0 and rows["procurement"]["share_change"] > 0
    assert rows["editor"]["change"] == pytest.approx(-rows["procurement"]["change"])
    assert diff.iloc[0]["role"] in ("procurement", "editor")
    assert 'role_weights: {} → {"procurement":5.0}' in diff.attrs["notes"]
    for version, column in ((1, "credit_v1"), (2, "credit_v2")):  # the analysis's own credit
        credit = ws.analysis("attribution", rules_version=version, **request)
        assert dict(zip(credit.role, credit.credit, strict=True)) == pytest.approx(
            {role: row[column] for role, row in rows.items()})
    by_user = ws.attribution_diff(1, 2, **{**request, "by": "user"})
    assert list(by_user.columns)[0] == "user_id" and "ann" in set(by_user.user_id)


def test_the_docs_list_every_rule_field_with_its_default() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "attribution.md").read_text()
    section = text.split("## Rule sets")[1].split("\n## ")[0]
    defaults = AttributionRules()
    for name in AttributionRules.model_fields:
        row = next((line for line in section.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"docs/attribution.md does not document rule field {name}"
        documented = json.loads(row.split("|")[2].strip().strip("`"))
        assert getattr(AttributionRules.model_validate({name: documented}), name) == getattr(
            defaults, name), name
