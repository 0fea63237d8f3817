"""Configuration of the metrics engine: `[metrics]` (SPEC §5 definitions) and `[analysis]` (model)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FUNNEL_STAGES = ("awareness", "acquisition", "activation", "retention", "referral", "revenue")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ascending(values: list[int]) -> list[int]:
    if any(b <= a for a, b in zip(values, values[1:])) or any(v <= 0 for v in values):
        raise ValueError("band edges must be positive and strictly increasing")
    return values


class MetricsSection(_Section):
    # Events that deliver value: activation, time-to-value, value contribution, funnel activation.
    value_events: list[str] = Field(
        default_factory=lambda: ["Report Created", "Report Shared", "Workflow Approved",
                                 "Plan Approved"]
    )
    activation_days: int = Field(default=14, gt=0)
    account_activation_days: int = Field(default=30, gt=0)
    min_users: int = Field(default=2, ge=1)
    velocity_weeks: int = Field(default=8, gt=0)
    funnel_stages: list[str] = Field(
        default_factory=lambda: ["acquisition", "activation", "retention", "referral", "revenue"]
    )
    awareness_events: list[str] = Field(default_factory=lambda: ["Page Viewed"])
    retention_after_days: int = Field(default=7, gt=0)
    referral_event: str = "User Invited"
    referral_email_property: str = "invitee_email"
    monetization_event: str = "Order Completed"
    revenue_period_days: int = Field(default=365, gt=0)
    quota_window_days: int = Field(default=30, gt=0)
    quota_events: dict[str, list[str]] = Field(default_factory=lambda: {"api_calls": ["API Called"]})
    module_events: dict[str, list[str]] = Field(default_factory=dict)
    size_bands: list[int] = Field(default_factory=lambda: [50, 250, 1000])
    maturity_bands_months: list[int] = Field(default_factory=lambda: [3, 12, 24])
    deployment_scale_bands: list[int] = Field(default_factory=lambda: [5, 20, 100])

    @field_validator("funnel_stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        unknown = [s for s in stages if s not in FUNNEL_STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; use {', '.join(FUNNEL_STAGES)}")
        if len(set(stages)) != len(stages) or not stages:
            raise ValueError("stages must be listed once each, at least one")
        return stages

    @field_validator("size_bands", "maturity_bands_months", "deployment_scale_bands")
    @classmethod
    def _bands(cls, values: list[int]) -> list[int]:
        return _ascending(values)


AnalysisModel = Literal["user", "account", "loose", "linked", "advanced"]


class AnalysisSection(_Section):
    # user | account | loose | linked | advanced (docs/metrics.md, "Analysis models").
    model: AnalysisModel = "advanced"
