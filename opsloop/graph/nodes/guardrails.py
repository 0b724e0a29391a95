"""guardrails: policy decides every proposed action — auto, needs_approval or deny."""

from __future__ import annotations

from datetime import timedelta

from langgraph.runtime import Runtime

from opsloop.graph.context import LoopContext
from opsloop.graph.gameday import start_facts
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.people import taken_over
from opsloop.graph.state import LoopState
from opsloop.models import (
    ActionCase,
    DecisionOutcome,
    EventKind,
    Incident,
    PolicyDecision,
    RemediationAction,
    RemediationProposal,
    Severity,
)
from opsloop.policy.guardrails import DiagnosisFacts, GuardrailContext, decide
from opsloop.policy.health import budget_state
from opsloop.policy.resilience import RUN_EXPERIMENT
from opsloop.policy.rollback import kill_switch_tripped


def auto_actions_last_hour(ctx: LoopContext, incident: Incident, service: str) -> int:
    """Automatic actions that ran against `service` in this production in the last hour of
    its clock, in other incidents (this incident's own are counted by the caller)."""
    now = ctx.clock.now()
    return ctx.store.auto_actions_since(incident.environment, service,
                                        now - timedelta(hours=1), now, excluding=incident.id)


def diagnosis_facts(incident: Incident, proposal: RemediationProposal | None
                    ) -> DiagnosisFacts | None:
    """What the record says about the diagnosis behind `proposal`: its confidence, the
    closest rival cause of another category, whether its service alerted, triage's doubt."""
    if proposal is None:
        return None
    hypotheses = [h for d in incident.diagnoses for h in d.hypotheses]
    chosen = next((h for h in hypotheses if h.id == proposal.hypothesis_id), None)
    confidence = chosen.confidence if chosen is not None else proposal.confidence
    category = chosen.category if chosen is not None else None
    rivals = sorted((h for h in hypotheses if category is not None and h.category != category
                     and h.confidence > 0), key=lambda h: -h.confidence)
    rival = rivals[0] if rivals else None
    alerted = {a.service for a in incident.anomalies if a.service}
    blamed = chosen.service if chosen is not None else None
    return DiagnosisFacts(
        confidence=confidence,
        rival=(f"{rival.category} on {rival.service} ({rival.confidence:.0%})"
               if rival is not None else None),
        rival_confidence=rival.confidence if rival is not None else None,
        blamed_service=blamed,
        # An agent's change record has no alerts: nothing to be silent against.
        blamed_alerted=not alerted or blamed is None or blamed in alerted,
        uncorroborated=incident.impact is not None and incident.impact.uncorroborated,
    )


def guardrail_context(
    ctx: LoopContext, incident: Incident, action: RemediationAction,
    earlier_auto: list[RemediationAction], proposal: RemediationProposal | None = None,
) -> GuardrailContext:
    """Facts about production the policy needs; measured, never taken from the proposal."""
    replicas = next(
        (s.replicas for s in ctx.telemetry.services() if s.name == action.service), None
    )
    flag = str(action.params.get("flag", ""))
    percent = next(
        (f.rollout_percent for f in ctx.telemetry.flags(action.service) if f.key == flag), None
    )
    same_service = sum(1 for a in earlier_auto if a.service == action.service)
    budget = budget_state(action.service, ctx.policies, ctx.telemetry)
    driver = taken_over(ctx.store, incident.id)
    return GuardrailContext(
        auto_actions_last_hour=auto_actions_last_hour(ctx, incident, action.service)
        + same_service,
        auto_actions_this_incident=len(earlier_auto),
        budget_exhausted=budget.state == "freeze",
        budget=budget,
        current_replicas=replicas,
        flag_percent=percent,
        kill_switch_tripped=action.type == ctx.policies.rollback.kill_switch.action
        and kill_switch_tripped(action.service, ctx.telemetry, ctx.policies.rollback),
        target_in_incident=action.service in incident.services,
        diagnosis=diagnosis_facts(incident, proposal),
        taken_over_by=driver.taken_over_by if driver is not None else None,
        resilience=(start_facts(ctx, incident.id, action) if action.type == RUN_EXPERIMENT
                    else None),
    )


def decide_action(
    ctx: LoopContext, incident: Incident, action: RemediationAction,
    earlier_auto: list[RemediationAction], proposal: RemediationProposal | None = None,
) -> PolicyDecision:
    severity = incident.severity or Severity.SEV1  # untriaged means: treat as the worst
    gctx = guardrail_context(ctx, incident, action, earlier_auto, proposal)
    decision = decide(action, severity, ctx.policies, gctx)
    ctx.store.audit(
        incident.id,
        "opsloop",
        "decision",
        {"action": action.describe(), **decision.model_dump(mode="json")},
    )
    return decision


def guardrails(state: LoopState, runtime: Runtime[LoopContext]) -> LoopState:
    ctx = context_of(runtime)
    incident = state["incident"]
    cases: list[ActionCase] = []
    events = []
    auto: list[RemediationAction] = []
    for case in incident.actions:
        decision = decide_action(ctx, incident, case.action, auto, case.proposal)
        if decision.outcome is DecisionOutcome.AUTO:
            auto.append(case.action)
        # The approval request goes out now: a human's wait is measured from here.
        asked = ctx.clock.now() if decision.outcome is DecisionOutcome.NEEDS_APPROVAL else None
        cases.append(case.model_copy(update={"decision": decision, "requested_at": asked}))
        events.append(
            event(
                ctx,
                EventKind.DECISION,
                f"{case.action.describe()}: {decision.outcome.value} ({decision.rule})",
                action_id=case.id,
                outcome=decision.outcome.value,
            )
        )
    return {"incident": incident.model_copy(
        update={"actions": cases, "timeline": [*incident.timeline, *events]})}
