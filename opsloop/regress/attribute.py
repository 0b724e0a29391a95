"""Which change to production a regression follows: the deploy, config change or flag change
nearest before it.

A change point's time is an estimate: with a step of one noise-width the detector places it
within about an hour of the truth (`opsloop eval regressions` measures this), and as often a
little early as late. So "before it" means before the change point plus `slack`, and
"nearest" is by distance in time: among the changes in (at - max_lag, at + slack] the one
closest to the change point wins (a tie goes to the service's own change, then the later
one). The others in that span are kept as rivals: a regression with a rival is less surely
the winner's doing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from opsloop.models import DeployEvent, FlagChange

SLACK = timedelta(hours=1)  # the change point may be placed this much before its cause
MAX_LAG = timedelta(hours=6)  # a change older than this before the regression is no suspect


class ProductionChange(BaseModel):
    """One change to a service: a deploy, a config deploy, a rollback or a flag change."""

    at: datetime
    service: str
    kind: str  # deploy | config | rollback | flag
    what: str  # for people: "search 4.7.3 → 4.8.0 (discovery-ci)"
    version: str = ""
    previous_version: str = ""
    flag: str = ""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.service}:{self.flag or self.version}:{self.at.isoformat()}"


class Attribution(BaseModel):
    change: ProductionChange
    own: bool  # the regressed service's own change, not a dependency's
    rivals: list[ProductionChange] = Field(default_factory=list)


def from_deploys(deploys: Iterable[DeployEvent]) -> list[ProductionChange]:
    return [ProductionChange(
        at=d.at, service=d.service, kind=d.kind, version=d.version,
        previous_version=d.previous_version,
        what=f"{d.kind} {d.service} {d.previous_version} → {d.version} ({d.author})")
        for d in deploys]


def from_flag_changes(changes: Iterable[FlagChange]) -> list[ProductionChange]:
    return [ProductionChange(
        at=c.at, service=c.service, kind="flag", flag=c.key,
        what=(f"flag {c.key} on {c.service} {c.from_percent:g}% → {c.to_percent:g}%"
              f"{'' if c.enabled else ' (disabled)'} ({c.author or '?'})"))
        for c in changes]


def attribute(at: datetime, service: str, changes: Iterable[ProductionChange], *,
              slack: timedelta = SLACK, max_lag: timedelta = MAX_LAG) -> Attribution | None:
    """The change nearest before `at` (see the module's note), or None when none is near."""
    suspects = sorted((c for c in changes if at - max_lag < c.at <= at + slack),
                      key=lambda c: (abs(c.at - at), c.service != service, -c.at.timestamp()))
    if not suspects:
        return None
    first, *rest = suspects
    return Attribution(change=first, own=first.service == service, rivals=rest)
