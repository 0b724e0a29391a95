"""Cron times for one agent's schedule, on production's clock, with a stable jitter."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from opsloop.policy.schema import AgentSchedule

MAX_SCAN = 10_000  # due times walked back over when catching up; older ones are counted


def _local(schedule: AgentSchedule, at: datetime) -> datetime:
    return at.astimezone(ZoneInfo(schedule.timezone))


def next_due(schedule: AgentSchedule, after: datetime) -> datetime:
    """The first cron time strictly after `after` (UTC)."""
    it = croniter(schedule.cron, _local(schedule, after))
    return it.get_next(datetime).astimezone(UTC)


def due_between(schedule: AgentSchedule, after: datetime, until: datetime
                ) -> tuple[list[datetime], int]:
    """Cron times in (after, until], oldest first, at most the newest MAX_SCAN of them; and
    how many older ones there were beyond that."""
    it = croniter(schedule.cron, _local(schedule, after))
    found: list[datetime] = []
    dropped = 0
    while True:
        at = it.get_next(datetime).astimezone(UTC)
        if at > until:
            return found, dropped
        found.append(at)
        if len(found) > MAX_SCAN:
            found.pop(0)
            dropped += 1


def jitter(agent: str, due_at: datetime, schedule: AgentSchedule) -> timedelta:
    """A fixed offset in [0, jitter_seconds) for this agent and due time: every process that
    looks computes the same one, so a restart never moves a run."""
    if schedule.jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{agent}\x1f{due_at.isoformat()}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:4], "big") % schedule.jitter_seconds)
