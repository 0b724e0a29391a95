"""Facts read off the incident record, shared by postmortem drafting and signal rules.

Each action is joined to its policy decision, its approval (and how long that took) and
its result; the timeline gives onset, detection, mitigation and escalation moments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsloop.models import (
    ActionResult,
    Approval,
    DecisionOutcome,
    Incident,
    IncidentStatus,
    PolicyDecision,
    RemediationAction,
    TimelineEvent,
)

# Timeline event kinds this module reads (see opsloop/graph/nodes); keep the two in step.
ONSET_KINDS = frozenset({"fault", "first_signal"})
DETECTED_KINDS = frozenset({"detected", "alert", "opened"})
MITIGATED_KINDS = frozenset({"mitigated", "verified"})
ESCALATED_KINDS = frozenset({"escalated"})
# The approval request goes out when guardrails decide `needs_approval`.
APPROVAL_REQUESTED_KINDS = frozenset({"approval_requested", "decision"})

@dataclass(frozen=True)
class ActionRecord:
    """One proposed action with what policy, the human and the actuator made of it."""

    action: RemediationAction
    specialist: str
    decision: PolicyDecision | None
    approval: Approval | None
    approval_wait: timedelta | None  # None when the record has no matching request event
    result: ActionResult | None


def action_records(incident: Incident) -> list[ActionRecord]:
    """Every proposed action once, in proposal order, joined to its decision and outcome."""
    seen: dict[str, tuple[RemediationAction, str]] = {}
    for proposal in incident.proposals:
        seen.setdefault(proposal.action.id, (proposal.action, proposal.specialist))
    decisions = {d.action_id: d for d in incident.decisions}
    results = {r.action_id: r for r in incident.results}
    approvals = _pair_approvals(incident, decisions, list(seen))
    return [
        ActionRecord(
            action=action,
            specialist=specialist,
            decision=decisions.get(action_id),
            approval=approvals.get(action_id),
            approval_wait=_approval_wait(incident, approvals.get(action_id), action_id),
            result=results.get(action_id),
        )
        for action_id, (action, specialist) in seen.items()
    ]


def _pair_approvals(
    incident: Incident, decisions: dict[str, PolicyDecision], action_ids: list[str]
) -> dict[str, Approval]:
    # Approval carries only the request id; request ids conventionally embed the action id.
    # When they do not, the n-th answer belongs to the n-th action that needed one.
    paired: dict[str, Approval] = {}
    left = list(incident.approvals)
    for action_id in action_ids:
        match = next((a for a in left if _names(a.request_id, action_id)), None)
        if match is not None:
            paired[action_id] = match
            left.remove(match)
    waiting = [
        a for a in action_ids
        if a not in paired and a in decisions
        and decisions[a].outcome is DecisionOutcome.NEEDS_APPROVAL
    ]
    if left and len(left) == len(waiting):
        paired.update(zip(waiting, left, strict=True))
    return paired


def _names(request_id: str, action_id: str) -> bool:
    # "apr-a-1" names action "a-1"; "apr-a-10" does not.
    pattern = rf"(?<![A-Za-z0-9]){re.escape(action_id)}(?![A-Za-z0-9])"
    return request_id == action_id or re.search(pattern, request_id) is not None


def _approval_wait(
    incident: Incident, approval: Approval | None, action_id: str
) -> timedelta | None:
    if approval is None:
        return None
    requests = [
        e for e in incident.timeline
        if e.kind in APPROVAL_REQUESTED_KINDS and e.at <= approval.at
        and e.data.get("outcome", DecisionOutcome.NEEDS_APPROVAL.value) == "needs_approval"
    ]
    named = [
        e for e in requests
        if e.data.get("request_id") == approval.request_id or e.data.get("action_id") == action_id
    ]
    candidates = named or requests
    return approval.at - candidates[-1].at if candidates else None


def _first(events: Iterable[TimelineEvent], kinds: frozenset[str]) -> TimelineEvent | None:
    return next((e for e in events if e.kind in kinds), None)


def event_times(incident: Incident) -> tuple[datetime | None, datetime, datetime | None]:
    """(onset, detected, mitigated) as far as the record says."""
    onset = _first(incident.timeline, ONSET_KINDS)
    detected = _first(incident.timeline, DETECTED_KINDS)
    mitigated = _first(incident.timeline, MITIGATED_KINDS)
    mitigated_at = mitigated.at if mitigated else None
    if mitigated_at is None and incident.verification and incident.verification.passed:
        mitigated_at = incident.verification.at
    return (onset.at if onset else None, detected.at if detected else incident.opened_at,
            mitigated_at)


def escalated(incident: Incident) -> bool:
    """Handed to a human: the status says so, or the timeline records an escalation."""
    return incident.status is IncidentStatus.ESCALATED or any(
        e.kind in ESCALATED_KINDS for e in incident.timeline
    )


def verification_failed(incident: Incident) -> bool:
    """The fix ran and health did not come back within the window."""
    return incident.verification is not None and not incident.verification.passed


