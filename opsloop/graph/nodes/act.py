"""act: run cleared actions, each under an idempotency key, so a replay never repeats one."""

from __future__ import annotations

import hashlib
import json

from langgraph.runtime import Runtime

from opsloop.agents.warroom import log_to_war_room
from opsloop.crashpoints import crash_point
from opsloop.graph.context import LoopContext
from opsloop.graph.gameday import gameday_actuator
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import EventKind, RemediationAction, Severity
from opsloop.policy.resilience import RUN_EXPERIMENT
from opsloop.policy.severity import escalation_for


def idempotency_key(incident_id: str, action: RemediationAction) -> str:
    """Same incident, action and parameters -> same key; a modified action gets a new one."""
    digest = hashlib.sha256(
        json.dumps([action.type, action.service, action.params], sort_keys=True).encode()
    ).hexdigest()[:12]
    return f"{incident_id}:{action.id}:{digest}"


def act(state: LoopState, runtime: Runtime[LoopContext]) -> LoopState:
    ctx = context_of(runtime)
    incident = state["incident"]
    cases = list(incident.actions)
    notifications = list(incident.notifications)
    events = []
    for n, case in enumerate(cases):
        decision = case.decision
        if not case.cleared or decision is None:
            continue
        action = case.action
        actuator = gameday_actuator(ctx) if action.type == RUN_EXPERIMENT else ctx.actuator
        result = actuator.execute(action, idempotency_key(incident.id, action))
        crash_point("act.executed")
        cases[n] = case.model_copy(update={"result": result})
        ctx.store.audit(incident.id, "opsloop", "action", result.model_dump(mode="json"))
        events.append(
            event(
                ctx,
                EventKind.ACTION,
                f"{result.action}: {result.status.value}"
                + (f" — {result.detail}" if result.detail else ""),
                action_id=action.id,
                key=result.idempotency_key,
                replayed=result.replayed,
            )
        )
        if decision.notify:
            severity = incident.severity or Severity.SEV1
            for channel in escalation_for(severity, ctx.policies.severity).channels or ["#ops"]:
                notifications.append(ctx.notifier.notify(
                    channel,
                    f"{incident.id} {severity.value}: ran {result.action} "
                    f"({result.status.value}) under {decision.rule}",
                    {"incident": incident.id, "rule": decision.rule},
                    key=f"{result.idempotency_key}:notify:{channel}",
                ))
        log_to_war_room(ctx.settings.warrooms_dir, incident.id, events[-1])
    return {"incident": incident.model_copy(update={
        "actions": cases, "notifications": notifications,
        "timeline": [*incident.timeline, *events]})}
