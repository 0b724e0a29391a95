"""The narrow protocols agents work through, and the production object that composes them.

Production is four parts, each a protocol a backend implements: `Metrics` (series and
window averages), `ChangeFeed` (the catalog and what changed: logs, deploys, flags,
experiments), `Clock` and `Actuator`. `Production` composes one of each and owns `close()`;
a wrapper swaps the one part it changes (`Production.swap`) instead of forwarding the rest.
A fifth part is optional: `FlagFeed`, where flags are read from when they live apart from
the rest of production (a team's flagd file, opsloop.rollouts.source.FileFlagSource).
"""

from __future__ import annotations

from collections.abc import Callable
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


class Metrics(Protocol):
    """Per-minute series of one service's metric. Raise KeyError for unknown names."""

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        """The last `minutes` of one metric, oldest first."""
        ...

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        """Mean over the last `minutes` (SLO windows may reach far past recent series)."""
        ...


class ChangeFeed(Protocol):
    """The service catalog and what happened to it: logs, deploys, flags, experiments."""

    def services(self) -> list[ServiceInfo]: ...

    def logs(
        self, service: str, minutes: int, pattern: str | None = None, limit: int = 200
    ) -> list[LogLine]: ...

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]: ...

    def flags(self, service: str | None = None) -> list[FlagState]: ...

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]: ...

    def variant_counts(self, service: str, flag: str,
                       minutes: int) -> dict[str, dict[str, int]]:
        """`{variant: {"requests": n, "errors": n, "conversions": n}}` of one flag over the
        last `minutes`; KeyError (saying why) for an unknown service or flag, or when nothing
        was recorded."""
        ...

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]: ...

    def releases(self, service: str) -> list[str]:
        """Versions of `service` that exist (deployed or published), oldest first."""
        ...

    def sbom(self, service: str, version: str | None = None) -> dict[str, Any]:
        """The CycloneDX JSON SBOM of one release of `service` (default: the running one);
        KeyError, saying why, for an unknown service or release or where none is published."""
        ...


class FlagFeed(Protocol):
    """Flags and their changes, where they live apart from the rest of the change feed."""

    def flags(self, service: str | None = None) -> list[FlagState]: ...

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]: ...


class Telemetry(Metrics, ChangeFeed, Protocol):
    """Both read sides, for readers that need both (the toolbox, severity's impact).
    `Production` provides it; nothing needs to implement it by hand."""


class Actuator(Protocol):
    """Changes production. Implementations must be idempotent per key."""

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult: ...

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult: ...


class Production:
    """What the loop runs an incident against: metrics, a change feed, a clock and an actuator.

    The composed object is itself a `Telemetry`, `Clock` and `Actuator`: each call goes to
    the part that owns it, so this is the one place that forwards. `close()` releases what
    the parts hold open (connections), once, whichever view of it is closed.
    """

    def __init__(self, metrics: Metrics, changes: ChangeFeed, clock: Clock, actuator: Actuator,
                 closers: list[Callable[[], None]] | None = None,
                 flag_feed: FlagFeed | None = None) -> None:
        self.metrics = metrics
        self.changes = changes
        self.clock = clock
        self.actuator = actuator
        self.flag_feed = flag_feed  # None: flags come from the change feed
        self._closers = closers if closers is not None else []

    def swap(self, *, metrics: Metrics | None = None, changes: ChangeFeed | None = None,
             clock: Clock | None = None, actuator: Actuator | None = None) -> Production:
        """The same production with some parts replaced (a mask over the metrics, a recorder
        on the actuator); it shares this one's connections and closes them with it."""
        return Production(
            metrics=self.metrics if metrics is None else metrics,
            changes=self.changes if changes is None else changes,
            clock=self.clock if clock is None else clock,
            actuator=self.actuator if actuator is None else actuator,
            closers=self._closers,
            flag_feed=self.flag_feed,
        )

    def close(self) -> None:
        while self._closers:  # a shared list: a second close, of any view, finds it empty
            self._closers.pop()()

    # Metrics
    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        return self.metrics.metric(service, metric, minutes)

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        return self.metrics.average(service, metric, minutes)

    # ChangeFeed
    def services(self) -> list[ServiceInfo]:
        return self.changes.services()

    def logs(self, service: str, minutes: int, pattern: str | None = None,
             limit: int = 200) -> list[LogLine]:
        return self.changes.logs(service, minutes, pattern, limit)

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]:
        return self.changes.deploys(service, minutes)

    def flags(self, service: str | None = None) -> list[FlagState]:
        return (self.flag_feed or self.changes).flags(service)

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        return (self.flag_feed or self.changes).flag_changes(service, minutes)

    def variant_counts(self, service: str, flag: str,
                       minutes: int) -> dict[str, dict[str, int]]:
        return self.changes.variant_counts(service, flag, minutes)

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]:
        return self.changes.experiments(service)

    def releases(self, service: str) -> list[str]:
        return self.changes.releases(service)

    def sbom(self, service: str, version: str | None = None) -> dict[str, Any]:
        return self.changes.sbom(service, version)

    # Clock
    def now(self) -> datetime:
        return self.clock.now()

    def wait(self, minutes: int) -> None:
        self.clock.wait(minutes)

    # Actuator
    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        return self.actuator.execute(action, idempotency_key)

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        return self.actuator.revert(result, idempotency_key)


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
