"""verify: after the policy's window, check the fix held; if not, follow the rollback criteria."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from langgraph.runtime import Runtime

from opsloop.crashpoints import crash_point
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.act import idempotency_key
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import (
    ActionResult,
    ActionStatus,
    EventKind,
    Incident,
    Verification,
    VerificationCheck,
)
from opsloop.observe import evaluate_rules
from opsloop.policy.rollback import ResolvedCriteria, criteria_for

# Metrics whose thresholds are ratios to the pre-incident baseline rather than absolute values.
_RELATIVE = {"latency_p99_ratio_max": "latency_p99_ms", "cost_per_hour_ratio_max": "cost_per_hour"}
_BASELINE_MINUTES = 30


def _recent(ctx: LoopContext, service: str, metric: str, minutes: int) -> float | None:
    points = ctx.telemetry.metric(service, metric, minutes).points
    return sum(p.value for p in points) / len(points) if points else None


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
    ctx: LoopContext, incident: Incident, service: str, criteria: ResolvedCriteria
) -> list[VerificationCheck]:
    onset = min((a.starts_at for a in incident.anomalies), default=incident.opened_at)
    checks: list[VerificationCheck] = []
    for name, limit in criteria.thresholds.model_dump(exclude_none=True).items():
        if name in _RELATIVE:
            metric = _RELATIVE[name]
            now, base = (
                _recent(ctx, service, metric, criteria.sample_minutes),
                _baseline(ctx, service, metric, onset),
            )
            if now is None or not base:
                continue  # no baseline to compare with: the absolute checks still apply
            observed = now / base
        else:
            metric = name.removesuffix("_max")
            value = _recent(ctx, service, metric, criteria.sample_minutes)
            if value is None:
                continue
            observed = value
        checks.append(
            VerificationCheck(
                name=name,
                service=service,
                observed=round(observed, 6),
                threshold=float(limit),
                ok=observed <= limit,
            )
        )
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


def revert_all(ctx: LoopContext, incident: Incident) -> dict[str, ActionResult]:
    """Revert what ran, the last action first, where the rollback criteria say so; the
    revert's result by action id."""
    reverted = {}
    for case in reversed(incident.actions):
        if case.result is None or not case.succeeded:
            continue
        if "revert" not in criteria_for(ctx.policies, case.action.type).on_failure:
            continue
        key = "revert:" + idempotency_key(incident.id, case.action)
        reverted[case.id] = ctx.actuator.revert(case.result, key)
        crash_point("verify.reverted")
    return reverted


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
    own = {case.id: threshold_checks(ctx, incident, case.action.service, criteria[case.id])
           for case in ran}
    checks = [*alerts, *(c for case in ran for c in own[case.id])]
    passed = all(c.ok for c in checks)
    events = [
        event(
            ctx,
            EventKind.VERIFIED if passed else EventKind.VERIFICATION_FAILED,
            f"after {window} min: "
            + (
                "all checks passed"
                if passed
                else "failed "
                + ", ".join(
                    f"{c.name} on {c.service} ({c.observed:.3g} > {c.threshold:.3g})"
                    for c in checks
                    if not c.ok
                )
            ),
        )
    ]
    reverts: dict[str, ActionResult] = {}
    if not passed:
        reverts = revert_all(ctx, incident)
        for r in reverts.values():
            ctx.store.audit(incident.id, "opsloop", "rollback", r.model_dump(mode="json"))
            events.append(event(ctx, EventKind.ROLLBACK, f"reverted {r.action}: {r.status.value}"))
    verification = Verification(
        passed=passed,
        at=ctx.clock.now(),
        window_minutes=window,
        checks=alerts,
        rolled_back=any(r.status is ActionStatus.SUCCEEDED for r in reverts.values()),
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
