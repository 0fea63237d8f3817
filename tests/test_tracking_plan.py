"""The tracking plan (docs/quality.md, "Tracking plan"): violations recorded per event, rule
and property with the client library; quarantined when configured and loaded by a replay once
the plan is fixed; unplanned names reported; bad plans refused; CLI and REST."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
import typer
from typer.testing import CliRunner

from accountlens.cli import plan_cmd
from accountlens.config import CONFIG_FILE
from accountlens.governance.audit import AuditLog
from accountlens.ingest import tracking_plan
from accountlens.workspace import Workspace
from tests.small_workspace import build

PLAN = {
    "events": {
        "Report Created": {
            "type": "object",
            "required": ["report_id"],
            "properties": {"report_id": {"type": "string", "minLength": 3},
                           "rows": {"type": "integer", "minimum": 0},
                           "format": {"enum": ["pdf", "csv"]}},
            "additionalProperties": False,
        },
        "Report Shared": {"type": "object", "required": ["channel"]},
    },
    "identify": {"type": "object", "properties": {"email": {"type": "string", "pattern": "@"}}},
}
PYTHON = ("analytics-python", "2.3.0")
NODE = ("analytics-node", "1.0.0")


def track(n: int, name: str, props: dict | None, lib: tuple[str, str] = PYTHON) -> dict:
    return {"type": "track", "event": name, "userId": "u1", "messageId": f"m{n}",
            "timestamp": "2026-01-05T10:00:00Z", "properties": props,
            "context": {"library": {"name": lib[0], "version": lib[1]}}}


EVENTS = [
    track(1, "Report Created", {"report_id": "r-1", "rows": 3, "format": "pdf"}),  # valid
    track(2, "Report Created", {"rows": -1, "extra": 1}),  # required, minimum, additional
    track(3, "Report Created", {"report_id": "r", "format": "doc"}, NODE),  # minLength, enum
    track(4, "Report Created", {"report_id": "r-4", "rows": 2.5}, NODE),  # type
    track(5, "Report Shared", None),  # required (no properties at all)
    track(6, "Report Shared", {"channel": "slack"}),  # valid
    track(7, "Dashboard Opened", {}),  # unplanned
    {"type": "identify", "userId": "u1", "messageId": "m8", "traits": {"email": "nobody"},
     "timestamp": "2026-01-05T10:00:00Z"},  # pattern
    {"type": "identify", "userId": "u2", "messageId": "m9", "traits": {"email": "b@x.com"},
     "timestamp": "2026-01-05T10:00:00Z"},  # valid
    {"type": "page", "name": "Home", "userId": "u1", "messageId": "m10",
     "timestamp": "2026-01-05T10:00:00Z"},  # pages are not planned
]

EXPECTED = {  # (message_id, rule, property), worked out by hand
    ("m2", "required", "report_id"), ("m2", "minimum", "rows"),
    ("m2", "additionalProperties", "extra"),
    ("m3", "minLength", "report_id"), ("m3", "enum", "format"),
    ("m4", "type", "rows"),
    ("m5", "required", "channel"),
    ("m7", "unplanned", None),
    ("m8", "pattern", "email"),
}


def _set_quality(ws: Workspace, **settings: str) -> None:
    path = ws.root / CONFIG_FILE
    text = path.read_text()
    for key, value in settings.items():
        old = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(old, f'{key} = "{value}"')
    path.write_text(text)
    ws.config = ws.config.model_copy(  # what a reopened workspace (or a restarted serve) reads
        update={"ingest": ws.config.ingest.model_copy(update=settings)})


def _write(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _found(ws: Workspace) -> set[tuple]:
    return {(r["message_id"], r["rule"], r["property"])
            for r in ws.store.rows("SELECT * FROM plan_violations")}


@pytest.fixture
def ws(tmp_path: Path):
    workspace = build(tmp_path, "plan", {}, [])
    tracking_plan.store_plan(workspace.store, PLAN, "cli:tester", "first plan")
    yield workspace
    workspace.close()


def test_violations_are_recorded_per_rule_and_property_with_the_library(ws, tmp_path) -> None:
    result = ws.import_events(_write(tmp_path / "e.jsonl", EVENTS))
    assert result.inserted == len(EVENTS) and result.quarantined == 0  # recorded, not refused
    assert _found(ws) == EXPECTED
    counts = {(r["event"], r["library"], r["library_version"], r["rule"], r["property"]):
              (r["violations"], r["events"]) for r in tracking_plan.violation_counts(ws.store)}
    assert counts == {
        ("Report Created", "analytics-python", "2.3.0", "required", "report_id"): (1, 1),
        ("Report Created", "analytics-python", "2.3.0", "minimum", "rows"): (1, 1),
        ("Report Created", "analytics-python", "2.3.0", "additionalProperties", "extra"): (1, 1),
        ("Report Created", "analytics-node", "1.0.0", "minLength", "report_id"): (1, 1),
        ("Report Created", "analytics-node", "1.0.0", "enum", "format"): (1, 1),
        ("Report Created", "analytics-node", "1.0.0", "type", "rows"): (1, 1),
        ("Report Shared", "analytics-python", "2.3.0", "required", "channel"): (1, 1),
        ("Dashboard Opened", "analytics-python", "2.3.0", "unplanned", None): (1, 1),
        ("identify", None, None, "pattern", "email"): (1, 1),
    }
    assert {r["plan_version"] for r in ws.store.rows("SELECT plan_version FROM plan_violations")} == {1}
    # importing the same file again records nothing twice (the events are duplicates)
    again = ws.import_events(tmp_path / "e.jsonl")
    assert again.duplicates == len(EVENTS)
    assert ws.store.scalar("SELECT count(*) FROM plan_violations") == len(EXPECTED)
    only = tracking_plan.violation_counts(ws.store, event="identify")
    assert [(r["rule"], r["property"]) for r in only] == [("pattern", "email")]
    assert len(tracking_plan.violation_counts(ws.store, details=True)) == len(EXPECTED)


def test_without_a_plan_nothing_is_checked(tmp_path) -> None:
    with build(tmp_path, "none", {}, EVENTS) as ws:
        assert ws.store.scalar("SELECT count(*) FROM events") == len(EVENTS)
        assert ws.store.scalar("SELECT count(*) FROM plan_violations") == 0


def test_quarantined_then_replayed_after_the_plan_changes(ws, tmp_path) -> None:
    _set_quality(ws, plan_violations="quarantine", unplanned_events="quarantine")
    result = ws.import_events(_write(tmp_path / "e.jsonl", EVENTS))
    bad = {m for m, _, _ in EXPECTED}
    assert result.quarantined == len(bad) and result.inserted == len(EVENTS) - len(bad)
    assert set(ws.store.rows("SELECT list(message_id ORDER BY message_id) AS m FROM events")[0]["m"]) \
        == {e["messageId"] for e in EVENTS} - bad
    held = {q["message_id"]: q for q in ws.quarantine()}
    assert set(held) == bad
    assert held["m2"]["reason"].startswith("tracking plan: Report Created: ")
    assert held["m7"]["reason"] == "tracking plan: event 'Dashboard Opened' is not in the tracking plan"
    assert json.loads(held["m3"]["raw"])["properties"] == {"report_id": "r", "format": "doc"}
    assert _found(ws) == EXPECTED
    assert ws.store.scalar("SELECT bool_and(quarantined) FROM plan_violations")

    # a replay under the same plan loads nothing and keeps one quarantine row per event
    still = ws.replay_quarantine()
    assert still.inserted == 0 and still.quarantined == len(bad)
    assert len(ws.quarantine()) == len(bad) and _found(ws) == EXPECTED

    # the fixed plan (version 2) accepts all but m2 and the unplanned event
    fixed = json.loads(json.dumps(PLAN))
    created = fixed["events"]["Report Created"]
    created["properties"]["report_id"]["minLength"] = 1
    created["properties"]["format"]["enum"].append("doc")
    created["properties"]["rows"]["type"] = "number"
    fixed["events"]["Report Shared"] = {"type": "object"}
    del fixed["identify"]
    tracking_plan.store_plan(ws.store, fixed, "cli:tester", "looser")
    replayed = ws.replay_quarantine()
    assert replayed.inserted == 4 and replayed.quarantined == 2
    assert {q["message_id"] for q in ws.quarantine()} == {"m2", "m7"}
    assert ws.store.scalar("SELECT count(*) FROM events") == len(EVENTS) - 2
    assert _found(ws) == {v for v in EXPECTED if v[0] in ("m2", "m7")}
    assert {r["plan_version"] for r in ws.store.rows("SELECT plan_version FROM plan_violations")} == {2}


def test_unplanned_events_allowed_are_not_reported(ws, tmp_path) -> None:
    _set_quality(ws, unplanned_events="allow")
    ws.import_events(_write(tmp_path / "e.jsonl", EVENTS))
    assert _found(ws) == {v for v in EXPECTED if v[1] != "unplanned"}


def test_unplanned_quarantined_while_violations_are_recorded(ws, tmp_path) -> None:
    _set_quality(ws, unplanned_events="quarantine")
    result = ws.import_events(_write(tmp_path / "e.jsonl", EVENTS))
    assert result.quarantined == 1 and [q["message_id"] for q in ws.quarantine()] == ["m7"]
    assert _found(ws) == EXPECTED


@pytest.mark.parametrize("doc, problem", [
    ({"events": {"Report Created": {"type": "strin"}}}, "event 'Report Created': not a valid JSON Schema"),
    ({"events": {"A": {"minimum": "three"}}}, "event 'A': not a valid JSON Schema"),
    ({"events": {"A": 3}}, "event 'A': a schema must be a JSON object"),
    ({"identify": {"required": "email"}}, "identify traits: not a valid JSON Schema"),
    ({"events": {}, "tracks": {}}, "unknown section(s) ['tracks']"),
    ({"events": {}}, "the plan holds no schema"),
    ([], "a plan is a JSON object"),
])
def test_bad_plans_are_refused_naming_the_event(doc, problem) -> None:
    with pytest.raises(tracking_plan.PlanError, match=None) as caught:
        tracking_plan.check_plan(doc)
    assert problem in str(caught.value)


# Objects and schemas for the SQL filter: it must flag every object the validator rejects
# (it is the filter in front of it) and, for the keywords it translates, nothing else.
FILTER_SCHEMAS = [
    PLAN["events"]["Report Created"],
    {"type": "object", "properties": {"n": {"type": ["integer", "null"], "maximum": 10,
                                            "exclusiveMinimum": 0}}},
    {"properties": {"s": {"const": "x"}, "t": {"type": "boolean"}, "name": {"maxLength": 2}}},
    {"properties": {"p": {"pattern": "^a(?=b)"}}},  # look-ahead: left to the validator
    {"properties": {"o": {"type": "object", "required": ["x"]}}},  # nested: left to the validator
]
FILTER_OBJECTS = [
    None, {}, {"report_id": "abc"}, {"report_id": "ab"}, {"report_id": "é€😀"}, {"report_id": 5},
    {"report_id": "abc", "rows": 1.0}, {"report_id": "abc", "rows": True},
    {"report_id": "abc", "format": None}, {"report_id": "abc", "zzz": None},
    {"n": 10}, {"n": 11}, {"n": 0}, {"n": None}, {"n": "1"}, {"n": 0.5},
    {"s": "x"}, {"s": "y"}, {"s": 1}, {"t": False}, {"t": "true"}, {"name": "ab"},
    {"name": "abc"}, {"name": "éé"}, {"name": "😀😀😀"}, {"p": "ab"}, {"p": "ac"}, {"o": {}},
    {"o": {"x": 1}}, {'we"ird': 1},
]


def test_the_sql_filter_flags_every_invalid_object(tmp_path) -> None:
    """Each object as an event of its own, each schema as a plan of one event."""
    events = [track(n, "E", obj) for n, obj in enumerate(FILTER_OBJECTS)]
    with Workspace.init(tmp_path / "ws") as ws:
        ws.store.execute("CREATE TEMP TABLE _checked AS SELECT unnest(?) AS line_no, "
                         "unnest(?) AS type, unnest(?) AS name, CAST(unnest(?) AS JSON) AS properties, "
                         "NULL::JSON AS traits, NULL::VARCHAR AS reason",
                         [list(range(len(events))), ["track"] * len(events), ["E"] * len(events),
                          [None if e["properties"] is None else json.dumps(e["properties"])
                           for e in events]])
        for i, schema in enumerate(FILTER_SCHEMAS):
            checker = tracking_plan.PlanChecker(tracking_plan.TrackingPlan(1, {"E": schema}))
            checker.flag(ws.store, unplanned=True)
            flagged = {r["line_no"] for r in ws.store.rows("SELECT line_no FROM _plan_flags")}
            translated = not any(n["opaque"] for n in checker._checks.names)
            for n, obj in enumerate(FILTER_OBJECTS):
                valid = jsonschema_rs.validator_for(schema).is_valid({} if obj is None else obj)
                assert n in flagged or valid, (i, obj)
                if translated and not (isinstance(obj, dict) and isinstance(
                        obj.get("rows"), float)):  # 1.0 is an integer: flagged, validated
                    assert (n in flagged) == (not valid), (i, obj)
            assert translated == (i < 3), i  # look-ahead, nested schemas: left to the validator


def test_plan_import_checks_the_schemas_and_is_audited(tmp_path) -> None:
    app = typer.Typer()
    plan_cmd.register(app)
    runner = CliRunner()
    with Workspace.init(tmp_path / "ws"):
        pass
    root = str(tmp_path / "ws")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"events": {"Report Created": {"type": "strin"}}}))
    refused = runner.invoke(app, ["plan", "import", str(bad), "--dir", root])
    assert refused.exit_code == 1 and "event 'Report Created': not a valid JSON Schema" in refused.output
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    assert "not valid JSON" in runner.invoke(app, ["plan", "import", str(broken), "--dir", root]).output

    good = tmp_path / "plan.json"
    good.write_text(json.dumps(PLAN))
    done = runner.invoke(app, ["plan", "import", str(good), "--dir", root, "--note", "v1",
                               "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)[0]["version"] == 1
    entries = AuditLog(tmp_path / "ws").entries(action="plan.import")
    assert len(entries) == 1 and entries[0]["target"] == "plan.json"
    assert entries[0]["details"]["added"] == ["Report Created", "Report Shared", "identify"]
    assert entries[0]["actor"].startswith("cli:")

    shown = runner.invoke(app, ["plan", "show", "--dir", root, "--format", "json"])
    rows = json.loads(shown.output)
    assert {(r["kind"], r["name"]) for r in rows} == {("event", "Report Created"),
                                                      ("event", "Report Shared"),
                                                      ("identify", "identify")}
    assert rows[0]["changed_by"].startswith("cli:") and rows[0]["note"] == "v1"
    assert runner.invoke(app, ["plan", "show", "--version", "7", "--dir", root]).exit_code == 1

    events = _write(tmp_path / "e.jsonl", EVENTS)
    checked = runner.invoke(app, ["plan", "check", str(events), "--dir", root, "--format", "json"])
    assert checked.exit_code == 1  # violations found
    assert {(EVENTS[r["line"] - 1]["messageId"], r["rule"], r["property"])
            for r in json.loads(checked.output)} == EXPECTED
    clean = _write(tmp_path / "clean.jsonl", [EVENTS[0], EVENTS[5]])
    assert runner.invoke(app, ["plan", "check", str(clean), "--plan", str(good)]).exit_code == 0

    with Workspace.open(root) as ws:
        ws.import_events(events)
    counted = json.loads(runner.invoke(app, ["plan", "violations", "--dir", root, "--format",
                                             "json", "--event", "Report Created"]).output)
    assert sum(r["violations"] for r in counted) == 6
    detailed = json.loads(runner.invoke(app, ["plan", "violations", "--dir", root, "--details",
                                              "--since", "2000-01-01", "--format", "json"]).output)
    assert {(r["message_id"], r["rule"], r["property"]) for r in detailed} == EXPECTED
    later = runner.invoke(app, ["plan", "violations", "--dir", root, "--since", "2999-01-01",
                                "--format", "json"])
    assert json.loads(later.output) == []

    history = json.loads(runner.invoke(app, ["plan", "show", "--history", "--dir", root,
                                             "--format", "json"]).output)
    assert [(h["version"], h["events"], h["identify"]) for h in history] == [(1, 2, True)]


def test_rest_routes(ws, tmp_path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from accountlens.api.plan_routes import plan_router

    class Live:  # what access.requires gives a route: the workspace as the requester sees it
        workspace = ws

    app = FastAPI()
    app.include_router(plan_router(lambda: Live, lambda: Live, {}))
    client = TestClient(app)
    shown = client.get("/api/v1/plan").json()
    assert shown["version"] == 1 and shown["plan"]["events"] == PLAN["events"]
    refused = client.post("/api/v1/plan", json={"plan": {"events": {"X": {"type": 3}}}})
    assert refused.status_code == 400 and "event 'X'" in refused.json()["detail"]
    created = client.post("/api/v1/plan", json={"plan": {"events": {"X": {}}}, "note": "only X"})
    assert created.status_code == 201 and created.json() == {
        "version": 2, "added": ["X"], "removed": ["Report Created", "Report Shared", "identify"],
        "changed": []}
    assert ws.audit.entries(action="plan.import")[-1]["details"]["version"] == 2
    assert [v["version"] for v in client.get("/api/v1/plan/versions").json()] == [1, 2]
    assert client.get("/api/v1/plan", params={"version": 1}).json()["plan"] == PLAN
    assert client.get("/api/v1/plan", params={"version": 9}).status_code == 404
    checked = client.post("/api/v1/plan/check", json={"events": EVENTS[:2]}).json()
    assert [(c["line"], c["rule"]) for c in checked] == [(1, "unplanned"), (2, "unplanned")]
    ws.import_events(_write(tmp_path / "e.jsonl", EVENTS[:3]))
    counts = client.get("/api/v1/plan/violations").json()
    assert {(c["library"], c["rule"], c["violations"]) for c in counts} == {
        ("analytics-python", "unplanned", 2), ("analytics-node", "unplanned", 1)}
    assert len(client.get("/api/v1/plan/violations", params={"details": True}).json()) == 3


def test_events_from_the_collector_log_are_checked_and_quarantined(ws) -> None:
    """The collector's path (the durable log, loaded by the loader) runs the same step."""
    _set_quality(ws, plan_violations="quarantine")
    event_log = ws.open_log()
    try:
        event_log.append(b"".join(json.dumps({**e, "receivedAt": "2026-01-05T10:00:01Z"}).encode()
                                  + b"\n" for e in EVENTS)).result()
    finally:
        event_log.close()
    result = ws.load_log()
    schema_breakers = {m for m, rule, _ in EXPECTED if rule != "unplanned"}
    assert result.quarantined == len(schema_breakers)
    assert {q["message_id"] for q in ws.quarantine()} == schema_breakers
    assert all(q["source"].startswith("collector:seg-") for q in ws.quarantine())
    assert _found(ws) == EXPECTED


def test_personal_data_is_protected_in_quarantine_and_messages(ws, tmp_path) -> None:
    """`ingest.pii` applies to plan-quarantined events and to the validator's messages."""
    _set_quality(ws, plan_violations="quarantine")
    toml = ws.root / CONFIG_FILE
    toml.write_text(toml.read_text().replace("pii = {}", 'pii = {email = "hash"}'))
    with Workspace.open(ws.root) as reopened:  # the pii setting is read when the workspace opens
        reopened.import_events(_write(tmp_path / "e.jsonl", [EVENTS[7]]))
        held = reopened.quarantine()
        assert [q["message_id"] for q in held] == ["m8"]
        assert "nobody" not in held[0]["raw"] and "nobody" not in held[0]["reason"]
        messages = [r["message"] for r in reopened.store.rows("SELECT message FROM plan_violations")]
        assert len(messages) == 1 and "nobody" not in messages[0]
