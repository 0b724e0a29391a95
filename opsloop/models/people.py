"""What people do with an incident, beside what the loop does: acknowledge, assign, note,
take over, resolve, reopen, and the loop's own re-pages while nobody has acknowledged.

The loop writes the incident record; people write this log. Keeping them apart means a
person's acknowledgement can never be lost to the loop saving its record a moment later, and
the loop never has to lock out a person. The people's state of an incident is a fold of its
events, and whether a verb may be applied now is decided by that state alone.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from opsloop.models.incident import IncidentStatus

NOTE_MAX_CHARS = 4000
NAME_MAX_CHARS = 120


class PeopleVerb(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    NOTE = "note"
    TAKE_OVER = "take_over"  # a person drives: the loop runs nothing without a human's yes
    RESOLVE = "resolve"
    REOPEN = "reopen"
    REPAGE = "repage"  # the loop paged again: nobody acknowledged within policy's time

    @property
    def past(self) -> str:
        return {
            "acknowledge": "acknowledged", "assign": "assigned", "note": "noted",
            "take_over": "took over", "resolve": "resolved", "reopen": "reopened",
            "repage": "paged again",
        }[self.value]


# Verbs a person uses (the loop alone re-pages).
PERSON_VERBS = tuple(v for v in PeopleVerb if v is not PeopleVerb.REPAGE)


class PeopleEvent(BaseModel):
    """One thing a person (or the re-page) did, on the wall clock: people's times are real."""

    seq: int
    incident_id: str
    verb: PeopleVerb
    actor: str
    at: datetime
    detail: str = ""  # the note, the assignee, the reason


class PeopleState(BaseModel):
    """Where people are with one incident."""

    state: str = "triggered"  # triggered | acknowledged | resolved
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    assignee: str | None = None
    taken_over_by: str | None = None
    taken_over_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    repages: int = 0
    last_page_at: datetime | None = None
    notes: int = 0
    events: list[PeopleEvent] = Field(default_factory=list)


def fold(events: list[PeopleEvent]) -> PeopleState:
    """The state the events lead to, applied in order."""
    s = PeopleState(events=list(events))
    for e in events:
        if e.verb is PeopleVerb.ACKNOWLEDGE:
            s.state, s.acknowledged_by, s.acknowledged_at = "acknowledged", e.actor, e.at
        elif e.verb is PeopleVerb.ASSIGN:
            s.assignee = e.detail
        elif e.verb is PeopleVerb.NOTE:
            s.notes += 1
        elif e.verb is PeopleVerb.TAKE_OVER:
            s.taken_over_by, s.taken_over_at = e.actor, e.at
            if s.state == "triggered":  # driving it is knowing about it
                s.state, s.acknowledged_by, s.acknowledged_at = "acknowledged", e.actor, e.at
        elif e.verb is PeopleVerb.RESOLVE:
            s.state, s.resolved_by, s.resolved_at = "resolved", e.actor, e.at
        elif e.verb is PeopleVerb.REOPEN:
            # Back with whoever acknowledged it; a person reopening it knows about it.
            s.state, s.resolved_by, s.resolved_at = "acknowledged", None, None
            s.acknowledged_by = s.acknowledged_by or e.actor
            s.acknowledged_at = s.acknowledged_at or e.at
        elif e.verb is PeopleVerb.REPAGE:
            s.repages += 1
            s.last_page_at = e.at
    return s


class PeopleRefused(ValueError):
    """A verb that does not apply to the incident as it stands (HTTP 409, CLI exit 1)."""


def check(verb: PeopleVerb, state: PeopleState, status: IncidentStatus, detail: str,
          waiting: list[str]) -> None:
    """Raise PeopleRefused saying why `verb` cannot apply now; `waiting` are the ids of the
    incident's approvals still pending (a resolve must not strand them)."""
    if verb is PeopleVerb.NOTE:
        if not detail.strip():
            raise PeopleRefused("a note needs text")
        if len(detail) > NOTE_MAX_CHARS:
            raise PeopleRefused(f"a note is at most {NOTE_MAX_CHARS} characters "
                                f"(this one has {len(detail)})")
        return
    if verb is PeopleVerb.REOPEN:
        if state.state != "resolved":
            raise PeopleRefused(f"it is {state.state}, not resolved: nothing to reopen")
        return
    if state.state == "resolved":
        raise PeopleRefused(f"it was resolved by {state.resolved_by} at "
                            f"{_when(state.resolved_at)}: reopen it first")
    if verb is PeopleVerb.ACKNOWLEDGE and state.state == "acknowledged":
        raise PeopleRefused(f"already acknowledged by {state.acknowledged_by} at "
                            f"{_when(state.acknowledged_at)}")
    if verb is PeopleVerb.ASSIGN:
        name = detail.strip()
        if not name or len(name) > NAME_MAX_CHARS or any(c in name for c in "\r\n\t"):
            raise PeopleRefused(f"assign needs a person's name (1-{NAME_MAX_CHARS} characters, "
                                "one line)")
        if name == state.assignee:
            raise PeopleRefused(f"already assigned to {name}")
    if verb is PeopleVerb.TAKE_OVER and state.taken_over_by is not None:
        raise PeopleRefused(f"{state.taken_over_by} already took it over at "
                            f"{_when(state.taken_over_at)}")
    if verb is PeopleVerb.RESOLVE:
        if waiting:
            raise PeopleRefused(f"approvals are still waiting ({', '.join(waiting)}): "
                                "approve or reject them first")
        if status is IncidentStatus.OPEN and state.taken_over_by is None:
            raise PeopleRefused("the loop is still working on it: take it over first to "
                                "resolve it by hand")


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ") if at is not None else "an unknown time"
