"""Rollback criteria: what to check after an action, and the flag kill switch."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from opsloop.models import VerificationCheck
from opsloop.models.catalog import ACTION_TYPES
from opsloop.policy.schema import Policies, RollbackPolicy, Thresholds
from opsloop.policy.schema.rollback import FailureStep
from opsloop.policy.series import window_mean, window_values
from opsloop.tools.protocols import Telemetry


class VerificationCriteria(BaseModel):
    """rollback.yaml's answer for one action type, defaults already filled in."""

    action_type: str
    window_minutes: int
    sample_minutes: int
    thresholds: Thresholds
    on_failure: list[FailureStep]
    rule: str  # e.g. "rollback.yaml:actions.restart"

    def failure_steps(self, reversible: bool | None = None) -> list[FailureStep]:
        """The steps to run when verification fails; `revert` only if it can be undone."""
        can_revert = (
            ACTION_TYPES.get(self.action_type, False) if reversible is None else reversible
        )
        return [s for s in self.on_failure if s != "revert" or can_revert]


def verification_for(action_type: str, policy: RollbackPolicy) -> VerificationCriteria:
    """Window, thresholds and failure steps for an action type (defaults when not listed)."""
    base = policy.defaults
    own = policy.actions.get(action_type)
    if own is None:
        return VerificationCriteria(
            action_type=action_type,
            window_minutes=base.window_minutes,
            sample_minutes=base.sample_minutes,
            thresholds=base.thresholds,
            on_failure=list(base.on_failure),
            rule="rollback.yaml:defaults",
        )
    return VerificationCriteria(
        action_type=action_type,
        window_minutes=own.window_minutes or base.window_minutes,
        sample_minutes=own.sample_minutes or base.sample_minutes,
        thresholds=own.thresholds.merged_over(base.thresholds),
        on_failure=list(own.on_failure if own.on_failure is not None else base.on_failure),
        rule=f"rollback.yaml:actions.{action_type}",
    )


# The graph's verify node reads it under this name.
ResolvedCriteria = VerificationCriteria


def criteria_for(policies: Policies, action_type: str) -> VerificationCriteria:
    """`verification_for` over the whole policy set (the graph's calling convention)."""
    return verification_for(action_type, policies.rollback)


# threshold field -> (metric, relative to baseline?)
_CHECKS: dict[str, tuple[str, bool]] = {
    "error_ratio_max": ("error_ratio", False),
    "latency_p99_ratio_max": ("latency_p99_ms", True),
    "latency_p99_ms_max": ("latency_p99_ms", False),
    "cpu_utilization_max": ("cpu_utilization", False),
    "memory_utilization_max": ("memory_utilization", False),
    "disk_utilization_max": ("disk_utilization", False),
    "saturation_max": ("saturation", False),
    "cost_per_hour_ratio_max": ("cost_per_hour", True),
}


def check_health(
    criteria: VerificationCriteria,
    service: str,
    telemetry: Telemetry,
    baseline: Mapping[str, float] | None = None,
) -> list[VerificationCheck]:
    """Each threshold against the mean of the last `sample_minutes` of the service.

    `baseline` maps metric -> its pre-incident value, needed by the *_ratio_max checks;
    a ratio check without a baseline (or a metric without data) is skipped rather than
    guessed, so it can neither pass nor fail a verification on its own.
    """
    checks: list[VerificationCheck] = []
    for field, limit in criteria.thresholds.model_dump(exclude_none=True).items():
        metric, relative = _CHECKS[field]
        observed = window_mean(telemetry, service, metric, criteria.sample_minutes)
        if observed is None:
            continue
        if relative:
            reference = (baseline or {}).get(metric)
            if not reference:
                continue
            observed = observed / reference
        checks.append(
            VerificationCheck(
                name=field,
                service=service,
                observed=observed,
                threshold=limit,
                ok=observed <= limit,
            )
        )
    return checks


def kill_switch_tripped(flag_service: str, telemetry: Telemetry, policy: RollbackPolicy) -> bool:
    """True when the flagged service's error ratio was above the line every recent minute."""
    kill = policy.kill_switch
    values = window_values(telemetry, flag_service, "error_ratio", kill.for_minutes)
    return len(values) >= kill.for_minutes and all(v > kill.error_ratio_above for v in values)
