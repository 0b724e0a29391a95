"""resilience.yaml: what a chaos experiment may do, and when it must not start."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from opsloop.models import Severity
from opsloop.policy.schema.base import Minutes, PolicyFile, StrictModel, ZoneName

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class BlastRadiusLimits(StrictModel):
    """The most one experiment may touch."""

    max_services: int = Field(default=1, ge=1)
    max_instance_share: float = Field(default=0.25, gt=0, le=1)  # of a service's replicas
    max_duration_minutes: Minutes = 30


class ServiceLimit(StrictModel):
    allowed: bool = True  # false: no experiment may target it
    max_instance_share: float | None = Field(default=None, gt=0, le=1)


class AllowedHours(StrictModel):
    """When an experiment may start: these days, from `start` to `end` in `timezone`."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS[:5]))
    start: str = "10:00"
    end: str = "16:00"
    timezone: ZoneName = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time of day HH:MM, e.g. 10:00")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> AllowedHours:
        if not self.start < self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    def allows(self, when: datetime) -> bool:
        local = when.astimezone(ZoneInfo(self.timezone))
        start, end = (time.fromisoformat(self.start), time.fromisoformat(self.end))
        return DAYS[local.weekday()] in self.days and start <= local.time() < end


class ResiliencePolicy(PolicyFile):
    blast_radius: BlastRadiusLimits = Field(default_factory=BlastRadiusLimits)
    services: dict[str, ServiceLimit] = Field(default_factory=dict)
    allowed_hours: AllowedHours = Field(default_factory=AllowedHours)
    min_interval: Minutes = 24 * 60  # between two runs of the same experiment
    max_runs_per_day: int = Field(default=2, ge=1)  # all experiments, per calendar day (UTC)
    # An open incident at this severity or worse (SEV1 is the worst) refuses every start.
    refuse_during_incidents_at: Severity = Severity.SEV2
    # Refuse when a target's error budget left (the lowest of its SLOs) is under this share.
    min_error_budget_left: float = Field(default=0.5, ge=0, le=1)
