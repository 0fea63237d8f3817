"""Anomalies (docs/quality.md): a generated workspace of 30 accounts over 10 weeks, two
libraries, weekly seasonality (weekends quiet), with planted instrumentation break, quiet account,
spike and stale source; the clean control has no finding."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from accountlens.workspace import Workspace
from tests.conftest import start_server
from tests.small_workspace import build

START = dt.date(2024, 1, 1)
DAYS = 70
AS_OF = START + dt.timedelta(days=DAYS - 1)  # 2024-03-10, a Sunday
BREAK_FROM = AS_OF - dt.timedelta(days=3)  # Report Created from analytics.js 2.1.0 stops
QUIET_FROM = AS_OF - dt.timedelta(days=4)  # acc007 stops sending anything
SPIKE_ON = AS_OF - dt.timedelta(days=2)  # acc012 sends Dashboard Viewed 10x (a bot)
STALE_FROM = AS_OF - dt.timedelta(days=2)  # the server library's last day is before this
WEB = {"name": "analytics.js", "version": "2.1.0"}
SERVER = {"name": "analytics-python", "version": "1.4.0"}
CRON = {"name": "segment-java", "version": "3.0.0"}
# (event, library, mean events per account on a weekday)
STREAMS = [("Dashboard Viewed", WEB, 6.0), ("Report Created", WEB, 3.0),
           ("Report Created", SERVER, 3.0), ("Export Run", SERVER, 2.0)]


def generate(plants: set[str], seed: int = 3, until: dt.date | None = None,
             after: str = "same") -> list[dict]:
    """The events; `after="changed"` replaces everything after AS_OF by a tripled copy."""
    rng = np.random.default_rng(seed)
    events: list[dict] = []
    for day_no in range(DAYS + 7):
        day = START + dt.timedelta(days=day_no)
        weekend = day.weekday() >= 5
        factor = 3 if day > AS_OF and after == "changed" else 1
        for a in range(30):
            acc = f"acc{a:03d}"
            if "quiet" in plants and acc == "acc007" and day >= QUIET_FROM:
                continue
            for name, lib, mean in STREAMS:
                if "break" in plants and name == "Report Created" and lib is WEB and day >= BREAK_FROM:
                    continue
                if "library" in plants and lib is WEB and day >= BREAK_FROM:
                    continue
                n = int(rng.poisson(mean * (0.2 if weekend else 1.0))) * factor
                if "spike" in plants and acc == "acc012" and name == "Dashboard Viewed" and day == SPIKE_ON:
                    n = 60
                for _ in range(n):
                    events.append(_event(acc, name, lib, day, len(events)))
        if "stale" in plants and day >= STALE_FROM:
            continue
        if "stale" in plants or "cron" in plants:  # a server cron job: one account, every day
            for i in range(24):
                events.append(_event("acc000", "Sync Completed", CRON, day, len(events), hour=i))
    return events


def _event(acc: str, name: str, lib: dict, day: dt.date, seq: int, hour: int = 12) -> dict:
    when = dt.datetime.combine(day, dt.time(hour, seq % 60), tzinfo=dt.UTC)
    return {"type": "track", "messageId": f"m{seq}", "userId": f"{acc}-u{seq % 5}", "event": name,
            "timestamp": when.isoformat(), "context": {"groupId": acc, "library": lib}}


ACCOUNTS = "account_id,name,domain\n" + "".join(
    f"acc{a:03d},Account {a},acc{a:03d}.example.com\n" for a in range(30))


def _build(tmp_path_factory, name: str, plants: set[str], **kw) -> Path:
    root = tmp_path_factory.mktemp(name)
    build(root, name, {"accounts": ACCOUNTS}, generate(plants, **kw)).close()
    return root / "ws"


def _read(folder: Path) -> list[dict]:
    ws = Workspace.open(folder)
    try:
        frame = ws.analysis("anomalies", as_of=AS_OF, limit=1000)
        return frame.drop(columns=[c for c in frame.columns if c.endswith("_name")]).to_dict(
            orient="records")
    finally:
        ws.close()


def _findings(tmp_path_factory, name: str, plants: set[str], **kw) -> list[dict]:
    return _read(_build(tmp_path_factory, name, plants, **kw))


@pytest.fixture(scope="module")
def planted_folder(tmp_path_factory) -> Path:
    return _build(tmp_path_factory, "planted", {"break", "quiet", "cron"})


@pytest.fixture(scope="module")
def planted(planted_folder) -> list[dict]:
    return _read(planted_folder)


def test_the_clean_control_has_no_finding(tmp_path_factory) -> None:
    assert _findings(tmp_path_factory, "control", {"cron"}) == []


def test_a_break_and_a_quiet_account_are_told_apart(planted) -> None:
    kinds = [(f["kind"], f["event"], f["source"], f["account_id"]) for f in planted]
    assert kinds == [
        ("instrumentation_break", "Report Created", "analytics.js 2.1.0", None),
        ("account_quiet", None, None, "acc007"),
    ]
    brk, quiet = planted
    assert brk["since"] == BREAK_FROM.isoformat() and brk["observed"] == 0
    assert brk["accounts"] >= 28 and brk["expected"] > 100  # 29 senders (acc007 is quiet too)
    assert brk["window"] == f"{BREAK_FROM}..{AS_OF}" and "sending accounts" in brk["evidence"]
    assert quiet["since"] == QUIET_FROM.isoformat() and quiet["observed"] == 0
    assert quiet["expected"] >= 20 and "acc007" in quiet["evidence"]


def test_findings_are_point_in_time(tmp_path_factory, planted) -> None:
    """Everything after as_of changed (tripled volume, a week more): the same findings."""
    changed = _findings(tmp_path_factory, "changed", {"break", "quiet", "cron"}, after="changed")
    assert changed == planted


def test_a_spike_and_a_stale_source(tmp_path_factory) -> None:
    found = _findings(tmp_path_factory, "extra", {"spike", "stale"})
    kinds = [(f["kind"], f["event"], f["source"], f["account_id"]) for f in found]
    assert kinds == [
        ("spike", "Dashboard Viewed", "analytics.js 2.1.0", "acc012"),
        ("stale_source", None, "segment-java 3.0.0", None),
    ]
    spike, stale = found
    assert spike["since"] == SPIKE_ON.isoformat() and spike["observed"] >= 60
    assert stale["since"] == (STALE_FROM - dt.timedelta(days=1)).isoformat()
    assert "hours" in stale["evidence"]


def test_cli_and_rest_give_the_same_rows(planted_folder, planted) -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "accountlens", "anomalies", "--dir", str(planted_folder),
         "--as-of", AS_OF.isoformat(), "--format", "json"],
        capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    rows = json.loads(cli.stdout)
    keys = ("kind", "event", "source", "account_id", "since", "expected", "observed", "window")
    assert [tuple(r[k] for k in keys) for r in rows] == [tuple(f[k] for k in keys) for f in planted]
    server = start_server(planted_folder)
    try:
        body = httpx.get(server.url + "/api/v1/analyses/anomalies",
                         params={"as_of": AS_OF.isoformat()}, timeout=60).json()
        assert body["rows"] == rows
        bad = httpx.get(server.url + "/api/v1/analyses/anomalies", params={"kind": "bogus"},
                        timeout=10)
        assert bad.status_code == 422
    finally:
        server.stop()


def test_a_library_version_that_stops_is_one_break(tmp_path_factory) -> None:
    """Every event of analytics.js 2.1.0 stops: one break of the source (not one per event or
    per account), and the source is stale."""
    found = _findings(tmp_path_factory, "library", {"library"})
    kinds = [(f["kind"], f["event"], f["source"], f["account_id"]) for f in found]
    assert kinds == [("instrumentation_break", None, "analytics.js 2.1.0", None),
                     ("stale_source", None, "analytics.js 2.1.0", None)]
    assert found[0]["accounts"] == 30 and "all 2 events from analytics.js 2.1.0" in found[0]["evidence"]


@pytest.mark.parametrize("as_of", [dt.date(1, 1, 1), dt.date(1, 1, 20)])
def test_an_as_of_before_any_baseline_finds_nothing(planted_folder, as_of) -> None:
    """The baseline weeks before year 1 do not exist: no error (the API fuzz test sent
    0001-01-01 and got a 400), and nothing is found before the first event."""
    ws = Workspace.open(planted_folder)
    try:
        assert ws.analysis("anomalies", as_of=as_of, limit=10).empty
    finally:
        ws.close()


def test_a_null_library_is_named_by_the_events_origin(tmp_path_factory) -> None:
    """`"library": null` (JSON null) counts as no library, as on Spark: the cron job's events
    are named by their origin (the import), not "(unknown)"."""
    events = generate({"stale"})
    for event in events:
        if event["context"]["library"] is CRON:
            event["context"]["library"] = None
    root = tmp_path_factory.mktemp("null-library")
    build(root, "null-library", {"accounts": ACCOUNTS}, events).close()
    stale = [f for f in _read(root / "ws") if f["kind"] == "stale_source"]
    assert [f["source"] for f in stale] == ["import"]
