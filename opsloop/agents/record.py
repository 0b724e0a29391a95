"""Facts read off the incident record, shared by postmortem drafting and signal rules.

Each action's story (decision, approval and its wait, result, revert) is its `ActionCase`;
the timeline gives onset, detection, mitigation and escalation moments.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from opsloop.models import EventKind, Incident, IncidentStatus, TimelineEvent

ONSET_KINDS = frozenset({EventKind.FIRST_SIGNAL})
DETECTED_KINDS = frozenset({EventKind.ALERT, EventKind.OPENED})
MITIGATED_KINDS = frozenset({EventKind.VERIFIED})
ESCALATED_KINDS = frozenset({EventKind.ESCALATED})


def _first(events: Iterable[TimelineEvent], kinds: frozenset[EventKind]) -> TimelineEvent | None:
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
