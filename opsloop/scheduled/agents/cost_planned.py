"""Planned activity: the marks that keep a cost anomaly someone expected from being raised.

One file, `state/cost-feedback.json`: marks by id. A mark is either an answer to a reported
anomaly (`mark_planned`: its id is the anomaly's, it covers the anomaly's dimensions for
capacity.yaml's `cost.planned_activity_for` from its start) or declared ahead (`add_planned`,
from `opsloop cost planned add` and POST /api/v1/cost/planned: a service, optionally a region
and a usage type, and a from..to window). Either says who (`by`), why and when it was
recorded (`at`). A mark without a region or usage type covers all of the service's.

Every change holds an exclusive flock(2) on a sibling lock file while it reads, changes and
replaces the file (atomically: a reader sees the old file or the new one), so two people
marking at once both land; the kernel frees the lock if its holder dies.
"""

from __future__ import annotations

import fcntl
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.agents.markdown import atomic_write

PLANNED = "planned_activity"
DIMENSIONS = ("service", "region", "usage_type")
REDETECTED = timedelta(hours=6)  # an anomaly seen again from a later window starts earlier


class PlannedError(ValueError):
    """A planned-activity mark that cannot be recorded: what is wrong, and what to do."""


class UnknownMark(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def load_feedback(path: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Marks by id, and a problem reading them (the agent reports it and goes on)."""
    if not path.exists():
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, f"{path}: unreadable ({exc}); no planned activity applied"
    if not isinstance(data, dict):
        return {}, f"{path}: expected an object of mark id -> mark; none applied"
    return {k: v for k, v in data.items() if isinstance(v, dict)}, None


@contextmanager
def _changing(path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """The marks, locked against other writers; written back atomically on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            marks, problem = load_feedback(path)
            if problem is not None:
                raise PlannedError(f"{problem}: fix or move the file, then mark again")
            yield marks
            atomic_write(path, json.dumps(marks, indent=2, sort_keys=True) + "\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def mark_planned(path: Path, anomaly: dict[str, Any], by: str, why: str,
                 at: datetime) -> dict[str, Any]:
    """Record that `anomaly` (a report's anomaly) was planned activity, by whom and why."""
    if not by.strip() or not why.strip():
        raise PlannedError("a planned-activity mark needs who (by) and why")
    mark = {"id": anomaly["id"], "verdict": PLANNED, "by": by, "why": why,
            "at": at.isoformat(), "anomaly": anomaly["id"], "start": anomaly["start"],
            **{k: anomaly[k] for k in DIMENSIONS}}
    with _changing(path) as marks:
        marks[anomaly["id"]] = mark
    return mark


def add_planned(path: Path, *, service: str, start: datetime, end: datetime, why: str,
                by: str, at: datetime, region: str | None = None,
                usage_type: str | None = None,
                known_services: list[str] | None = None) -> dict[str, Any]:
    """Declare planned activity ahead: `service` (and region / usage type, else all of them)
    from `start` to `end`. `known_services`: production's, when it is known."""
    if not service.strip():
        raise PlannedError("service: required")
    if known_services is not None and service not in known_services:
        raise PlannedError(f"service {service!r}: production has no such service (it has "
                           f"{', '.join(sorted(known_services))})")
    for name, value in (("from", start), ("to", end)):
        if value.tzinfo is None:
            raise PlannedError(f"{name} {value.isoformat()!r}: give a time zone "
                               f"(e.g. 2026-11-02T10:00:00Z)")
    if end <= start:
        raise PlannedError(f"to {end.isoformat()} is not after from {start.isoformat()}")
    if not why.strip():
        raise PlannedError("reason: required (why the spend is expected)")
    if not by.strip():
        raise PlannedError("by: required (who marks it)")
    ident = f"plan-{uuid.uuid4().hex[:12]}"
    mark = {"id": ident, "verdict": PLANNED, "by": by, "why": why, "at": at.isoformat(),
            "start": start.isoformat(), "end": end.isoformat(), "service": service,
            "region": region or None, "usage_type": usage_type or None}
    with _changing(path) as marks:
        marks[ident] = mark
    return mark


def remove_planned(path: Path, ident: str) -> dict[str, Any]:
    """Remove a mark by id; UnknownMark when there is none."""
    with _changing(path) as marks:
        if ident not in marks:
            known = ", ".join(sorted(marks)) or "none"
            raise UnknownMark(f"no planned-activity mark {ident!r} in {path} (marks: {known})")
        return marks.pop(ident)


def list_planned(path: Path) -> list[dict[str, Any]]:
    """Every mark, oldest start first; PlannedError when the file cannot be read."""
    marks, problem = load_feedback(path)
    if problem is not None:
        raise PlannedError(problem)
    return sorted(({"id": k, **v} for k, v in marks.items()),
                  key=lambda m: (str(m.get("start")), m["id"]))


def window(mark: dict[str, Any], cover_minutes: int) -> tuple[datetime, datetime]:
    """When a mark applies: its from..to, or an anomaly's start plus the policy's cover."""
    start = datetime.fromisoformat(mark["start"])
    if mark.get("end"):
        return start, datetime.fromisoformat(mark["end"])
    return start - REDETECTED, start + timedelta(minutes=cover_minutes)


def covers(mark: dict[str, Any], key: dict[str, str], at: datetime, cover_minutes: int) -> bool:
    """Whether `mark` says spend of `key`'s dimensions starting `at` was planned."""
    if mark.get("verdict") != PLANNED:
        return False
    if any(mark.get(k) is not None and mark.get(k) != v for k, v in key.items()):
        return False
    began, ends = window(mark, cover_minutes)
    if mark.get("end"):  # a declared window: spend from the hour it starts in
        began = began.replace(minute=0, second=0, microsecond=0)
        return began <= at < ends
    return began <= at <= ends
