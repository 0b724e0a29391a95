"""learn: settle the incident's status, draft the postmortem and file improvement signals."""

from __future__ import annotations

from datetime import timedelta

from langgraph.runtime import Runtime

from opsloop.agents.narrative import narrator_for
from opsloop.agents.postmortem import needs_postmortem, write_postmortem
from opsloop.agents.runbook_proposal import draft_runbook_proposal
from opsloop.agents.signals import derive_signals, write_signals
from opsloop.agents.warroom import close_war_room, log_to_war_room
from opsloop.crashpoints import crash_point
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import EventKind, Incident, IncidentStatus, Verdict
from opsloop.policy.severity import escalation_for
from opsloop.tools.notifications import Lifecycle


def final_status(incident: Incident) -> IncidentStatus:
    """Mitigated only when verification found production healthy. A partial recovery is
    escalated with its mitigation kept (verify left the actions in place and said so on the
    timeline); no effect or worse is escalated after verify reverted what it should."""
    if incident.verification is not None:
        return (
            IncidentStatus.MITIGATED if incident.verification.passed else IncidentStatus.ESCALATED
        )
    if incident.novel or not incident.actions:
        return IncidentStatus.ESCALATED
    answers = [case.approval for case in incident.actions if case.approval is not None]
    if answers and all(a.verdict is Verdict.REJECT for a in answers):
        return IncidentStatus.REJECTED
    if not any(case.succeeded for case in incident.actions):
        return IncidentStatus.ESCALATED  # denied, or the actions failed: a human takes over
    return IncidentStatus.MITIGATED


def escalation_reason(incident: Incident) -> str:
    verification = incident.verification
    if verification is not None and verification.mitigation_kept:
        kept = [case.action.describe() for case in incident.actions
                if case.succeeded and case.revert is None]
        return ("partial recovery, mitigation kept" + (f" ({', '.join(kept)})" if kept else "")
                + ": a human takes it from here")
    if verification is not None and not verification.passed:
        return "the fix did not hold"
    if incident.novel:
        return "novel failure"
    return "no automated fix left"


def learn(state: LoopState, runtime: Runtime[LoopContext]) -> LoopState:
    ctx = context_of(runtime)
    incident = state["incident"]
    status = final_status(incident)
    events = [
        event(
            ctx,
            EventKind.CLOSED if status is IncidentStatus.MITIGATED else EventKind.ESCALATED,
            f"incident {status.value}",
        )
    ]
    notifications = list(incident.notifications)
    if status is IncidentStatus.ESCALATED:
        # A change an agent proposed (no alert behind it) goes to its owners' channel; an
        # incident pages on-call.
        channel = "page" if incident.anomalies else "agents"
        who = "on-call" if incident.anomalies else "the agent's owners"
        notifications.append(
            ctx.notifier.notify(
                channel, f"{incident.id} escalated to {who}: {escalation_reason(incident)}",
                {"incident": incident.id}, key=f"{incident.id}:learn:page",
            )
        )
    if (status in (IncidentStatus.MITIGATED, IncidentStatus.RESOLVED)
            and incident.severity is not None
            and escalation_for(incident.severity, ctx.policies.severity).page):
        # The page's backends hear it ended (PagerDuty resolves the same dedup key).
        notifications.append(
            ctx.notifier.notify(
                "page", f"{incident.id} {status.value}: {incident.title}",
                {"incident": incident.id, "severity": incident.severity.value,
                 "lifecycle": Lifecycle.RESOLVE.value, "status": status.value},
                key=f"{incident.id}:learn:resolve",
            )
        )
    incident = incident.model_copy(
        update={
            "status": status,
            "notifications": notifications,
            "timeline": [*incident.timeline, *events],
        },
    )
    extra = set(ctx.policies.severity.postmortem_severities)
    if needs_postmortem(incident, extra):
        path = write_postmortem(incident, ctx.settings.postmortems_dir,
                                narrator=narrator_for(ctx.model, ctx.settings))
        incident.postmortem_path = str(path)
        crash_point("learn.drafted")
        events.append(event(ctx, EventKind.POSTMORTEM, f"postmortem draft at {path}"))
    now = ctx.clock.now()
    # Only the incidents inside the signals' lookback: the cost of learning stays flat as
    # history grows.
    rules = ctx.policies.signals
    since = now - timedelta(days=rules.lookback_days)
    history = ctx.store.related_history(incident, since)
    signals = derive_signals(incident, history, now, rules)
    paths = write_signals(signals, ctx.settings.signals_dir)
    incident.signal_paths = [str(p) for p in paths]
    events.extend(event(ctx, EventKind.SIGNAL, f"signal filed at {p}") for p in paths)
    proposal = draft_runbook_proposal(incident, ctx.runbooks, ctx.settings.runbook_proposals_dir)
    if proposal is not None:
        events.append(event(ctx, EventKind.RUNBOOK_PROPOSAL,
                            f"runbook update proposal at {proposal}"))
    incident.timeline = [*incident.timeline, *events[1:]]
    log_to_war_room(ctx.settings.warrooms_dir, incident.id, events[0])
    if status in (IncidentStatus.MITIGATED, IncidentStatus.RESOLVED):
        close_war_room(ctx.settings.warrooms_dir, incident.id, status.value, events[0].at)
    ctx.store.audit(
        incident.id,
        "opsloop",
        "closed",
        {
            "status": status.value,
            "postmortem": incident.postmortem_path,
            "signals": incident.signal_paths,
        },
    )
    return {"incident": incident}
