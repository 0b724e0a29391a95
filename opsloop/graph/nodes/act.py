"""act: run cleared actions, each under an idempotency key, so a replay never repeats one."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from opsloop.agents.warroom import log_to_war_room
from opsloop.crashpoints import crash_point
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import ActionStatus, RemediationAction, Severity
from opsloop.policy.severity import escalation_for


def idempotency_key(incident_id: str, action: RemediationAction) -> str:
    """Same incident, action and parameters -> same key; a modified action gets a new one."""
    digest = hashlib.sha256(
        json.dumps([action.type, action.service, action.params], sort_keys=True).encode()
    ).hexdigest()[:12]
    return f"{incident_id}:{action.id}:{digest}"


def act(state: LoopState, runtime: Runtime[LoopContext]) -> Command[Literal["verify", "learn"]]:
    ctx = context_of(runtime)
    incident = state["incident"]
    cleared = set(state.get("cleared", []))
    results = list(incident.results)
    notifications = list(incident.notifications)
    events = []
    for proposal in incident.proposals:
        action = proposal.action
        if action.id not in cleared:
            continue
        decision = next(d for d in incident.decisions if d.action_id == action.id)
        result = ctx.actuator.execute(action, idempotency_key(incident.id, action))
        crash_point("act.executed")
        results.append(result)
        ctx.store.audit(incident.id, "opsloop", "action", result.model_dump(mode="json"))
        events.append(
            event(
                ctx,
                "action",
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
    incident = incident.model_copy(
        update={"results": results, "notifications": notifications}, deep=True
    )
    ran = any(r.status is ActionStatus.SUCCEEDED for r in results)
    return Command(
        update={"incident": incident, "events": events}, goto="verify" if ran else "learn"
    )
