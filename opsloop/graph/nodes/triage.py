"""triage: severity from policies/severity.yaml over measured impact, capped when nothing
corroborates it (a possible telemetry failure). Never the model."""

from __future__ import annotations

from langgraph.runtime import Runtime

from opsloop.agents.warroom import open_war_room
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import EventKind, Incident, Severity, TimelineEvent
from opsloop.policy.impact import Corroboration, corroborate, measure_impact
from opsloop.policy.severity import cap_uncorroborated, classify, escalation_for


def _telemetry_doubt(backing: Corroboration, said: str) -> str:
    """The triage entry's words for an impact nothing corroborates."""
    return (f"; possible telemetry failure: only {backing.spike} departs from its baseline "
            f"(its other metrics, callers and logs look as before), so not {said}")


def triage(state: LoopState, runtime: Runtime[LoopContext]) -> LoopState:
    ctx = context_of(runtime)
    incident = state["incident"]
    impact = measure_impact(incident.services, ctx.telemetry, ctx.policies)
    measured, measured_rule = classify(impact, ctx.policies.severity)
    backing = corroborate(incident.services, ctx.telemetry, ctx.policies)
    doubted = backing is not None and backing.uncorroborated
    severity, rule = cap_uncorroborated(measured, measured_rule, doubted, ctx.policies.severity)
    capped = severity is not measured
    impact = impact.model_copy(update={"uncorroborated": doubted})
    incident = incident.model_copy(
        update={"severity": severity, "severity_rule": rule, "impact": impact}
    )
    events = [
        event(
            ctx,
            EventKind.TRIAGED,
            f"{severity.value} by {rule}: error ratio {impact.error_ratio:.2%}, "
            f"p99 {impact.latency_p99_ms:.0f} ms, tier {impact.tier}, "
            f"blast radius {impact.blast_radius}"
            + (_telemetry_doubt(backing, measured.value) if capped and backing else ""),
            severity=severity.value,
            rule=rule,
            **({"possible_telemetry_failure": True, "uncapped": measured.value}
               if capped else {}),
        )
    ]
    ctx.store.audit(
        incident.id,
        "opsloop",
        "severity",
        {"severity": severity.value, "rule": rule, "impact": impact.model_dump(),
         "corroboration": None if backing is None else backing.model_dump()},
    )
    incident.timeline = [*incident.timeline, *events, *escalate(ctx, incident, severity)]
    return {"incident": incident}


def escalate(ctx: LoopContext, incident: Incident, severity: Severity) -> list[TimelineEvent]:
    """What severity.yaml's escalation says for `severity`: page, war room, channels.
    Notifications are recorded on the incident; the events are returned."""
    escalation = escalation_for(severity, ctx.policies.severity)
    events: list[TimelineEvent] = []
    notified: list[str] = []
    message = f"{incident.id} {severity.value}: {incident.title}"
    if escalation.page:
        notified.append(ctx.notifier.notify("page", message, {"incident": incident.id},
                                            key=f"{incident.id}:triage:page"))
        events.append(event(ctx, EventKind.ESCALATED, f"paged on-call ({notified[-1]})"))
    if escalation.war_room:
        path = open_war_room(incident, ctx.settings.warrooms_dir, ["on-call"])
        events.append(event(ctx, EventKind.WAR_ROOM, f"war room opened at {path}"))
    for channel in escalation.channels:
        notified.append(ctx.notifier.notify(channel, message, {"incident": incident.id},
                                            key=f"{incident.id}:triage:{channel}"))
    incident.notifications = [*incident.notifications, *notified]
    return events
