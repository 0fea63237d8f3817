"""Alert rules and playbooks (docs/alerts.md): evaluate `[[alerts.rules]]` over the analyses and
metrics, record each new alert once per rule, account and period, and hand it to delivery.

An alert's id is a hash of (rule, account, period key): evaluating a rule again in the same
period finds the id already stored and adds nothing, so neither `serve`'s schedule nor repeated
`accountlens alerts run` creates an alert twice. Each rule kind is one function in `KINDS`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import operator
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from accountlens.analysis.registry import MAX_ROWS, REGISTRY, AnalysisError, resolve_as_of, run_analysis
from accountlens.config import AlertRule, Config

if TYPE_CHECKING:
    import pandas as pd

    from accountlens.store.base import Store, WritableStore

ALL_ACCOUNTS = "*"  # the account of an alert about the whole workspace
ACCOUNT_OWNER = "account_owner"  # a rule's `owner`: the account's CRM `owner` trait
# Defaults of a rule's `threshold` and `within_days`, per kind (docs/alerts.md).
DEFAULT_THRESHOLD = {"health_drop": 10.0, "usage_drop": 30.0, "renewal_at_risk": 0.5}
DEFAULT_WITHIN_DAYS = {"renewal_at_risk": 60, "champion_left": 14}
USAGE_METRIC = "wau"
USAGE_COMPARE_DAYS = 7  # usage_drop: week over week
# One evaluation (and one delivery pass) at a time per process: the schedule and a POST /run
# could otherwise send a pending delivery twice.
RUN_LOCK = threading.RLock()


class AlertError(ValueError):
    """A rule or request that cannot be evaluated; the message says why."""


@dataclass(frozen=True)
class Finding:
    """One account meeting a rule's condition: what the alert says about it."""

    account_id: str
    account_name: str | None
    title: str
    evidence: dict[str, Any]
    day: dt.date  # the day whose period keys the alert (as_of, or when the event happened)
    subject: str | None = None  # what the alert is about when not one account (dedup key)


@dataclass(frozen=True)
class Alert:
    alert_id: str
    rule: str
    kind: str
    account_id: str
    account_name: str | None
    period: str
    as_of: dt.date
    severity: str
    title: str
    evidence: dict[str, Any]
    action: str
    owner: str
    created_at: dt.datetime

    def payload(self) -> dict[str, Any]:
        """The generic JSON shape of the alert (also what history rows start with)."""
        return {"alert_id": self.alert_id, "rule": self.rule, "kind": self.kind,
                "account_id": self.account_id, "account_name": self.account_name,
                "period": self.period, "as_of": self.as_of.isoformat(),
                "severity": self.severity, "title": self.title, "evidence": self.evidence,
                "action": self.action, "owner": self.owner,
                "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


@dataclass
class Evaluation:
    """The alerts a run found (`new`: recorded now; `known`: already recorded this period)."""

    as_of: dt.date
    new: list[Alert] = field(default_factory=list)
    known: list[Alert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def period_key(day: dt.date, period: str) -> str:
    """`2025-W27` (ISO week) or `2025-06-30` (day)."""
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def alert_id(rule: str, account_id: str, period: str) -> str:
    """The dedup key: one alert per rule, account and period."""
    return hashlib.sha256(f"{rule}\x1f{account_id}\x1f{period}".encode()).hexdigest()[:32]


# --- rule kinds: (store, config, rule, as_of) -> findings -----------------------------------------
Kind = Callable[["Store", Config, AlertRule, dt.date], list[Finding]]
KINDS: dict[str, Kind] = {}


def kind(name: str) -> Callable[[Kind], Kind]:
    def add(function: Kind) -> Kind:
        KINDS[name] = function
        return function
    return add


def _analysis(store: Store, config: Config, name: str, as_of: dt.date) -> pd.DataFrame:
    return run_analysis(store, config, name, as_of=as_of, level="account", limit=MAX_ROWS).frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    """A JSON-ready value (NaN and pandas' NA as None, dates as ISO text, numpy as Python)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        try:
            return _plain(value.item())
        except (ValueError, TypeError):
            return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _threshold(rule: AlertRule) -> float:
    return rule.threshold if rule.threshold is not None else DEFAULT_THRESHOLD[rule.kind]


@kind("health_drop")
def _health_drop(store: Store, config: Config, rule: AlertRule, as_of: dt.date) -> list[Finding]:
    """The health score fell by at least `threshold` points over `[health] trend_days`."""
    drop = _threshold(rule)
    found = []
    for row in _records(_analysis(store, config, "health", as_of)):
        if row.get("trend") is None or row["trend"] > -drop:
            continue
        found.append(Finding(
            row["account_id"], row.get("account_name"),
            f"Health of {row.get('account_name') or row['account_id']} fell "
            f"{-row['trend']:.0f} points to {row['score']:.0f} ({row['grade']})",
            {"score": row["score"], "previous_score": row["previous_score"],
             "trend": row["trend"], "grade": row["grade"], "lever": row.get("lever"),
             "trend_days": config.health.trend_days, "threshold": drop}, as_of))
    return found


@kind("usage_drop")
def _usage_drop(store: Store, config: Config, rule: AlertRule, as_of: dt.date) -> list[Finding]:
    """An account's usage metric (default `wau`) fell by more than `threshold` percent from
    seven days before."""
    from accountlens.metrics.registry import metric_request, run

    name = rule.metric or USAGE_METRIC
    before = as_of - dt.timedelta(days=USAGE_COMPARE_DAYS)
    now_rows, then_rows = (
        _records(run(store, config.metrics, config.analysis,
                     metric_request(name, "account", day, None, {})).frame)
        for day in (as_of, before))
    previous = {row["account_id"]: row.get(name) for row in then_rows}
    percent = _threshold(rule)
    found = []
    for row in now_rows:
        old, new = previous.get(row["account_id"]), row.get(name)
        if old is None or new is None or old <= 0:
            continue
        change = (new - old) / old * 100
        if -change > percent:
            found.append(Finding(
                row["account_id"], row.get("account_name"),
                f"{name} of {row.get('account_name') or row['account_id']} down "
                f"{-change:.0f}% week over week ({old:g} → {new:g})",
                {"metric": name, "value": new, "previous_value": old,
                 "previous_as_of": before.isoformat(), "change_percent": round(change, 1),
                 "threshold_percent": percent}, as_of))
    return found


@kind("seat_cap")
def _seat_cap(store: Store, config: Config, rule: AlertRule, as_of: dt.date) -> list[Finding]:
    """The `seat_cap` expansion signal (docs/signals.md): seats (nearly) all used."""
    return [Finding(row["account_id"], row.get("account_name"),
                    f"{row.get('account_name') or row['account_id']} reached its seat cap: "
                    f"{row['detail']}",
                    {"mau": row.get("mau"), "seats": row.get("seats"),
                     "utilization": row.get("value"), "threshold": row.get("threshold")}, as_of)
            for row in _records(_analysis(store, config, "signals", as_of))
            if row.get("signal") == "seat_cap"]


@kind("champion_left")
def _champion_left(store: Store, config: Config, rule: AlertRule,
                   as_of: dt.date) -> list[Finding]:
    """The account's champion left within `within_days`; keyed by the period of leaving, so
    one departure gives one alert whichever period it is noticed in."""
    within = rule.within_days or DEFAULT_WITHIN_DAYS["champion_left"]
    found = []
    for row in _records(_analysis(store, config, "champions", as_of)):
        if row.get("status") != "left" or not row.get("left_on"):
            continue
        left_on = dt.date.fromisoformat(str(row["left_on"])[:10])
        if (as_of - left_on).days > within:
            continue
        found.append(Finding(
            row["account_id"], row.get("account_name"),
            f"The champion of {row.get('account_name') or row['account_id']} "
            f"({row['champion']}, {row.get('role')}) left on {left_on.isoformat()}",
            {"champion": row["champion"], "role": row.get("role"), "left_on": left_on.isoformat(),
             "share_of_activity": row.get("share_of_activity"), "risk": row.get("risk"),
             "admins_left": row.get("admins_left")}, left_on))
    return found


@kind("renewal_at_risk")
def _renewal_at_risk(store: Store, config: Config, rule: AlertRule,
                     as_of: dt.date) -> list[Finding]:
    """A renewal within `within_days` (default 60) that is at risk: health not healthy, the
    champion quiet or gone, or a renewal probability under `threshold` (default 0.5)."""
    within = rule.within_days or DEFAULT_WITHIN_DAYS["renewal_at_risk"]
    below = _threshold(rule)
    found = []
    for row in _records(_analysis(store, config, "renewals", as_of)):
        days = row.get("days_to_renewal")
        if days is None or days > within:
            continue
        reasons = []
        if row.get("health_grade") in ("poor", "concerning"):
            reasons.append(f"health {row['health_grade']} ({row['health_score']:.0f})")
        if row.get("champion_status") in ("left", "quiet"):
            reasons.append(f"champion {row['champion_status']}")
        probability = row.get("renewal_probability")
        if probability is not None and probability < below:
            reasons.append(f"renewal probability {probability:.0%}")
        if not reasons:
            continue
        found.append(Finding(
            row["account_id"], row.get("account_name"),
            f"Renewal of {row.get('account_name') or row['account_id']} in {days} days "
            f"({row['renewal_date']}) at risk: {', '.join(reasons)}",
            {"renewal_date": row["renewal_date"], "days_to_renewal": days,
             "renewal_arr": row.get("renewal_arr"), "renewal_probability": probability,
             "arr_at_risk": row.get("arr_at_risk"), "health_score": row.get("health_score"),
             "health_grade": row.get("health_grade"),
             "champion_status": row.get("champion_status"), "reasons": reasons}, as_of))
    return found


@kind("instrumentation_break")
def _instrumentation_break(store: Store, config: Config, rule: AlertRule,
                           as_of: dt.date) -> list[Finding]:
    """Each instrumentation break of the `anomalies` analysis (docs/quality.md): an event or
    library version that stopped arriving from many accounts at once. A break is not one
    account's: its alert's account is `*` and it is keyed by (event, source). Skipped with a
    note where that analysis is not installed."""
    if "anomalies" not in REGISTRY.all():
        raise _Skipped(f"rule {rule.name}: the anomalies analysis is not installed; "
                       "instrumentation_break rules are skipped")
    frame = run_analysis(store, config, "anomalies", as_of=as_of, limit=MAX_ROWS,
                         kind="instrumentation_break").frame
    found = []
    for row in _records(frame):
        subject = f"{row.get('event') or '*'}|{row.get('source') or '*'}"
        found.append(Finding(
            row.get("account_id") or ALL_ACCOUNTS, None,
            f"Instrumentation break: {row.get('evidence') or subject}",
            {k: row.get(k) for k in ("event", "source", "since", "expected", "observed",
                                     "window", "accounts")}, as_of, subject))
    return found


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}


@kind("metric")
def _metric(store: Store, config: Config, rule: AlertRule, as_of: dt.date) -> list[Finding]:
    """Any account-level metric compared with `threshold` (`op`: <, <=, >, >=, ==, !=)."""
    from accountlens.metrics.registry import metric_request, run

    assert rule.metric is not None and rule.threshold is not None  # the config validates it
    result = run(store, config.metrics, config.analysis,
                 metric_request(rule.metric, "account", as_of, None, {}))
    found = []
    for row in _records(result.frame):
        value = row.get(rule.metric)
        if value is None or not _OPS[rule.op](value, rule.threshold):
            continue
        found.append(Finding(row["account_id"], row.get("account_name"),
                             f"{rule.metric} of {row.get('account_name') or row['account_id']} "
                             f"is {value:g} ({rule.op} {rule.threshold:g})",
                             {"metric": rule.metric, "value": value, "op": rule.op,
                              "threshold": rule.threshold}, as_of))
    return found


class _Skipped(Exception):
    """A rule that cannot run here (a missing analysis); its message is a note."""


# --- evaluation and recording ----------------------------------------------------------------
def account_owners(store: Store) -> dict[str, str]:
    """Account id → its CRM `owner` trait (where set)."""
    rows = store.rows("SELECT account_id, json_extract_string(traits, '$.owner') AS owner "
                      "FROM accounts WHERE json_extract_string(traits, '$.owner') IS NOT NULL")
    return {row["account_id"]: row["owner"] for row in rows}


def rule_named(config: Config, name: str) -> AlertRule:
    for rule in config.alerts.rules:
        if rule.name == name:
            return rule
    known = ", ".join(r.name for r in config.alerts.rules) or "none: add [[alerts.rules]]"
    raise AlertError(f"no alert rule named {name!r} (rules: {known})")


def evaluate(store: Store, config: Config, as_of: dt.date | None = None,
             rules: list[AlertRule] | None = None,
             now: dt.datetime | None = None) -> tuple[list[Alert], list[str]]:
    """The alerts the rules give as of `as_of` (default: the default as-of), with notes on
    rules that could not run. Nothing is recorded."""
    day = resolve_as_of(store, as_of)
    created = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    owners: dict[str, str] | None = None
    alerts: list[Alert] = []
    notes: list[str] = []
    for rule in config.alerts.rules if rules is None else rules:
        try:
            findings = KINDS[rule.kind](store, config, rule, day)
        except _Skipped as exc:
            notes.append(str(exc))
            continue
        except (AnalysisError, ValueError, LookupError, OverflowError) as exc:
            notes.append(f"rule {rule.name}: not evaluated: {exc}")
            continue
        for found in findings:
            owner = rule.owner
            if owner == ACCOUNT_OWNER:
                owners = account_owners(store) if owners is None else owners
                owner = owners.get(found.account_id, "")
            period = period_key(found.day, rule.period)
            alerts.append(Alert(alert_id(rule.name, found.subject or found.account_id, period),
                                rule.name,
                                rule.kind, found.account_id, found.account_name, period, day,
                                rule.severity, found.title, found.evidence, rule.action, owner,
                                created))
    return alerts, notes


@contextlib.contextmanager
def bookkeeping(store: WritableStore) -> Iterator[None]:
    """A write transaction on the alert tables. Unlike `store.transaction()` it leaves the
    store's data version alone: no metric or analysis reads these tables, so the results the
    dashboard keeps stay valid."""
    with store.write_lock:
        store.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            store.execute("ROLLBACK")
            raise
        store.execute("COMMIT")


def record(store: WritableStore, config: Config, alerts: list[Alert]) -> Evaluation:
    """Store the alerts not stored yet, each with a pending delivery per webhook of its rule
    (one transaction: an alert is never recorded without its deliveries)."""
    result = Evaluation(alerts[0].as_of if alerts else dt.date.today())
    webhooks = {rule.name: rule.webhooks for rule in config.alerts.rules}
    with bookkeeping(store):
        ids = [a.alert_id for a in alerts]
        stored = {r["alert_id"] for r in store.rows(
            "SELECT alert_id FROM alerts WHERE list_contains(?, alert_id)", [ids])} if ids else set()
        for alert in alerts:
            if alert.alert_id in stored:
                result.known.append(alert)
                continue
            stored.add(alert.alert_id)  # two findings of one rule, account and period: one alert
            result.new.append(alert)
            store.execute(
                "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [alert.alert_id, alert.rule, alert.kind, alert.account_id, alert.account_name,
                 alert.period, alert.as_of, alert.severity, alert.title,
                 orjson.dumps(alert.evidence, default=str).decode(), alert.action, alert.owner,
                 alert.created_at])
            for webhook in webhooks.get(alert.rule, []):
                store.execute(
                    "INSERT INTO alert_deliveries VALUES (?, ?, ?, 'pending', 0, ?, NULL, NULL)",
                    [alert.alert_id, alert.account_id, webhook, alert.created_at])
    return result


def run_alerts(store: WritableStore, config: Config, as_of: dt.date | None = None,
               dry_run: bool = False, deliver: bool = True,
               now: dt.datetime | None = None) -> dict[str, Any]:
    """Evaluate every rule, record the new alerts and deliver what is due (docs/alerts.md).
    `dry_run`: evaluate only, record and send nothing."""
    from accountlens.governance.delivery import deliver_due

    with RUN_LOCK:
        alerts, notes = evaluate(store, config, as_of, now=now)
        day = resolve_as_of(store, as_of)
        if dry_run:
            ids = [a.alert_id for a in alerts]
            stored = {r["alert_id"] for r in store.rows(
                "SELECT alert_id FROM alerts WHERE list_contains(?, alert_id)", [ids])} if ids else set()
            outcome = Evaluation(day, [a for a in alerts if a.alert_id not in stored],
                                 [a for a in alerts if a.alert_id in stored], notes)
            deliveries = {"delivered": 0, "retrying": 0, "failed": 0}
        else:
            outcome = record(store, config, alerts)
            outcome.notes = notes
            deliveries = (deliver_due(store, config, now=now) if deliver
                          else {"delivered": 0, "retrying": 0, "failed": 0})
    return {"as_of": day.isoformat(), "dry_run": dry_run,
            "rules": len(config.alerts.rules),
            "new": [a.payload() for a in outcome.new],
            "already_recorded": len(outcome.known), "deliveries": deliveries,
            "notes": outcome.notes}


def history(store: Store, since: dt.datetime | None = None, rule: str | None = None,
            limit: int = 1000) -> list[dict[str, Any]]:
    """Recorded alerts, newest first, each with its delivery state per webhook."""
    rows = store.rows(
        """SELECT alert_id, rule, kind, account_id, account_name, period,
                  strftime(as_of, '%Y-%m-%d') AS as_of, severity, title,
                  CAST(evidence AS VARCHAR) AS evidence, action, owner,
                  strftime(created_at, '%Y-%m-%dT%H:%M:%SZ') AS created_at
           FROM alerts
           WHERE (CAST(? AS TIMESTAMPTZ) IS NULL OR created_at >= ?)
             AND (CAST(? AS VARCHAR) IS NULL OR rule = ?)
           ORDER BY created_at DESC, rule, account_id LIMIT ?""",
        [since, since, rule, rule, limit])
    ids = [row["alert_id"] for row in rows]
    deliveries: dict[str, list[dict[str, Any]]] = {}
    if ids:
        for d in store.rows(
                """SELECT alert_id, webhook, state, attempts,
                          strftime(next_attempt_at, '%Y-%m-%dT%H:%M:%SZ') AS next_attempt_at,
                          last_error,
                          strftime(delivered_at, '%Y-%m-%dT%H:%M:%SZ') AS delivered_at
                   FROM alert_deliveries WHERE list_contains(?, alert_id)
                   ORDER BY webhook""", [ids]):
            deliveries.setdefault(d.pop("alert_id"), []).append(d)
    for row in rows:
        row["evidence"] = orjson.loads(row["evidence"]) if row["evidence"] else {}
        row["deliveries"] = deliveries.get(row["alert_id"], [])
        row["state"] = delivery_state(row["deliveries"])
    return rows


def delivery_state(deliveries: list[dict[str, Any]]) -> str:
    """One word for an alert's deliveries: none (no webhook), delivered (all), failed (any
    gave up), else pending."""
    states = {d["state"] for d in deliveries}
    if not states:
        return "none"
    if states == {"delivered"}:
        return "delivered"
    return "failed" if "failed" in states else "pending"


def rule_listing(config: Config) -> list[dict[str, Any]]:
    """The rules with their condition and playbook (`accountlens alerts list`)."""
    return [{"name": rule.name, "kind": rule.kind, "condition": describe(rule),
             "period": rule.period, "severity": rule.severity, "webhooks": list(rule.webhooks),
             "action": rule.action, "owner": rule.owner} for rule in config.alerts.rules]


def describe(rule: AlertRule) -> str:
    """The rule's condition in words, with its defaults filled in."""
    within = rule.within_days or DEFAULT_WITHIN_DAYS.get(rule.kind)
    return {
        "health_drop": lambda: f"health score fell ≥ {_threshold(rule):g} points",
        "usage_drop": lambda: (f"{rule.metric or USAGE_METRIC} down > {_threshold(rule):g}% "
                               "week over week"),
        "seat_cap": lambda: "seat_cap signal (seats nearly all used)",
        "champion_left": lambda: f"champion left within {within} days",
        "renewal_at_risk": lambda: (f"renewal within {within} days with poor/concerning health, "
                                    f"champion quiet/left, or probability < {_threshold(rule):g}"),
        "instrumentation_break": lambda: "a row of the anomalies analysis",
        "metric": lambda: f"{rule.metric} {rule.op} {rule.threshold:g}",
    }[rule.kind]()


def sample_alert(rule: AlertRule, now: dt.datetime | None = None) -> Alert:
    """The alert `accountlens alerts test RULE` sends (never recorded)."""
    moment = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    return Alert(f"test-{alert_id(rule.name, 'test', moment.isoformat())[:16]}", rule.name,
                 rule.kind, "test-account", "Test Account (sample)", "test", moment.date(),
                 rule.severity, f"Test of alert rule {rule.name}: {describe(rule)}",
                 {"test": True}, rule.action,
                 rule.owner if rule.owner != ACCOUNT_OWNER else "account owner (from the CRM)",
                 moment)
