"""What the pages show, read from the runtime's store: incidents with the list's filters,
one incident with its approvals and audit log, and the fragments live updates fetch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from opsloop.agents.warroom import war_room_path
from opsloop.api.runtime import IntakeRuntime
from opsloop.files import documents
from opsloop.models import ApprovalRequest, Incident, IncidentStatus, Severity
from opsloop.models.people import PeopleState
from opsloop.policy.changes import allowed_range
from opsloop.store import IncidentStore, StoreError


class Age(StrEnum):
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"


AGES = {Age.HOUR: timedelta(hours=1), Age.DAY: timedelta(days=1),
        Age.WEEK: timedelta(days=7), Age.MONTH: timedelta(days=30)}


@dataclass(frozen=True)
class IncidentFilter:
    """The incident list's filters; each None shows everything."""

    status: IncidentStatus | None = None
    severity: Severity | None = None
    service: str | None = None
    age: Age | None = None

    @classmethod
    def parse(cls, status: str | None, severity: str | None, service: str | None,
              age: str | None) -> tuple[IncidentFilter, list[str]]:
        """The filter from query values; unknown values are dropped and named."""
        problems: list[str] = []

        def pick(kind: Any, value: str | None, what: str) -> Any:
            if not value:
                return None
            try:
                return kind(value)
            except ValueError:
                allowed = ", ".join(m.value for m in kind)
                problems.append(f"{what} {value[:40]!r} is not one of {allowed}; ignored")
                return None

        service_name = (service or "").strip()[:100] or None
        return cls(pick(IncidentStatus, status, "status"), pick(Severity, severity, "severity"),
                   service_name, pick(Age, age, "age")), problems

    def keeps(self, incident: Incident, now: datetime) -> bool:
        if self.status is not None and incident.status is not self.status:
            return False
        if self.severity is not None and incident.severity is not self.severity:
            return False
        if self.service is not None and self.service not in incident.services:
            return False
        return self.age is None or now - incident.opened_at <= AGES[self.age]


def clock(runtime: IntakeRuntime) -> datetime:
    """Production's clock when there is one (incidents are stamped with it), else the wall's."""
    if runtime.env is not None:
        try:
            return runtime.now()
        except Exception:  # production unreachable: the list still shows, aged by the wall
            return datetime.now(UTC)
    return datetime.now(UTC)


def incidents(runtime: IntakeRuntime, keep: IncidentFilter) -> tuple[list[Incident], list[str]]:
    """Newest first, filtered; and every service seen, for the filter's choices."""
    problems: list[str] = []
    found: list[Incident] = runtime.read(lambda s: s.incidents(problems=problems))
    now = clock(runtime)
    services = sorted({s for i in found for s in i.services})
    kept = [i for i in found if keep.keeps(i, now)]
    kept.sort(key=lambda i: i.opened_at, reverse=True)
    return kept, services


def incident_detail(runtime: IntakeRuntime, incident_id: str) -> dict[str, Any] | None:
    def load(store: IncidentStore) -> tuple[Incident, list[Any], list[ApprovalRequest],
                                            PeopleState]:
        return (store.get_incident(incident_id), store.audit_log(incident_id),
                [p for p in store.pending() if p.incident_id == incident_id],
                store.people.state(incident_id))

    try:
        incident, audit, waiting, people = runtime.read(load)
    except StoreError:
        return None
    return {"incident": incident, "audit": audit, "people": people,
            "approvals": [approval_view(runtime, p) for p in waiting],
            "postmortem": postmortem_name(runtime, incident),
            "warroom": warroom_name(runtime, incident)}


def warroom_name(runtime: IntakeRuntime, incident: Incident) -> str | None:
    """The war room's file name when triage opened one for the incident."""
    folder = runtime.settings.warrooms_dir
    path = war_room_path(folder, incident.id)
    return path.name if path in documents(folder, path.name) else None


def postmortem_name(runtime: IntakeRuntime, incident: Incident) -> str | None:
    """The draft's file name when it is in the postmortems folder."""
    if not incident.postmortem_path:
        return None
    name = Path(incident.postmortem_path).name
    folder = runtime.settings.postmortems_dir
    return name if folder / name in documents(folder, name) else None


def approval_view(runtime: IntakeRuntime, request: ApprovalRequest) -> dict[str, Any]:
    """A waiting approval with what a person may change: each parameter policy allows for
    the action, with its current value and its allowed range."""
    entry = runtime.policies.remediation.actions.get(request.action.type)
    specs = entry.params if entry is not None else {}
    params = [{"key": key, "value": request.action.params.get(key, ""),
               "allowed": allowed_range(spec)} for key, spec in sorted(specs.items())]
    return {"request": request, "params": params,
            "lines": "\n".join(f"{k}={v}" for k, v in sorted(request.action.params.items()))}


def pending(runtime: IntakeRuntime) -> list[dict[str, Any]]:
    waiting: list[ApprovalRequest] = runtime.read(lambda s: s.pending())
    return [approval_view(runtime, p) for p in waiting]
