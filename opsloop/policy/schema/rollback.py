"""rollback.yaml: how long to wait after an action, what health must look like, what then."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from opsloop.policy.schema.base import PolicyFile, StrictModel


class Thresholds(StrictModel):
    """Upper bounds checked on the target service after the verification window."""

    error_ratio_max: float | None = Field(default=None, ge=0, le=1)
    # Relative to the pre-incident baseline p99 (1.5 = at most 50% slower than before).
    latency_p99_ratio_max: float | None = Field(default=None, gt=0)
    latency_p99_ms_max: float | None = Field(default=None, gt=0)
    cpu_utilization_max: float | None = Field(default=None, gt=0)
    memory_utilization_max: float | None = Field(default=None, gt=0)
    disk_utilization_max: float | None = Field(default=None, gt=0)
    saturation_max: float | None = Field(default=None, gt=0)
    # Relative to cost before the incident (1.2 = at most 20% above the baseline spend).
    cost_per_hour_ratio_max: float | None = Field(default=None, gt=0)

    def merged_over(self, base: Thresholds) -> Thresholds:
        """These thresholds, with anything unset taken from `base`."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


FailureStep = Literal["revert", "escalate"]


class Criteria(StrictModel):
    window_minutes: int | None = Field(default=None, gt=0)
    sample_minutes: int | None = Field(default=None, gt=0)
    thresholds: Thresholds = Thresholds()
    on_failure: list[FailureStep] | None = None


class DefaultCriteria(StrictModel):
    window_minutes: int = Field(gt=0)  # wait this long after acting
    sample_minutes: int = Field(gt=0)  # then average this many most recent minutes
    thresholds: Thresholds
    on_failure: list[FailureStep] = Field(min_length=1)


class KillSwitch(StrictModel):
    """Progressive flag rollouts: trip -> disable the flag without waiting for a human."""

    error_ratio_above: float = Field(gt=0, le=1)
    for_minutes: int = Field(gt=0)
    action: str = "disable_flag"
    automatic: bool = True


class Outcomes(StrictModel):
    """How verification judges a failing check: after against before, not only the threshold.

    The gap is how far a check was from its threshold before the action ran.
    """

    # Partial: the action closed at least this share of the gap (0.5 = halfway to healthy).
    partial_min_improvement: float = Field(default=0.5, gt=0, le=1)
    # Worse: the check moved away from its threshold by more than this share of the gap
    # (a check that was healthy before and fails now is worse whatever the margin).
    worse_margin: float = Field(default=0.2, ge=0)


class RollbackPolicy(PolicyFile):
    defaults: DefaultCriteria
    actions: dict[str, Criteria] = Field(default_factory=dict)
    kill_switch: KillSwitch
    outcomes: Outcomes = Outcomes()
