"""intake: the incident enters the loop; its alerts are checked against the alert-quality policy."""

from __future__ import annotations

from langgraph.runtime import Runtime

from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import EventKind, TimelineEvent


def intake(state: LoopState, runtime: Runtime[LoopContext]) -> LoopState:
    ctx = context_of(runtime)
    incident = state["incident"]
    first = min(incident.anomalies, key=lambda a: a.starts_at, default=None)
    events = []
    if first is not None:
        # The earliest moment any signal showed the problem: the start of detection time.
        events.append(
            TimelineEvent(
                at=first.starts_at,
                kind=EventKind.FIRST_SIGNAL,
                message=f"{first.name} condition began on {first.service}",
            )
        )
    for anomaly in incident.anomalies:
        events.append(
            event(
                ctx,
                EventKind.ALERT,
                f"{anomaly.name} firing on {anomaly.service or '?'} since "
                f"{anomaly.starts_at:%H:%M}",
                fingerprint=anomaly.fingerprint,
                source=anomaly.source,
            )
        )
        # Alert quality: an alert that names neither a runbook nor an action is not actionable.
        if not (anomaly.annotations.get("runbook") or anomaly.annotations.get("action")):
            events.append(event(ctx, EventKind.ALERT_QUALITY,
                                f"{anomaly.name} names no runbook or action"))
    events.append(
        event(
            ctx,
            EventKind.OPENED,
            f"{incident.id} opened for {', '.join(incident.services)}",
            group_key=incident.group_key,
        )
    )
    ctx.store.audit(
        incident.id,
        "opsloop",
        "opened",
        {"group_key": incident.group_key, "alerts": len(incident.anomalies)},
    )
    timeline = [*incident.timeline, *events]
    return {"incident": incident.model_copy(update={"timeline": timeline})}
