"""An attribution rule set (docs/attribution.md): what counts as a touch before an outcome, how
journeys are cut into stages, and the parameters of every credit model. Rule sets are versioned
in the workspace (analysis/rule_versions.py); this module is only their typed shape."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# What one touch is: every active event, or the first event of a user (and feature) per day, so
# that a user clicking 500 times in a day does not outweigh 500 colleagues who each did once.
TOUCH_GRAINS = ("event", "user_day", "user_feature_day")


class Stage(BaseModel):
    """A journey stage: the touches at most `days_before` days before the outcome (and more than
    the next closer stage's days). The stage farthest from the outcome has no limit but the
    lookback."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    days_before: float | None = Field(default=None, gt=0, description="upper limit; None: the lookback")


class AttributionRules(BaseModel):
    """A rule set's content. Every field has a default, so `{}` is a valid rule set."""

    model_config = ConfigDict(extra="forbid")

    lookback_days: int = Field(default=365, ge=1, le=3650,
                               description="touches at most this many days before the outcome")
    touch: Literal[TOUCH_GRAINS] = Field(  # type: ignore[valid-type]
        default="user_feature_day", description="what one touch is")
    include_events: list[str] = Field(default_factory=list,
                                      description="only these event names are touches (empty: all active events)")
    exclude_events: list[str] = Field(default_factory=list, description="event names that are never touches")
    humans_only: bool = Field(default=True, description="automation events are not touches")
    # Closest to the outcome first; a touch belongs to the first stage whose days_before it is
    # within. The last stage (no days_before) takes the rest of the lookback.
    stages: list[Stage] = Field(default_factory=lambda: [
        Stage(name="decision", days_before=30), Stage(name="evaluation", days_before=90),
        Stage(name="adoption")])
    half_life_days: float = Field(default=30.0, gt=0, le=3650, description="time decay: a touch this "
                                  "many days before the outcome counts half as much as one on its day")
    u_shaped: tuple[float, float] = Field(default=(0.4, 0.4), description="first and last touch's share; "
                                          "the touches between share the rest")
    w_shaped: tuple[float, float, float] = Field(default=(0.3, 0.3, 0.3), description="first touch, "
                                                 "milestone and last touch's share; the others share the rest")
    full_path: tuple[float, float, float, float] = Field(default=(0.225, 0.225, 0.225, 0.225),
                                                         description="first, two milestones, last")
    # The milestones of the W-shaped and full-path models: the first touch in each of these
    # stages (W-shaped uses the first one).
    milestone_stages: tuple[str, str] = Field(default=("evaluation", "decision"))
    role_weights: dict[str, float] = Field(default_factory=dict,
                                           description="role → weight of its touches (unlisted: 1)")
    stage_role_weights: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="stage → role → weight, multiplied with role_weights")
    markov_order: int = Field(default=1, ge=1, le=4, description="states are the last N channels")
    max_channels: int = Field(default=30, ge=2, le=500, description="data-driven models: the channels "
                              "with most touches; the rest are grouped as (other)")

    @model_validator(mode="after")
    def _consistent(self) -> AttributionRules:
        names = [s.name for s in self.stages]
        if not self.stages or len(set(names)) != len(names):
            raise ValueError("stages must be a non-empty list of distinct names")
        limits = [s.days_before for s in self.stages[:-1]]
        if any(d is None for d in limits) or limits != sorted(limits):  # type: ignore[type-var]
            raise ValueError("stages go from the outcome outwards: each days_before larger than "
                             "the one before, and only the last stage without one")
        for name, shares in (("u_shaped", self.u_shaped), ("w_shaped", self.w_shaped),
                             ("full_path", self.full_path)):
            if any(s < 0 for s in shares) or sum(shares) > 1 + 1e-9:
                raise ValueError(f"{name} shares must be ≥ 0 and sum to at most 1")
        for stage in self.milestone_stages:
            if stage not in names:
                raise ValueError(f"milestone stage {stage!r} is not one of the stages {names}")
        for stage in self.stage_role_weights:
            if stage not in names:
                raise ValueError(f"stage_role_weights names stage {stage!r}, not one of {names}")
        weights = [*self.role_weights.values(),
                   *(w for roles in self.stage_role_weights.values() for w in roles.values())]
        if any(w < 0 for w in weights):
            raise ValueError("role weights must be ≥ 0")
        return self

    def stage_of(self, days_before: float) -> str:
        """The stage of a touch `days_before` days before its outcome."""
        for stage in self.stages:
            if stage.days_before is None or days_before <= stage.days_before:
                return stage.name
        return self.stages[-1].name
