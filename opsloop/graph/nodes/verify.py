"""verify: after the policy's window, compare production with before the action: recovered,
partial (kept, escalated) or no effect / worse (reverted where rollback.yaml says so)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from langgraph.runtime import Runtime

from opsloop.crashpoints import crash_point
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.act import idempotency_key
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.people import taken_over
from opsloop.graph.rescan import rescan_checks
from opsloop.graph.state import LoopState
from opsloop.models import (
    ActionCase,
    ActionResult,
    ActionStatus,
    EventKind,
    Incident,
    TimelineEvent,
    Verification,
    VerificationCheck,
)
from opsloop.models.actions import VerificationOutcome
from opsloop.observe import evaluate_rules
from opsloop.policy.rollback import (
    OUTCOMES_RULE,
    ResolvedCriteria,
    criteria_for,
    incident_outcome,
    judge,
    should_revert,
)

# Metrics whose thresholds are ratios to the pre-incident baseline rather than absolute values.
_RELATIVE = {"latency_p99_ratio_max": "latency_p99_ms", "cost_per_hour_ratio_max": "cost_per_hour"}
_BASELINE_MINUTES = 30


def _recent(ctx: LoopContext, service: str, metric: str, minutes: int) -> float | None:
    points = ctx.telemetry.metric(service, metric, minutes).points
    return sum(p.value for p in points) / len(points) if points else None


def _mean_between(
    ctx: LoopContext, service: str, metric: str, since: datetime, until: datetime
) -> float | None:
    """The metric's mean over the points after `since` up to `until`. An action's own
    minute counts as before it: that point was recorded before it changed anything."""
    span = int((ctx.clock.now() - since).total_seconds() // 60) + 1
    points = [
        p.value
        for p in ctx.telemetry.metric(service, metric, span).points
        if since < p.at <= until
    ]
    return sum(points) / len(points) if points else None


def _before(ctx: LoopContext, service: str, metric: str, acted: datetime, minutes: int,
            onset: datetime) -> float | None:
    """What the action found: the `minutes` up to it, or where telemetry is sparser, all
    of the incident up to it (from the first alert's onset)."""
    recent = _mean_between(ctx, service, metric, acted - timedelta(minutes=minutes), acted)
    if recent is not None or onset >= acted:
        return recent
    return _mean_between(ctx, service, metric, onset - timedelta(minutes=1), acted)


def _baseline(ctx: LoopContext, service: str, metric: str, before: datetime) -> float | None:
    """The metric's mean over the half hour before the incident's first alert began."""
    span = int((ctx.clock.now() - before).total_seconds() // 60) + _BASELINE_MINUTES
    points = [
        p.value
        for p in ctx.telemetry.metric(service, metric, span).points
        if before - timedelta(minutes=_BASELINE_MINUTES) <= p.at < before
    ]
    return sum(points) / len(points) if points else None


def threshold_checks(
    ctx: LoopContext, incident: Incident, case: ActionCase, criteria: ResolvedCriteria
) -> list[VerificationCheck]:
    """Each threshold of the action's criteria on its service, now and before it ran, judged
    by rollback.yaml's `outcomes`."""
    service = case.action.service
    acted = case.result.at if case.result is not None else ctx.clock.now()
    onset = min((a.starts_at for a in incident.anomalies), default=incident.opened_at)
    minutes = criteria.sample_minutes
    checks: list[VerificationCheck] = []
    for name, limit in criteria.thresholds.model_dump(exclude_none=True).items():
        metric = _RELATIVE.get(name, name.removesuffix("_max"))
        now = _recent(ctx, service, metric, minutes)
        before = _before(ctx, service, metric, acted, minutes, onset)
        if name in _RELATIVE:
            base = _baseline(ctx, service, metric, onset)
            if now is None or not base:
                continue  # no baseline to compare with: the absolute checks still apply
            now, before = now / base, None if before is None else before / base
        if now is None:
            continue
        check = VerificationCheck(name=name, service=service, observed=round(now, 6),
                                  threshold=float(limit), ok=now <= limit)
        checks.append(judge(check, None if before is None else round(before, 6),
                            ctx.policies.rollback.outcomes))
    return checks


def alert_checks(ctx: LoopContext, incident: Incident) -> list[VerificationCheck]:
    """The alerts that opened the incident must have stopped firing."""
    names = {a.name for a in incident.anomalies}
    rules = [r for r in ctx.policies.alerts.rules if r.name in names]
    firing = {(a.name, a.service) for a in evaluate_rules(rules, ctx.telemetry, ctx.clock.now())}
    return [
        VerificationCheck(
            name=f"alert {a.name} cleared",
            service=a.service or "",
            observed=float((a.name, a.service) in firing),
            threshold=0.0,
            ok=(a.name, a.service) not in firing,
        )
        for a in incident.anomalies
        if a.source == "rules"
    ]


def _moved(c: VerificationCheck) -> str:
    """A check as a person reads it: where it was before the action, where it is, the limit."""
    if c.before is None:
        return f"{c.name} on {c.service} ({c.observed:.3g} > {c.threshold:.3g})"
    return (f"{c.name} on {c.service} {c.before:.3g} -> {c.observed:.3g} "
            f"(limit {c.threshold:.3g})")


def _summary(outcome: VerificationOutcome, window: int, checks: list[VerificationCheck],
             cases: list[ActionCase]) -> str:
    """The verification line of the timeline: what changed against before, and what next."""
    head = f"after {window} min: "
    failed = "; ".join(_moved(c) for c in checks if not c.ok)
    if outcome is VerificationOutcome.RECOVERED:
        return head + "all checks passed"
    if outcome is VerificationOutcome.PARTIAL:
        better = "; ".join(f"{_moved(c)}, {c.improvement:.0%} of the way"
                           for c in checks if c.improvement is not None and c.improvement > 0)
        kept = ", ".join(case.action.describe() for case in cases)
        return (head + f"partial recovery, better but not healthy: {better}. Still failing: "
                f"{failed}. Mitigation kept: {kept} stays in place and the incident is "
                f"escalated to a human ({OUTCOMES_RULE})")
    said = "made things worse" if outcome is VerificationOutcome.WORSE else "no effect"
    return head + f"{said}: failed {failed}"


def revert_failed(
    ctx: LoopContext, incident: Incident, checks: dict[str, list[VerificationCheck]]
) -> tuple[dict[str, ActionResult], list[TimelineEvent]]:
    """Undo what ran, the last action first, where `should_revert` says so; the reverts by
    action id, and a timeline entry for every action reverted or kept."""
    reverted: dict[str, ActionResult] = {}
    events: list[TimelineEvent] = []
    driver = taken_over(ctx.store, incident.id)
    for case in reversed(incident.actions):
        if case.result is None or not case.succeeded:
            continue
        criteria = criteria_for(ctx.policies, case.action.type)
        revert, why = should_revert(case, checks.get(case.id, []), criteria,
                                    ctx.policies.rollback.outcomes, incident.root_cause)
        if revert and driver is not None:
            # A person is driving: undoing a change under them is theirs to decide.
            revert, why = False, (f"{why}; not reverted: {driver.taken_over_by} took the "
                                  "incident over")
        if not revert:
            events.append(event(ctx, EventKind.ROLLBACK, why, action_id=case.id,
                                reverted=False))
            continue
        key = "revert:" + idempotency_key(incident.id, case.action)
        result = reverted[case.id] = ctx.actuator.revert(case.result, key)
        crash_point("verify.reverted")
        ctx.store.audit(incident.id, "opsloop", "rollback", result.model_dump(mode="json"))
        events.append(event(ctx, EventKind.ROLLBACK,
                            f"reverted {case.action.describe()}: {result.status.value} ({why})",
                            action_id=case.id, reverted=True))
    return reverted, events


def verify(state: LoopState, runtime: Runtime[LoopContext]) -> LoopState:
    ctx = context_of(runtime)
    incident = state["incident"]
    ran = [case for case in incident.actions if case.succeeded]
    criteria = {case.id: criteria_for(ctx.policies, case.action.type) for case in ran}
    window = max(c.window_minutes for c in criteria.values())
    # Wait until the window after the last action has passed, not `window` more minutes: a
    # verify step re-run after a crash must not wait (and let production drift) twice.
    acted = max(case.result.at for case in ran if case.result is not None)
    remaining = (acted + timedelta(minutes=window) - ctx.clock.now()).total_seconds() / 60
    if remaining > 0:
        ctx.clock.wait(math.ceil(remaining))  # the simulator lets production run on
    crash_point("verify.waited")
    alerts = alert_checks(ctx, incident)
    own = {case.id: [*threshold_checks(ctx, incident, case, criteria[case.id]),
                     *rescan_checks(ctx, case)] for case in ran}
    outcome = incident_outcome(alerts, list(own.values()), ctx.policies.rollback.outcomes)
    checks = [*alerts, *(c for case in ran for c in own[case.id])]
    passed = outcome is VerificationOutcome.RECOVERED
    events = [event(
        ctx, EventKind.VERIFIED if passed else EventKind.VERIFICATION_FAILED,
        _summary(outcome, window, checks, ran), outcome=outcome.value, rule=OUTCOMES_RULE,
    )]
    reverts: dict[str, ActionResult] = {}
    if outcome in (VerificationOutcome.NO_EFFECT, VerificationOutcome.WORSE):
        reverts, rollback_events = revert_failed(ctx, incident, own)
        events += rollback_events
    verification = Verification(
        passed=passed,
        at=ctx.clock.now(),
        window_minutes=window,
        checks=alerts,
        rolled_back=any(r.status is ActionStatus.SUCCEEDED for r in reverts.values()),
        outcome=outcome,
        rule=OUTCOMES_RULE,
    )
    cases = [
        case.model_copy(update={"checks": own[case.id], "revert": reverts.get(case.id)})
        if case.id in own else case
        for case in incident.actions
    ]
    # The audit entry keeps its shape: every check and every revert in one record.
    ctx.store.audit(incident.id, "opsloop", "verification", {
        **verification.model_dump(mode="json"),
        "checks": [c.model_dump(mode="json") for c in checks],
        "rollback_results": [r.model_dump(mode="json") for r in reverts.values()],
    })
    return {"incident": incident.model_copy(update={
        "actions": cases, "verification": verification,
        "timeline": [*incident.timeline, *events]})}
