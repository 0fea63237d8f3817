"""Alerts and playbooks (docs/alerts.md): rules give hand-checked alerts on a planted workspace,
once per rule, account and period; webhooks receive each alert exactly once, through a failed
first delivery, repeated runs, and a `kill -9` of `serve` between the attempts.

As of 2024-06-30 (ISO week 2024-W26): `busy` has 3 users on 2 seats every day (seat cap
reached; WAU 3 → 3); `fading` has 4 users in the week to 06-23 and one in the last week (WAU
4 → 1: −75 %; seat utilization 4/10 = 0.4); `steady` has 2 users on 4 seats both weeks (0.5).
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from accountlens.api.alert_routes import alert_router
from accountlens.cli import alerts_cmd
from accountlens.config import ConfigError, load_config
from accountlens.governance.alerts import alert_id, history, period_key, run_alerts
from accountlens.governance.delivery import ID_HEADER, backoff
from accountlens.workspace import Workspace
from tests.conftest import free_port, start_server, wait_for
from tests.small_workspace import build

AS_OF = dt.date(2024, 6, 30)
ACCOUNTS = """account_id,name,owner
busy,Busy Co,bob@vendor.example
fading,Fading Inc,ann@vendor.example
steady,Steady Ltd,
"""
SUBSCRIPTIONS = """subscription_id,account_id,plan,seats,arr,start,end
busy-s,busy,pro,2,2000,2024-01-01,
fading-s,fading,pro,10,10000,2024-01-01,
steady-s,steady,pro,4,4000,2024-01-01,
"""
ACTIVE = {  # user → (account, first day, last day) of daily activity in June 2024
    "b1": ("busy", 17, 30), "b2": ("busy", 17, 30), "b3": ("busy", 17, 30),
    "f1": ("fading", 17, 30), "f2": ("fading", 17, 23), "f3": ("fading", 17, 23),
    "f4": ("fading", 17, 23),
    "s1": ("steady", 17, 30), "s2": ("steady", 17, 30),
}
RULES = """
[[alerts.rules]]
name = "usage"
kind = "usage_drop"
threshold = 30
webhooks = WEBHOOKS
action = "Call the admin: what changed this week?"
owner = "account_owner"

[[alerts.rules]]
name = "seats"
kind = "seat_cap"
webhooks = WEBHOOKS
action = "Offer more seats"
owner = "sales@vendor.example"

[[alerts.rules]]
name = "low_util"
kind = "metric"
metric = "seat_utilization"
op = "<"
threshold = 0.45
webhooks = WEBHOOKS
"""


def _events() -> list[dict]:
    return [{"type": "track", "messageId": f"{user}-{day}", "userId": user, "event": "Report Created",
             "timestamp": f"2024-06-{day:02d}T12:00:00Z", "context": {"groupId": account}}
            for user, (account, first, last) in ACTIVE.items() for day in range(first, last + 1)]


def _configure(root: Path, webhooks: dict[str, str], settings: str = "",
               formats: dict[str, str] | None = None) -> None:
    """Rules RULES sent to `webhooks` (name → url); `settings` replaces the [alerts] keys."""
    path = root / "accountlens.toml"
    text = path.read_text()
    start = text.index("[alerts]\n")
    for line in settings.splitlines():  # the template's lines of these keys, replaced
        key = line.split("=")[0].strip()
        text = text[:start] + re.sub(rf"^{key} = .*$", line, text[start:], count=1, flags=re.M)
    hooks = "".join(f'\n[alerts.webhooks.{name}]\nurl = "{url}"\nformat = '
                    f'"{(formats or {}).get(name, "json")}"\n' for name, url in webhooks.items())
    path.write_text(text + hooks + RULES.replace("WEBHOOKS", json.dumps(list(webhooks))))


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    build(tmp_path, "alerts", {"accounts": ACCOUNTS, "subscriptions": SUBSCRIPTIONS}, _events()).close()
    return tmp_path / "ws"


class Receiver:
    """A webhook receiver on loopback: answers 500 to the first `fail_first` requests and 200
    after, recording (path, alert id, status, body) of each."""

    def __init__(self, fail_first: int = 1):
        self.requests: list[tuple[str, str, int, dict]] = []
        self.fail_first = fail_first
        received = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 500 if len(received.requests) < received.fail_first else 200
                received.requests.append((self.path, self.headers.get(ID_HEADER, ""), status, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self) -> dict[tuple[str, str], int]:
        """(path, alert id) → how many of its requests were answered 200."""
        counts: dict[tuple[str, str], int] = {}
        for path, ident, status, _ in self.requests:
            if status == 200:
                counts[(path, ident)] = counts.get((path, ident), 0) + 1
        return counts

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def _expected_ids(period: str = "2024-W26") -> set[str]:
    return {alert_id(rule, account, period)
            for rule, account in (("usage", "fading"), ("seats", "busy"), ("low_util", "fading"))}


def test_rules_give_the_hand_checked_alerts_once_per_period(planted: Path) -> None:
    _configure(planted, {})
    with Workspace.open(planted) as ws:
        first = run_alerts(ws.store, ws.config, AS_OF)
        again = run_alerts(ws.store, ws.config, AS_OF)
        # a day earlier, the same ISO week: fading's usage had not dropped yet (f2-f4 were
        # active on 06-23); the other two are the alerts already recorded
        earlier = run_alerts(ws.store, ws.config, AS_OF - dt.timedelta(days=1))
        next_week = run_alerts(ws.store, ws.config, AS_OF + dt.timedelta(days=1), dry_run=True)
        rows = history(ws.store)
    found = {(a["rule"], a["account_id"]): a for a in first["new"]}
    assert set(found) == {("usage", "fading"), ("seats", "busy"), ("low_util", "fading")}
    usage = found[("usage", "fading")]
    assert usage["period"] == "2024-W26" and usage["owner"] == "ann@vendor.example"
    assert usage["evidence"]["previous_value"] == 4 and usage["evidence"]["value"] == 1
    assert usage["evidence"]["change_percent"] == -75.0
    assert usage["action"] == "Call the admin: what changed this week?"
    assert found[("seats", "busy")]["owner"] == "sales@vendor.example"
    assert found[("seats", "busy")]["evidence"]["mau"] == 3
    assert found[("seats", "busy")]["evidence"]["seats"] == 2
    assert found[("low_util", "fading")]["evidence"]["value"] == pytest.approx(0.4)
    assert {a["alert_id"] for a in first["new"]} == _expected_ids()
    # again in the same period: nothing new; in the next week: the same conditions, new alerts
    assert again["new"] == [] and again["already_recorded"] == 3
    assert earlier["new"] == [] and earlier["already_recorded"] == 2
    assert {a["alert_id"] for a in next_week["new"]} == _expected_ids("2024-W27")
    assert len(rows) == 3 and {r["state"] for r in rows} == {"none"}  # no webhooks: none


def test_a_failed_first_delivery_is_retried_and_each_alert_arrives_once(
        planted: Path, receiver: Receiver) -> None:
    _configure(planted, {"slack": receiver.url("/slack"), "generic": receiver.url("/json")},
               settings="interval_minutes = 15\nmax_attempts = 5\nbackoff_seconds = 0.3",
               formats={"slack": "slack"})
    with Workspace.open(planted) as ws:
        outcome = run_alerts(ws.store, ws.config, AS_OF)
        assert outcome["deliveries"] == {"delivered": 5, "retrying": 1, "failed": 0}
        pending = [r for r in history(ws.store) if r["state"] == "pending"]
        assert len(pending) == 1
        (delivery,) = [d for d in pending[0]["deliveries"] if d["state"] == "pending"]
        assert delivery["attempts"] == 1 and delivery["last_error"].startswith("HTTP 500")
        for _ in range(6):  # runs repeated: the retry once due, and never anything else again
            time.sleep(0.3)
            run_alerts(ws.store, ws.config, AS_OF)
        rows = history(ws.store)
    assert {r["state"] for r in rows} == {"delivered"}
    assert receiver.accepted() == {(path, ident): 1 for path in ("/slack", "/json")
                                   for ident in _expected_ids()}
    assert len(receiver.requests) == 7  # six deliveries and the one failed attempt
    slack = [body for path, _, _, body in receiver.requests if path == "/slack"]
    assert all(set(body) == {"text", "blocks"} and body["blocks"][0]["type"] == "header"
               for body in slack)
    generic = [body for path, _, _, body in receiver.requests if path == "/json"]
    assert all({"alert_id", "rule", "account_id", "account_name", "period", "title", "evidence",
                "action", "owner", "created_at"} <= set(body) for body in generic)
    assert {b["alert_id"] for b in generic} == _expected_ids()


def test_a_webhook_that_never_answers_fails_after_max_attempts(planted: Path) -> None:
    _configure(planted, {"gone": f"http://127.0.0.1:{free_port()}/hook"},
               settings="interval_minutes = 15\nmax_attempts = 2\nbackoff_seconds = 0.05")
    with Workspace.open(planted) as ws:
        run_alerts(ws.store, ws.config, AS_OF)
        time.sleep(0.2)
        second = run_alerts(ws.store, ws.config, AS_OF)
        time.sleep(0.2)
        third = run_alerts(ws.store, ws.config, AS_OF)
        rows = history(ws.store)
    assert second["deliveries"]["failed"] == 3 and third["deliveries"] == {
        "delivered": 0, "retrying": 0, "failed": 0}
    for row in rows:
        (delivery,) = row["deliveries"]
        assert row["state"] == "failed" and delivery["attempts"] == 2
        assert "gave up after 2 attempts" in delivery["last_error"]
        assert "refused" in delivery["last_error"].lower()


def test_backoff_doubles_with_jitter() -> None:
    import random

    rng = random.Random(1)
    for attempts, nominal in ((1, 30), (2, 60), (3, 120), (20, 6 * 3600)):
        waits = [backoff(attempts, 30, rng) for _ in range(50)]
        assert all(0.75 * nominal <= w <= 1.25 * nominal for w in waits)
        assert len(set(waits)) > 1


def test_kill_9_between_attempts_delivers_each_alert_exactly_once(
        planted: Path, receiver: Receiver) -> None:
    """`serve` evaluates on its schedule; the first delivery fails; the server is killed
    before the retry; the restarted server retries it (and re-evaluates without repeating)."""
    _configure(planted, {"hook": receiver.url("/hook")},
               settings="interval_minutes = 0.02\nmax_attempts = 5\nbackoff_seconds = 4")
    server = start_server(planted)
    try:
        wait_for(lambda: len(receiver.requests) >= 3, timeout=60)
        time.sleep(0.5)  # the pass records its outcomes; the retry is ≥ 3 s away
        assert len(receiver.requests) == 3 and receiver.requests[0][2] == 500
        server.kill()
        server = start_server(planted)
        wait_for(lambda: len(receiver.accepted()) == 3, timeout=60)
        time.sleep(3)  # several more evaluations and delivery passes: nothing more is sent
    finally:
        server.stop()
    assert receiver.accepted() == {("/hook", ident): 1 for ident in _expected_ids("2024-W26")}
    assert len(receiver.requests) == 4
    with Workspace.open(planted) as ws:
        rows = history(ws.store)
    assert len(rows) == 3 and {r["state"] for r in rows} == {"delivered"}
    assert sorted(r["deliveries"][0]["attempts"] for r in rows) == [1, 1, 2]


def test_cli_list_run_history_and_test(planted: Path, receiver: Receiver) -> None:
    _configure(planted, {"hook": receiver.url("/hook")})
    app = typer.Typer()
    alerts_cmd.register(app)
    app.command("noop")(lambda: None)  # a group of one command would hide the `alerts` name
    runner = CliRunner()
    listed = runner.invoke(app, ["alerts", "list", "--dir", str(planted), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert [r["name"] for r in json.loads(listed.stdout)] == ["usage", "seats", "low_util"]
    assert json.loads(listed.stdout)[0]["owner"] == "account_owner"
    tested = runner.invoke(app, ["alerts", "test", "seats", "--dir", str(planted)])
    assert tested.exit_code == 1  # the receiver answers 500 to its first request
    tested = runner.invoke(app, ["alerts", "test", "seats", "--dir", str(planted),
                                 "--format", "json"])
    assert tested.exit_code == 0 and json.loads(tested.stdout)[0]["delivered"] is True
    dry = runner.invoke(app, ["alerts", "run", "--dir", str(planted), "--dry-run",
                              "--as-of", AS_OF.isoformat(), "--format", "json"])
    assert dry.exit_code == 0 and len(json.loads(dry.stdout)) == 3
    assert len(receiver.requests) == 2  # only the two tests so far
    ran = runner.invoke(app, ["alerts", "run", "--dir", str(planted), "--as-of", AS_OF.isoformat()])
    assert ran.exit_code == 0 and "3 new, 0 already recorded" in ran.stdout
    assert "3 delivered" in ran.stdout
    shown = runner.invoke(app, ["alerts", "history", "--dir", str(planted), "--format", "json",
                                "--since", "2000-01-01"])
    rows = json.loads(shown.stdout)
    assert len(rows) == 3 and {r["state"] for r in rows} == {"delivered"}
    assert not any(r["alert_id"].startswith("test-") for r in rows)  # tests are not recorded
    later = runner.invoke(app, ["alerts", "history", "--dir", str(planted), "--format", "json",
                                "--since", "2999-01-01"])
    assert json.loads(later.stdout) == []
    unknown = runner.invoke(app, ["alerts", "test", "nope", "--dir", str(planted)])
    assert unknown.exit_code == 1 and "no alert rule named 'nope'" in unknown.output


def test_rest_history_rules_and_run(planted: Path, receiver: Receiver) -> None:
    _configure(planted, {"hook": receiver.url("/hook")})
    with Workspace.open(planted) as ws:

        class Live:
            workspace = ws

            class loader:
                @staticmethod
                def flush() -> None:
                    pass

        app = FastAPI()
        app.include_router(alert_router(lambda: Live, lambda: Live, {}))
        client = TestClient(app)
        dry = client.post("/api/v1/alerts/run", params={"dry_run": True, "as_of": "2024-06-30"})
        assert dry.status_code == 200 and len(dry.json()["new"]) == 3
        assert client.get("/api/v1/alerts").json() == []
        ran = client.post("/api/v1/alerts/run", params={"as_of": "2024-06-30"}).json()
        assert ran["deliveries"] == {"delivered": 2, "retrying": 1, "failed": 0}
        rows = client.get("/api/v1/alerts", params={"rule": "usage"}).json()
        assert [r["account_id"] for r in rows] == ["fading"] and rows[0]["state"] in (
            "pending", "delivered")
        assert [r["name"] for r in client.get("/api/v1/alerts/rules").json()] == [
            "usage", "seats", "low_util"]


def test_instrumentation_break_rules_run_or_are_skipped_with_a_note(planted: Path) -> None:
    path = planted / "accountlens.toml"
    path.write_text(path.read_text() + '\n[[alerts.rules]]\nname = "tracking"\n'
                    'kind = "instrumentation_break"\n')
    with Workspace.open(planted) as ws:
        outcome = run_alerts(ws.store, ws.config, AS_OF)
    assert outcome["new"] == []  # nothing broke in the planted events
    assert all("tracking" in note for note in outcome["notes"])


def test_the_config_refuses_unknown_webhooks_and_incomplete_rules(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").close()
    path = tmp_path / "ws" / "accountlens.toml"
    base = path.read_text()
    path.write_text(base + '\n[[alerts.rules]]\nname = "r"\nkind = "seat_cap"\nwebhooks = ["nope"]\n')
    with pytest.raises(ConfigError, match="unknown webhook"):
        load_config(path)
    path.write_text(base + '\n[[alerts.rules]]\nname = "r"\nkind = "metric"\nmetric = "mau"\n')
    with pytest.raises(ConfigError, match="needs metric and threshold"):
        load_config(path)
    path.write_text(base + '\n[alerts.webhooks.h]\nurl = "ftp://x"\n')
    with pytest.raises(ConfigError, match="url"):
        load_config(path)


def test_a_csm_reads_the_alerts_of_its_book_only(planted: Path) -> None:
    from accountlens.governance.tokens import Principal

    _configure(planted, {})
    with Workspace.open(planted) as ws:
        run_alerts(ws.store, ws.config, AS_OF)
        book = ws.acting_as(Principal("token:t", "csm", owner="ann@vendor.example"), "test")
        assert {(r["rule"], r["account_id"]) for r in history(book.store)} == {
            ("usage", "fading"), ("low_util", "fading")}
        assert len(history(ws.store)) == 3


def test_health_champion_and_renewal_rules_match_their_analyses(tmp_path: Path) -> None:
    """On a simulated workspace, each rule's alerts are the analysis rows its condition keeps;
    a champion's departure is keyed by the week it happened, so later runs add no alert."""
    from accountlens.demo.simulator import generate_demo

    root = tmp_path / "demo"
    generate_demo(root, accounts=8, seed=6)
    path = root / "accountlens.toml"
    path.write_text(path.read_text() + """
[[alerts.rules]]
name = "health"
kind = "health_drop"
threshold = 1
period = "day"
[[alerts.rules]]
name = "champion"
kind = "champion_left"
within_days = 120
[[alerts.rules]]
name = "renewal"
kind = "renewal_at_risk"
within_days = 365
threshold = 0.5
""")
    with Workspace.open(root) as ws:
        as_of = ws.analysis_result("health").as_of
        health = ws.analysis("health", level="account", limit=1000)
        champions = ws.analysis("champions", level="account", limit=1000)
        renewals = ws.analysis("renewals", level="account", limit=1000)
        outcome = run_alerts(ws.store, ws.config)
        later = run_alerts(ws.store, ws.config, as_of + dt.timedelta(days=7))
    found = {(a["rule"], a["account_id"]): a for a in outcome["new"]}
    dropped = set(health[health.trend <= -1].account_id)
    left = champions[(champions.status == "left")
                      & (champions.left_on.astype(str) >= str(as_of - dt.timedelta(days=120)))]
    risky = renewals[(renewals.days_to_renewal <= 365) & (
        renewals.health_grade.isin(["poor", "concerning"])
        | renewals.champion_status.isin(["left", "quiet"])
        | (renewals.renewal_probability < 0.5))]
    assert {k for k in found if k[0] == "health"} == {("health", a) for a in dropped}
    assert {k for k in found if k[0] == "champion"} == {("champion", a) for a in left.account_id}
    assert {k for k in found if k[0] == "renewal"} == {("renewal", a) for a in risky.account_id}
    assert dropped and len(left)  # the simulation has both (seed 6, with the demo experiment)
    for row in left.itertuples():
        alert = found[("champion", row.account_id)]
        assert alert["period"] == period_key(dt.date.fromisoformat(str(row.left_on)[:10]), "week")
    assert all(a["period"] == as_of.isoformat() for k, a in found.items() if k[0] == "health")
    assert not any(a["rule"] == "champion" for a in later["new"])
