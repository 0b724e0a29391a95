"""schedule.yaml: when each scheduled agent runs, in which time zone, for how long at most."""

from __future__ import annotations

from croniter import croniter
from pydantic import Field, field_validator

from opsloop.models import Severity
from opsloop.policy.schema.base import Minutes, PolicyFile, StrictModel, ZoneName


class AgentSchedule(StrictModel):
    """One agent's schedule. `cron` is a five-field cron expression read in `timezone`."""

    cron: str
    timezone: ZoneName = "UTC"
    enabled: bool = True
    jitter_seconds: int = Field(default=0, ge=0, le=3600)  # spread runs due at the same time
    max_run_time: Minutes = 10
    # Proposals from this agent are decided by remediation.yaml as if an incident of this
    # severity asked for them (SEV4: the least urgent; policy decides what that allows).
    severity: Severity = Severity.SEV4
    # Also run once after each incident of these severities ends (e.g. the policy review
    # after a SEV1-2), beside the cron schedule.
    after_incidents: list[Severity] = Field(default_factory=list)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a five-field cron expression "
                             f"(minute hour day-of-month month day-of-week), e.g. '0 9 * * 1'")
        return value


class SchedulePolicy(PolicyFile):
    # A run missed while opsloop was down runs once when it starts, if it is not older
    # than this (older: recorded as skipped, and the next one is awaited).
    catch_up_within: Minutes = 7 * 24 * 60
    agents: dict[str, AgentSchedule] = Field(default_factory=dict)
