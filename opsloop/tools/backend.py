"""What production backends share: name checks, the service and time window of a change feed,
log patterns, the idempotent actuator, and the parts of a production opsloop only watches."""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from opsloop.models import ActionResult, ActionStatus, RemediationAction
from opsloop.models.catalog import METRICS


def check_service(service: str, known: Collection[str]) -> None:
    """KeyError naming the known services, the protocols' way of saying "no such service"."""
    if service not in known:
        raise KeyError(f"unknown service {service!r}; services: {', '.join(known)}")


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")


class _Stamped(Protocol):
    @property
    def at(self) -> datetime: ...

    @property
    def service(self) -> str: ...


Stamped = TypeVar("Stamped", bound=_Stamped)


def within(records: Iterable[Stamped], now: datetime, minutes: int,
           service: str | None = None) -> list[Stamped]:
    """The records of the last `minutes` up to `now` (none from later), of `service` if named."""
    since = now - timedelta(minutes=minutes)
    return [r for r in records
            if since < r.at <= now and (service is None or r.service == service)]


def log_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """A case-insensitive regex; text that is not a regex is searched for literally."""
    if not pattern:
        return None
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(pattern), re.IGNORECASE)


class IdempotentActuator(ABC):
    """An actuator that does each idempotency key's work once: a repeated key is answered
    with the stored result, marked replayed. Subclasses say what executing and reverting do
    and where the results are kept."""

    @abstractmethod
    def _results(self) -> dict[str, ActionResult]:
        """Results by idempotency key (kept with the backend's state, when it persists)."""

    @abstractmethod
    def _execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult: ...

    @abstractmethod
    def _revert(self, result: ActionResult, idempotency_key: str) -> ActionResult: ...

    def _stored(self, result: ActionResult) -> None:
        """Called once a new result is kept; a persistent backend saves itself here."""
        return None

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        """Run an action once per key; a repeated key returns the stored result, replayed."""
        replay = self._replay(idempotency_key)
        if replay is not None:
            return replay
        return self._finish(self._execute(action, idempotency_key))

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        """Undo an earlier result once per key; a repeated key returns the stored answer."""
        replay = self._replay(idempotency_key)
        if replay is not None:
            return replay
        return self._finish(self._revert(result, idempotency_key))

    def _replay(self, key: str) -> ActionResult | None:
        stored = self._results().get(key)
        return stored.model_copy(deep=True, update={"replayed": True}) if stored else None

    def _finish(self, result: ActionResult) -> ActionResult:
        self._results()[result.idempotency_key] = result
        self._stored(result)  # the effect and its key are kept before the caller hears of it
        return result.model_copy(deep=True)


class WallClock:
    """Real time, for production outside a simulation."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, minutes: int) -> None:
        if minutes < 0:
            raise ValueError(f"cannot wait a negative number of minutes ({minutes})")
        time.sleep(minutes * 60)


class ReadOnlyActuator:
    """The actuator of a production opsloop may watch but not change: nothing runs."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        return ActionResult(action_id=action.id, action=action.describe(),
                            idempotency_key=idempotency_key, status=ActionStatus.FAILED,
                            detail=f"not run: {self.reason}", at=datetime.now(UTC))

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        return ActionResult(action_id=result.action_id, action=f"revert {result.action}",
                            idempotency_key=idempotency_key, status=ActionStatus.SKIPPED,
                            detail=f"not reverted: {self.reason}", at=datetime.now(UTC))
