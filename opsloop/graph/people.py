"""People's verbs on an incident (acknowledge, assign, note, take over, resolve, reopen) and
the loop's re-page while nobody has acknowledged: one path for the CLI, the API and the
console. Each verb is checked against the incident as it stands, appended to its people's
log, written to the audit log, and told to the page's backends when it is one PagerDuty
follows (acknowledge, resolve), under a key of its own so a retry never sends it twice.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from opsloop.agents.warroom import close_war_room
from opsloop.models import EventKind, Incident, IncidentStatus
from opsloop.models.people import (
    PeopleEvent,
    PeopleRefused,
    PeopleState,
    PeopleVerb,
    check,
)
from opsloop.policy import Policies
from opsloop.policy.severity import escalation_for
from opsloop.store import IncidentStore
from opsloop.tools.notifications.config import Lifecycle
from opsloop.tools.protocols import Notifier

# The loop's statuses at which a page has been answered by the loop itself (learn sent the
# page's resolve) or nothing is left to ask a person.
_SETTLED = (IncidentStatus.MITIGATED, IncidentStatus.RESOLVED)


def apply_verb(store: IncidentStore, notifier: Notifier | None, policies: Policies,
               incident_id: str, verb: PeopleVerb, actor: str, detail: str = "",
               warrooms_dir: Path | None = None) -> PeopleEvent:
    """Apply one person's verb; PeopleRefused (with why) when it does not apply now,
    StoreError for an unknown incident. A resolve closes the incident's war room."""
    if verb is PeopleVerb.REPAGE:
        raise PeopleRefused("re-pages are the loop's, not a person's")
    incident = store.get_incident(incident_id)
    waiting = [r.id for r in store.pending() if r.incident_id == incident_id]
    text = detail.strip() if verb is PeopleVerb.ASSIGN else detail

    def allowed(state: PeopleState) -> None:
        check(verb, state, incident.status, text, waiting)

    done = store.people.apply(incident_id, verb, actor, text, allowed)
    store.audit(incident_id, actor, f"people.{verb.value}",
                {"detail": text, "seq": done.seq, "status": incident.status.value})
    if verb is PeopleVerb.RESOLVE and warrooms_dir is not None:
        close_war_room(warrooms_dir, incident_id, "resolved", done.at)
    if notifier is not None and _was_paged(incident, policies):
        _tell_the_page(notifier, incident, done)
    return done


def taken_over(store: IncidentStore, incident_id: str) -> PeopleState | None:
    """The people's state when a person has taken the incident over, else None."""
    state = store.people.state(incident_id)
    return state if state.taken_over_by is not None and state.state != "resolved" else None


def repage_due(store: IncidentStore, notifier: Notifier, policies: Policies,
               now: datetime) -> list[PeopleEvent]:
    """Page again every paged incident nobody acknowledged within its severity's
    `repage_after_minutes` (production's clock), up to `repage_max` times."""
    # A rejected incident had a person's answer: somebody saw it.
    candidates = [i for status in (IncidentStatus.OPEN, IncidentStatus.AWAITING_APPROVAL,
                                   IncidentStatus.ESCALATED)
                  for i in store.incidents(status=status.value)]
    states = store.people.states([i.id for i in candidates])
    sent = []
    for incident in candidates:
        if incident.severity is None or not _was_paged(incident, policies):
            continue
        escalation = escalation_for(incident.severity, policies.severity)
        after = escalation.repage_after_minutes
        state = states[incident.id]
        if after is None or state.state != "triggered" or state.repages >= escalation.repage_max:
            continue
        last = _last_page(incident, state)
        if last is None or (now - last).total_seconds() < after * 60:
            continue
        n = state.repages + 1

        def still_due(s: PeopleState, n: int = n) -> None:
            if s.state != "triggered" or s.repages >= n:
                raise PeopleRefused("acknowledged, or already paged again, meanwhile")

        try:
            done = store.people.apply(incident.id, PeopleVerb.REPAGE, "opsloop",
                                      now.isoformat(), still_due)
        except PeopleRefused:
            continue
        store.audit(incident.id, "opsloop", "people.repage", {"n": n, "at": now.isoformat()})
        notifier.notify(
            "page", f"{incident.id} {incident.severity.value} still unacknowledged after "
                    f"{after * n} min (page {n + 1}): {incident.title}",
            {"incident": incident.id, "severity": incident.severity.value,
             "lifecycle": Lifecycle.TRIGGER.value},
            key=f"{incident.id}:repage:{n}")
        sent.append(done)
    return sent


def _was_paged(incident: Incident, policies: Policies) -> bool:
    if incident.severity is not None and escalation_for(incident.severity,
                                                        policies.severity).page:
        return True
    return incident.status is IncidentStatus.ESCALATED and bool(incident.anomalies)


def _last_page(incident: Incident, state: PeopleState) -> datetime | None:
    if state.repages:
        last = next(e for e in reversed(state.events) if e.verb is PeopleVerb.REPAGE)
        return datetime.fromisoformat(last.detail)
    return next((e.at for e in incident.timeline if e.kind is EventKind.ESCALATED), None)


def _tell_the_page(notifier: Notifier, incident: Incident, done: PeopleEvent) -> None:
    lifecycle = {PeopleVerb.ACKNOWLEDGE: Lifecycle.ACKNOWLEDGE, PeopleVerb.TAKE_OVER:
                 Lifecycle.ACKNOWLEDGE, PeopleVerb.RESOLVE: Lifecycle.RESOLVE,
                 PeopleVerb.REOPEN: Lifecycle.TRIGGER}.get(done.verb)
    if lifecycle is None or (done.verb is PeopleVerb.RESOLVE and incident.status in _SETTLED):
        return  # a note or an assignment is not the page's business; learn resolved it
    severity = incident.severity.value if incident.severity else ""
    notifier.notify(
        "page", f"{incident.id} {done.verb.past} by {done.actor}: {incident.title}",
        {"incident": incident.id, "severity": severity, "lifecycle": lifecycle.value,
         "by": done.actor},
        key=f"{incident.id}:people:{done.seq}")
