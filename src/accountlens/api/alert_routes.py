"""`/api/v1/alerts...`: alert history and rules (read), and evaluating the rules now (admin) —
the REST equivalents of `accountlens alerts history|list|run` (docs/alerts.md).

No `from __future__ import annotations` here: FastAPI must see the real types."""

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from accountlens.governance import alerts


class AlertDelivery(BaseModel):
    webhook: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    delivered_at: str | None


class AlertRecord(BaseModel):
    alert_id: str = Field(description="hash of rule, account and period: the dedup and "
                          "idempotency key (header X-Accountlens-Alert-Id of each delivery)")
    rule: str
    kind: str
    account_id: str = Field(description="the account, or * for the whole workspace")
    account_name: str | None
    period: str = Field(description="ISO week (2025-W27) or day of the rule's period")
    as_of: str
    severity: str
    title: str
    evidence: dict[str, Any]
    action: str | None = Field(description="the playbook's recommended action")
    owner: str | None = Field(description="who acts on it (the playbook's owner)")
    created_at: str
    deliveries: list[AlertDelivery]
    state: Literal["none", "pending", "delivered", "failed"]


class AlertRuleInfo(BaseModel):
    name: str
    kind: str
    condition: str
    period: str
    severity: str
    webhooks: list[str]
    action: str
    owner: str


class AlertRunResult(BaseModel):
    as_of: str
    dry_run: bool
    rules: int
    new: list[dict[str, Any]] = Field(description="alerts recorded by this run (dry run: that "
                                      "would be)")
    already_recorded: int = Field(description="alerts found again in a period that has them")
    deliveries: dict[str, int] = Field(description="delivered, retrying, failed")
    notes: list[str]


def alert_router(reads: Callable, admin: Callable, errors: dict) -> APIRouter:
    router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

    @router.get("", response_model=list[AlertRecord], responses=errors)
    def alert_history(
            since: dt.datetime | None = Query(default=None, description="created at or after"),
            rule: str | None = Query(default=None, description="only this rule's alerts"),
            limit: int = Query(default=1000, ge=1, le=100_000),
            live=Depends(reads)) -> list[dict]:
        """Recorded alerts, newest first, with their delivery state per webhook (a csm token:
        its book's accounts only)."""
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        return alerts.history(live.workspace.store, since, rule, limit)

    @router.get("/rules", response_model=list[AlertRuleInfo], responses=errors)
    def alert_rules(live=Depends(reads)) -> list[dict]:
        """The rules with their condition and playbook (action, owner)."""
        return alerts.rule_listing(live.workspace.config)

    @router.post("/run", response_model=AlertRunResult, responses=errors)
    def run(dry_run: bool = Query(default=False, description="evaluate only: record and send "
                                  "nothing"),
            as_of: dt.date | None = Query(default=None, description="evaluate as of this day"),
            live=Depends(admin)) -> dict:
        """Evaluate the rules now, record the new alerts and deliver what is due."""
        live.loader.flush()  # read-your-writes: what was acknowledged counts
        try:
            return alerts.run_alerts(live.workspace.store, live.workspace.config, as_of, dry_run)
        except alerts.AlertError as exc:
            raise HTTPException(400, str(exc)) from exc

    return router
