"""Configuration of the multi-user analyses: `[handoffs]`, `[sequences]` and `[roles]`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HandoffsSection(_Section):
    final_events: list[str] = Field(
        default_factory=lambda: ["Workflow Approved", "Report Approved", "Plan Approved"]
    )
    stall_after_days: float = Field(default=7.0, gt=0)
    lookback_days: int = Field(default=90, gt=0)


class SequencesSection(_Section):
    span_days: int = Field(default=30, gt=0)
    lookback_days: int = Field(default=180, gt=0)
    min_support: int = Field(default=3, ge=1)
    max_tokens: int = Field(default=60, ge=2)


class RolesSection(_Section):
    # Least to most senior; roles not listed are left out of seniority analyses.
    seniority: list[str] = Field(
        default_factory=lambda: ["viewer", "analyst", "editor", "trainer", "approver", "admin",
                                 "executive"]
    )
    champion_quiet_days: int = Field(default=14, gt=0)
    champion_lookback_days: int = Field(default=90, gt=0)
