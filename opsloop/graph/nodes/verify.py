"""verify: after the policy's window, check the fix held; if not, follow the rollback criteria."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from langgraph.runtime import Runtime

from opsloop.crashpoints import crash_point
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.act import idempotency_key
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import (
    ActionResult,
    ActionStatus,
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


def revert_all(ctx: LoopContext, incident: Incident) -> list[ActionResult]:
    reverted = []
    for result in reversed(incident.results):
        if result.status is not ActionStatus.SUCCEEDED:
            continue
        action = next(p.action for p in incident.proposals if p.action.id == result.action_id)
        if "revert" not in criteria_for(ctx.policies, action.type).on_failure:
            continue
        key = "revert:" + idempotency_key(incident.id, action)
        reverted.append(ctx.actuator.revert(result, key))
        crash_point("verify.reverted")
    return reverted


def verify(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    ctx = context_of(runtime)
    incident = state["incident"]
    ran = [
        p.action
        for p in incident.proposals
        if any(
            r.action_id == p.action.id and r.status is ActionStatus.SUCCEEDED
            for r in incident.results
        )
    ]
    criteria = {a.id: criteria_for(ctx.policies, a.type) for a in ran}
    window = max(c.window_minutes for c in criteria.values())
    # Wait until the window after the last action has passed, not `window` more minutes: a
    # verify step re-run after a crash must not wait (and let production drift) twice.
    acted = max(r.at for r in incident.results if r.status is ActionStatus.SUCCEEDED)
    remaining = (acted + timedelta(minutes=window) - ctx.clock.now()).total_seconds() / 60
    if remaining > 0:
        ctx.clock.wait(math.ceil(remaining))  # the simulator lets production run on
    crash_point("verify.waited")
    checks = alert_checks(ctx, incident)
    for action in ran:
        checks += threshold_checks(ctx, incident, action.service, criteria[action.id])
    passed = all(c.ok for c in checks)
    events = [
        event(
            ctx,
            "verified" if passed else "verification_failed",
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
    rollbacks: list[ActionResult] = []
    if not passed:
        rollbacks = revert_all(ctx, incident)
        for r in rollbacks:
            ctx.store.audit(incident.id, "opsloop", "rollback", r.model_dump(mode="json"))
            events.append(event(ctx, "rollback", f"reverted {r.action}: {r.status.value}"))
    verification = Verification(
        passed=passed,
        at=ctx.clock.now(),
        window_minutes=window,
        checks=checks,
        rolled_back=any(r.status is ActionStatus.SUCCEEDED for r in rollbacks),
        rollback_results=rollbacks,
    )
    ctx.store.audit(incident.id, "opsloop", "verification", verification.model_dump(mode="json"))
    incident = incident.model_copy(update={"verification": verification}, deep=True)
    return {"incident": incident, "events": events}
