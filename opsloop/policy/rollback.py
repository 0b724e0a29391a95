"""Rollback criteria: what to check after an action, how to judge it against before, what
to undo, and the flag kill switch."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from opsloop.models import ActionCase, Hypothesis, VerificationCheck
from opsloop.models.actions import VerificationOutcome
from opsloop.models.catalog import ACTION_TYPES
from opsloop.policy.schema import Policies, RollbackPolicy, Thresholds
from opsloop.policy.schema.rollback import FailureStep, Outcomes
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


OUTCOMES_RULE = "rollback.yaml:outcomes"


def judge(check: VerificationCheck, before: float | None, rules: Outcomes) -> VerificationCheck:
    """The check with what it was before the action, how much of the gap to its threshold
    the action closed, and the outcome that makes (every threshold is an upper bound)."""
    improvement: float | None = None  # only a check that was failing has a gap to close
    if before is not None and before > check.threshold:
        improvement = (before - check.observed) / (before - check.threshold)
    if check.ok:
        outcome = VerificationOutcome.RECOVERED
    elif before is None:
        outcome = VerificationOutcome.NO_EFFECT  # nothing to compare with: not shown better
    elif improvement is None:
        outcome = VerificationOutcome.WORSE  # healthy before the action, failing after it
    elif improvement >= rules.partial_min_improvement:
        outcome = VerificationOutcome.PARTIAL
    elif improvement < -rules.worse_margin:
        outcome = VerificationOutcome.WORSE
    else:
        outcome = VerificationOutcome.NO_EFFECT
    return check.model_copy(update={
        "before": before,
        "improvement": None if improvement is None else round(improvement, 6),
        "outcome": outcome,
    })


_WORST_FIRST = (VerificationOutcome.WORSE, VerificationOutcome.NO_EFFECT,
                VerificationOutcome.PARTIAL, VerificationOutcome.RECOVERED)


def action_outcome(checks: list[VerificationCheck]) -> VerificationOutcome | None:
    """One action's outcome: its worst judged check; None when nothing could be checked."""
    judged = {c.outcome for c in checks if c.outcome is not None}
    return next((o for o in _WORST_FIRST if o in judged), None)


def improved(checks: list[VerificationCheck], rules: Outcomes) -> bool:
    """Some check that was failing before closed at least the policy's share of its gap."""
    return any(c.improvement is not None and c.improvement >= rules.partial_min_improvement
               for c in checks)


def incident_outcome(
    alerts: list[VerificationCheck], actions: list[list[VerificationCheck]], rules: Outcomes
) -> VerificationOutcome:
    """The incident's outcome from the alerts that opened it and each action's checks.

    Recovered only when every check passes. The alerts only say healthy or not (they were
    all firing before); whether things got better is judged on the actions' own measures,
    so an alert still firing after an action halved the errors is partial, not no effect.
    """
    if all(c.ok for c in alerts) and all(c.ok for checks in actions for c in checks):
        return VerificationOutcome.RECOVERED
    outcomes = {action_outcome(checks) for checks in actions}
    if VerificationOutcome.WORSE in outcomes:
        return VerificationOutcome.WORSE
    if VerificationOutcome.NO_EFFECT in outcomes:
        return VerificationOutcome.NO_EFFECT
    if improved([c for checks in actions for c in checks], rules):
        return VerificationOutcome.PARTIAL
    return VerificationOutcome.NO_EFFECT


def redeploys_blamed_version(case: ActionCase, root_cause: Hypothesis | None) -> str | None:
    """Why undoing this action would put back a release the diagnosis blamed; None if not.

    A rollback's undo re-deploys the version it removed, the one the diagnosis chose it
    for; any other undo that re-deploys a version of the root-cause service would too.
    """
    undo = case.result.undo if case.result is not None else {}
    version = undo.get("version")
    service = str(undo.get("service", case.action.service))
    if case.action.type == "rollback_deploy":
        what = f"{service} {version}" if version else "the release it rolled back"
        return f"reverting it would re-deploy {what}, the release the rollback removed"
    if version and root_cause is not None and service == root_cause.service:
        return (f"reverting it would re-deploy {service} {version}, on the service the "
                f"diagnosis blamed ({root_cause.category})")
    return None


def should_revert(
    case: ActionCase, checks: list[VerificationCheck], criteria: VerificationCriteria,
    rules: Outcomes, root_cause: Hypothesis | None,
) -> tuple[bool, str]:
    """Whether a failed verification undoes this action, and why, in words for the timeline.

    Only when the incident did not recover or improve. Never when the undo would re-deploy
    a blamed version; kept when its own checks improved; reverted when it made them worse
    (if it can be undone at all); otherwise as rollback.yaml's on_failure says.
    """
    blamed = redeploys_blamed_version(case, root_cause)
    if blamed is not None:
        return False, f"kept {case.action.describe()}: {blamed}"
    outcome = action_outcome(checks)
    if outcome is VerificationOutcome.WORSE:
        if ACTION_TYPES.get(case.action.type, False):
            return True, "it made its checks worse"
        return False, f"kept {case.action.describe()}: it made its checks worse, cannot be undone"
    if improved(checks, rules):
        return False, f"kept {case.action.describe()}: its own checks improved"
    if "revert" in criteria.failure_steps():
        return True, f"no effect, and {criteria.rule} on_failure says revert"
    return False, f"kept {case.action.describe()}: {criteria.rule} on_failure does not revert"


def kill_switch_tripped(flag_service: str, telemetry: Telemetry, policy: RollbackPolicy) -> bool:
    """True when the flagged service's error ratio was above the line every recent minute."""
    kill = policy.kill_switch
    values = window_values(telemetry, flag_service, "error_ratio", kill.for_minutes)
    return len(values) >= kill.for_minutes and all(v > kill.error_ratio_above for v in values)
