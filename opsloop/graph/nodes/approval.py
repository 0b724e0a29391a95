"""approval: actions outside the automatic boundary wait for a human on interrupt()."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.nodes.guardrails import decide_action
from opsloop.graph.state import LoopState
from opsloop.models import (
    Approval,
    ApprovalRequest,
    DecisionOutcome,
    Incident,
    RemediationAction,
    Verdict,
)


def approval_request(
    incident: Incident, action: RemediationAction, ctx: LoopContext
) -> ApprovalRequest:
    decision = next(d for d in incident.decisions if d.action_id == action.id)
    cause = incident.root_cause.cause if incident.root_cause else "unknown cause"
    return ApprovalRequest(
        id=action.id,
        incident_id=incident.id,
        action=action,
        decision=decision,
        severity=incident.severity.value if incident.severity else "SEV1",
        summary=f"{incident.title}: {cause}. Proposed {action.describe()}.",
        requested_at=ctx.clock.now(),
    )


def approval(state: LoopState, runtime: Runtime[LoopContext]) -> Command[Literal["act", "learn"]]:
    ctx = context_of(runtime)
    incident = state["incident"]
    cleared = list(state.get("cleared", []))
    proposals = list(incident.proposals)
    decisions = list(incident.decisions)
    approvals: list[Approval] = []
    events = []
    for decision in incident.decisions:
        if decision.outcome is not DecisionOutcome.NEEDS_APPROVAL:
            continue
        index = next(i for i, p in enumerate(proposals) if p.action.id == decision.action_id)
        action = proposals[index].action
        # Execution stops here until a human answers; on resume this returns the answer.
        answer = Approval.model_validate(
            interrupt(approval_request(incident, action, ctx).model_dump(mode="json"))
        )
        if answer.request_id != action.id:
            # A resume meant for another request must never approve this action.
            raise ValueError(f"answer for {answer.request_id!r} reached the approval of "
                             f"{action.id!r}")
        approvals.append(answer)
        who = f"{answer.verdict.past} by {answer.by}" + (
            f": {answer.reason}" if answer.reason else ""
        )
        if answer.verdict is Verdict.REJECT:
            events.append(event(ctx, "rejected", f"{action.describe()} {who}", action_id=action.id))
            continue
        if answer.verdict is Verdict.MODIFY:
            action = action.model_copy(update={"params": {**action.params, **answer.changes}})
            proposals[index] = proposals[index].model_copy(update={"action": action})
            # A human may narrow or adjust an action, never push it past a deny.
            redecided = decide_action(ctx, incident, action, [])
            decisions = [redecided if d.action_id == action.id else d for d in decisions]
            if redecided.outcome is DecisionOutcome.DENY:
                events.append(
                    event(
                        ctx,
                        "rejected",
                        f"modified {action.describe()} is denied by {redecided.rule}",
                        action_id=action.id,
                    )
                )
                continue
        events.append(event(ctx, "approved", f"{action.describe()} {who}", action_id=action.id))
        cleared.append(action.id)
    incident = incident.model_copy(
        update={
            "approvals": [*incident.approvals, *approvals],
            "proposals": proposals,
            "decisions": decisions,
        },
        deep=True,
    )
    return Command(
        update={"incident": incident, "events": events, "cleared": cleared},
        goto="act" if cleared else "learn",
    )
