"""An incident as the history the improvement signals look back on: a small record the
store keeps beside each incident, so learning does not read whole incidents."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime

from opsloop.models import DecisionOutcome, Incident

# One person's answer to an approval: (policy rule, action type, verdict, wall-clock seconds
# the answer took, or None when not recorded).
Answer = tuple[str, str, str, float | None]

_PAST_VERSION = 2  # bump when PastIncident's fields change: stored records are then re-derived


@dataclass(frozen=True)
class PastIncident:
    """What the rules read of an incident in the history: enough to count it and to cite it.

    The store keeps one beside every incident it saves, so learning reads these small
    records, not whole incidents; the improvement signals' rules take them as history."""

    id: str
    opened_at: datetime
    title: str
    severity: str | None
    status: str
    services: tuple[str, ...]
    category: str | None  # the root cause's, when one was found
    fixes: tuple[tuple[str, str, bool], ...]  # succeeded actions: (service, type, automatic)
    answers: tuple[Answer, ...] = ()  # people's answers to its approval requests

    @classmethod
    def of(cls, incident: Incident) -> PastIncident:
        cause = incident.root_cause
        return cls(
            id=incident.id, opened_at=incident.opened_at, title=incident.title,
            severity=incident.severity.value if incident.severity else None,
            status=incident.status.value, services=tuple(incident.services),
            category=cause.category if cause is not None else None,
            fixes=tuple((r.action.service, r.action.type, r.decision is not None
                         and r.decision.outcome is DecisionOutcome.AUTO)
                        for r in incident.actions if r.succeeded),
            answers=tuple((r.decision.rule if r.decision else "unrecorded rule",
                           r.action.type, r.approval.verdict.value, r.approval.waited_seconds)
                          for r in incident.actions if r.approval is not None))

    def to_json(self) -> str:
        return json.dumps({
            "v": _PAST_VERSION, "id": self.id, "opened_at": self.opened_at.isoformat(),
            "title": self.title, "severity": self.severity, "status": self.status,
            "services": self.services, "category": self.category, "fixes": self.fixes,
            "answers": self.answers})

    @classmethod
    def from_json(cls, text: str) -> PastIncident:
        """ValueError when `text` is not a record this code wrote. Records are immutable and
        every learn step reads the same ones again, so each text is parsed once."""
        return _parsed(text)

    @classmethod
    def _parse(cls, text: str) -> PastIncident:
        try:
            data = json.loads(text)
            if data.get("v") != _PAST_VERSION:
                raise ValueError(f"a past-incident record of version {data.get('v')!r}")
            return cls(id=str(data["id"]), opened_at=datetime.fromisoformat(data["opened_at"]),
                       title=str(data["title"]), severity=data["severity"],
                       status=str(data["status"]),
                       services=tuple(str(s) for s in data["services"]),
                       category=data["category"],
                       fixes=tuple((str(svc), str(kind), bool(auto))
                                   for svc, kind, auto in data["fixes"]),
                       answers=tuple((str(rule), str(kind), str(verdict),
                                      None if waited is None else float(waited))
                                     for rule, kind, verdict, waited in data["answers"]))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a past-incident record: {exc!r}") from exc


@functools.lru_cache(maxsize=8192)
def _parsed(text: str) -> PastIncident:
    return PastIncident._parse(text)
