"""triage: severity from policies/severity.yaml over measured impact. Never the model."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import Severity
from opsloop.policy.impact import measure_impact
from opsloop.policy.severity import classify


def triage(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    ctx = context_of(runtime)
    incident = state["incident"]
    impact = measure_impact(incident.services, ctx.telemetry, ctx.policies)
    severity, rule = classify(impact, ctx.policies.severity)
    incident = incident.model_copy(
        update={"severity": severity, "severity_rule": rule, "impact": impact}, deep=True
    )
    events = [
        event(
            ctx,
            "triaged",
            f"{severity.value} by {rule}: error ratio {impact.error_ratio:.2%}, "
            f"p99 {impact.latency_p99_ms:.0f} ms, tier {impact.tier}, "
            f"blast radius {impact.blast_radius}",
            severity=severity.value,
            rule=rule,
        )
    ]
    ctx.store.audit(
        incident.id,
        "opsloop",
        "severity",
        {"severity": severity.value, "rule": rule, "impact": impact.model_dump()},
    )
    if severity is Severity.SEV1:
        # SEV1 is a human's incident from the first minute: page and open the war room.
        where = ctx.notifier.notify(
            "page",
            f"{incident.id} {severity.value}: {incident.title}",
            {"incident": incident.id, "services": incident.services},
        )
        incident.notifications.append(where)
        events.append(event(ctx, "escalated", f"paged on-call and opened war room ({where})"))
    return {"incident": incident, "events": events}
