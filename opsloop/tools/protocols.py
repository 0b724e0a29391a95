"""The small protocols agents work through; each has a simulator backend and, later, real ones."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from opsloop.models import (
    ActionResult,
    ChaosExperiment,
    DeployEvent,
    FlagChange,
    FlagState,
    LogLine,
    MetricSeries,
    RemediationAction,
    ServiceInfo,
)
from opsloop.runbooks.format import Runbook


class Clock(Protocol):
    """The environment's time. In the simulator, waiting advances simulated production."""

    def now(self) -> datetime: ...

    def wait(self, minutes: int) -> None: ...


class Telemetry(Protocol):
    """Read-only view of production."""

    def services(self) -> list[ServiceInfo]: ...

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        """The last `minutes` of one metric, oldest first. Raises KeyError for unknown names."""
        ...

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        """Mean over the last `minutes` (SLO windows may reach far past recent series)."""
        ...

    def logs(
        self, service: str, minutes: int, pattern: str | None = None, limit: int = 200
    ) -> list[LogLine]: ...

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]: ...

    def flags(self, service: str | None = None) -> list[FlagState]: ...

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]: ...

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]: ...


class Actuator(Protocol):
    """Changes production. Implementations must be idempotent per key."""

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult: ...

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult: ...


class Notifier(Protocol):
    def notify(self, channel: str, message: str, data: dict[str, Any],
               key: str | None = None) -> str:
        """Send a notification once per `key` (None: every time); return where it went."""
        ...


class RunbookHit(BaseModel):
    """One runbook a search found, and how well it matched."""

    runbook_id: str
    title: str
    specialist: str  # "" for runbooks no specialist follows (written elsewhere)
    score: float = Field(ge=0.0, le=1.0)
    section: str
    file: str
    matched_alerts: list[str] = Field(default_factory=list)
    confident: bool = True  # score reaches the no-match threshold
    vector: float = 0.0  # the fused parts, for people tuning retrieval
    lexical: float = 0.0


class RunbookIndex(Protocol):
    """Runbook retrieval: the agents' only way to the runbooks."""

    def search(self, query: str, k: int = 5, specialist: str | None = None) -> list[RunbookHit]:
        """Best-matching runbooks first; `specialist` restricts to that specialist's."""
        ...

    def get(self, runbook_id: str) -> Runbook: ...

    def runbooks(self) -> list[Runbook]: ...
