"""Webhook delivery of alerts (docs/alerts.md): Slack-compatible or generic JSON, retried with
exponential backoff and jitter, the state of every (alert, webhook) kept in the store.

Each attempt is counted in the store before its request goes out, and `delivered` is committed
right after a 2xx answer: a restart resumes what is pending and never sends a delivered alert
again. The one window left is a crash between the receiver's 2xx and that commit (a few
milliseconds): the alert is then sent again after the restart, with the same
`X-Accountlens-Alert-Id` header, by which a receiver drops the repeat.
"""

from __future__ import annotations

import datetime as dt
import http.client
import random
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

from accountlens.config import AlertWebhook, Config
from accountlens.governance.alerts import RUN_LOCK, Alert, bookkeeping
from accountlens.store.base import WritableStore

ID_HEADER = "X-Accountlens-Alert-Id"
ATTEMPT_HEADER = "X-Accountlens-Delivery-Attempt"
MAX_BACKOFF_SECONDS = 6 * 3600.0
JITTER = 0.25  # each wait is its nominal length ±25%: receivers recovering are not hit at once
_ERROR_CHARS = 500


# --- payload formats: one function each ------------------------------------------------------
def json_payload(alert: Alert) -> dict[str, Any]:
    return alert.payload()


def slack_payload(alert: Alert) -> dict[str, Any]:
    """An incoming-webhook message: `text` (the notification) and Block Kit `blocks`."""
    account = f"{alert.account_name} ({alert.account_id})" if alert.account_name else alert.account_id
    evidence = " · ".join(f"{k}: {_shown(v)}" for k, v in alert.evidence.items() if v is not None)
    fields = [("Account", account), ("Rule", f"{alert.rule} ({alert.period})"),
              ("Severity", alert.severity), ("Owner", alert.owner or "—")]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                                       for name, value in fields]},
    ]
    if alert.action:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": f"*Recommended action*\n{alert.action}"}})
    if evidence:
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": evidence[:2000]}]})
    text = f"[{alert.severity}] {alert.title}" + (f" — {alert.action}" if alert.action else "")
    return {"text": text, "blocks": blocks}


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


FORMATS: dict[str, Callable[[Alert], dict[str, Any]]] = {"json": json_payload,
                                                         "slack": slack_payload}


# --- sending ---------------------------------------------------------------------------------
def send(webhook: AlertWebhook, alert: Alert, attempt: int, timeout: float,
         test: bool = False) -> str | None:
    """POST the alert; None on a 2xx answer, else what went wrong (status and body start,
    or the connection error)."""
    body = orjson.dumps(FORMATS[webhook.format](alert), default=str)
    headers = {"Content-Type": "application/json", "User-Agent": "accountlens-alerts",
               ID_HEADER: alert.alert_id, ATTEMPT_HEADER: str(attempt)}
    if test:
        headers["X-Accountlens-Test"] = "true"
    request = urllib.request.Request(webhook.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        text = exc.read()[:200].decode("utf-8", "replace").strip()
        return f"HTTP {exc.code}" + (f": {text}" if text else "")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # refused, timed out, DNS, a malformed URL, a garbled or cut answer
        reason = getattr(exc, "reason", None) or exc
        return f"{type(exc).__name__}: {reason}"[:_ERROR_CHARS]


def backoff(attempts: int, base_seconds: float, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base × 2^(attempts−1),
    at most six hours, ±25% jitter."""
    nominal = min(base_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return nominal * (1 + JITTER * (2 * (rng or random).random() - 1))


def _due(store: WritableStore, now: dt.datetime) -> list[dict[str, Any]]:
    return store.rows(
        """SELECT d.webhook, d.attempts, a.alert_id, a.rule, a.kind, a.account_id,
                  a.account_name, a.period, a.as_of, a.severity, a.title,
                  CAST(a.evidence AS VARCHAR) AS evidence, a.action, a.owner, a.created_at
           FROM alert_deliveries d JOIN alerts a USING (alert_id)
           WHERE d.state = 'pending' AND coalesce(d.next_attempt_at, a.created_at) <= ?
           ORDER BY a.created_at, a.alert_id, d.webhook""", [now])


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(row["alert_id"], row["rule"], row["kind"], row["account_id"],
                 row["account_name"], row["period"], row["as_of"], row["severity"],
                 row["title"], orjson.loads(row["evidence"]) if row["evidence"] else {},
                 row["action"] or "", row["owner"] or "", row["created_at"])


def deliver_due(store: WritableStore, config: Config, now: dt.datetime | None = None,
                rng: random.Random | None = None) -> dict[str, int]:
    """Send every pending delivery whose time has come; counts of what became delivered,
    stays pending (to be retried) or failed for good."""
    settings = config.alerts
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    with RUN_LOCK:
        for row in _due(store, now or dt.datetime.now(dt.UTC)):
            moment = now or dt.datetime.now(dt.UTC)
            alert, name = _alert(row), row["webhook"]
            attempt = int(row["attempts"]) + 1
            webhook = settings.webhooks.get(name)
            if webhook is None:
                _finish(store, alert.alert_id, name, "failed", attempt - 1,
                        f"webhook {name!r} is no longer configured ([alerts.webhooks.{name}])")
                counts["failed"] += 1
                continue
            # counted before sending: a crash during the request still uses up an attempt,
            # and the restarted server waits for the backoff rather than hammer the receiver
            wait = dt.timedelta(seconds=backoff(attempt, settings.backoff_seconds, rng))
            with bookkeeping(store):
                store.execute(
                    "UPDATE alert_deliveries SET attempts = ?, next_attempt_at = ? "
                    "WHERE alert_id = ? AND webhook = ? AND state = 'pending'",
                    [attempt, moment + wait, alert.alert_id, name])
            error = send(webhook, alert, attempt, settings.timeout_seconds)
            if error is None:
                _finish(store, alert.alert_id, name, "delivered", attempt, None)
                counts["delivered"] += 1
            elif attempt >= settings.max_attempts:
                _finish(store, alert.alert_id, name, "failed", attempt,
                        f"{error} (gave up after {attempt} attempts)")
                counts["failed"] += 1
            else:
                _finish(store, alert.alert_id, name, "pending", attempt, error)
                counts["retrying"] += 1
    return counts


def _finish(store: WritableStore, alert_id: str, webhook: str, state: str, attempts: int,
            error: str | None) -> None:
    with bookkeeping(store):
        store.execute(
            """UPDATE alert_deliveries
               SET state = ?, attempts = ?, last_error = coalesce(?, last_error),
                   delivered_at = CASE WHEN ? = 'delivered' THEN now() END
               WHERE alert_id = ? AND webhook = ?""",
            [state, attempts, error, state, alert_id, webhook])


def send_test(config: Config, alert: Alert, webhooks: list[str]) -> list[dict[str, Any]]:
    """Send a sample alert to the webhooks once each (no retries, nothing recorded)."""
    results = []
    for name in webhooks:
        webhook = config.alerts.webhooks[name]
        error = send(webhook, alert, 1, config.alerts.timeout_seconds, test=True)
        results.append({"webhook": name, "url": webhook.url, "format": webhook.format,
                        "delivered": error is None, "error": error})
    return results
