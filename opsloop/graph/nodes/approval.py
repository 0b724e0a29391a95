"""approval: actions outside the automatic boundary wait for a human on interrupt()."""

from __future__ import annotations

from datetime import UTC, datetime

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.nodes.guardrails import decide_action
from opsloop.graph.state import LoopState
from opsloop.models import (
    ActionCase,
    Approval,
    ApprovalRequest,
    DecisionOutcome,
    EventKind,
    Incident,
    Verdict,
)


def approval_request(incident: Incident, case: ActionCase, ctx: LoopContext) -> ApprovalRequest:
    if case.decision is None:  # guardrails decide every case before anyone is asked
        raise ValueError(f"{case.id} has no policy decision to ask a human about")
    cause = incident.root_cause.cause if incident.root_cause else "unknown cause"
    return ApprovalRequest(
        id=case.id,
        incident_id=incident.id,
        action=case.action,
        decision=case.decision,
        severity=incident.severity.value if incident.severity else "SEV1",
        summary=f"{incident.title}: {cause}. Proposed {case.action.describe()}.",
        requested_at=case.requested_at or ctx.clock.now(),
        asked_wall_at=datetime.now(UTC),
    )


def approval(state: LoopState, runtime: Runtime[LoopContext]) -> LoopState:
    ctx = context_of(runtime)
    incident = state["incident"]
    cases = list(incident.actions)
    events = []
    for n, case in enumerate(cases):
        if not case.awaits_human:
            continue
        action = case.action
        request = approval_request(incident, case, ctx)
        # The people who answer hear of it (Slack links to the console's queue). The node
        # runs again on resume: the key makes that a no-op.
        ctx.notifier.notify(
            "#ops", f"{incident.id} {request.severity}: {action.describe()} waits for "
                    f"approval ({request.decision.rule})",
            {"incident": incident.id, "approval": request.id, "severity": request.severity,
             "rule": request.decision.rule},
            key=f"{incident.id}:{request.id}:approval")
        # Execution stops here until a human answers; on resume this returns the answer.
        answer = Approval.model_validate(interrupt(request.model_dump(mode="json")))
        if answer.request_id != action.id:
            # A resume meant for another request must never approve this action.
            raise ValueError(f"answer for {answer.request_id!r} reached the approval of "
                             f"{action.id!r}")
        cases[n] = case = case.model_copy(update={"approval": answer})
        who = f"{answer.verdict.past} by {answer.by}" + (
            f": {answer.reason}" if answer.reason else ""
        )
        if answer.verdict is Verdict.REJECT:
            events.append(event(ctx, EventKind.REJECTED, f"{action.describe()} {who}",
                                action_id=action.id))
            continue
        if answer.verdict is Verdict.MODIFY:
            action = action.model_copy(update={"params": {**action.params, **answer.changes}})
            # A human may narrow or adjust an action, never push it past a deny.
            redecided = decide_action(ctx, incident, action, [], case.proposal)
            cases[n] = case = case.model_copy(update={
                "proposal": case.proposal.model_copy(update={"action": action}),
                "decision": redecided,
                "proposed": case.proposed or case.action,
            })
            if redecided.outcome is DecisionOutcome.DENY:
                events.append(
                    event(
                        ctx,
                        EventKind.REJECTED,
                        f"modified {action.describe()} is denied by {redecided.rule}",
                        action_id=action.id,
                    )
                )
                continue
        events.append(event(ctx, EventKind.APPROVED, f"{action.describe()} {who}",
                            action_id=action.id))
    return {"incident": incident.model_copy(
        update={"actions": cases, "timeline": [*incident.timeline, *events]})}
