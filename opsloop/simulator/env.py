"""The embedded offline production: a Clock, Telemetry and Actuator over one SimState."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.models import (
    ActionResult,
    ActionStatus,
    ChaosExperiment,
    DeployEvent,
    FlagChange,
    FlagState,
    LogLine,
    MetricPoint,
    MetricSeries,
    RemediationAction,
    ServiceInfo,
)
from opsloop.models.catalog import METRICS
from opsloop.simulator import actions, physics
from opsloop.simulator.scenarios import Scenario, get_scenario
from opsloop.simulator.state import SimState, tick_time


class SimEnvironment:
    """Simulated production. Time moves only through `wait`; actions change the physics."""

    def __init__(self, state: SimState, autosave_path: str | Path | None = None) -> None:
        self.state = state
        self.autosave_path = Path(autosave_path) if autosave_path is not None else None

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def create(
        cls, scenario_name: str, seed: int = 7, autosave_path: str | Path | None = None
    ) -> SimEnvironment:
        """A fresh environment at 09:00 with the scenario's history already simulated."""
        env = cls(get_scenario(scenario_name).build(seed), autosave_path)
        env._autosave()
        return env

    @classmethod
    def load(cls, path: str | Path, autosave_path: str | Path | None = None) -> SimEnvironment:
        """Resume a saved environment; pass `autosave_path=path` to keep saving to it."""
        return cls(SimState.load(path), autosave_path)

    def save(self, path: str | Path) -> None:
        self.state.save(path)

    @property
    def scenario(self) -> Scenario:
        return get_scenario(self.state.scenario)

    def _autosave(self) -> None:
        if self.autosave_path is not None:
            self.state.save(self.autosave_path)

    # -- Clock -----------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.state.now()

    def wait(self, minutes: int) -> None:
        """Advance production `minutes` simulated minutes, one physics tick per minute."""
        if minutes < 0:
            raise ValueError(f"cannot wait a negative number of minutes ({minutes})")
        for _ in range(minutes):
            physics.step(self.state)
        if minutes:
            self._autosave()

    # -- Telemetry -------------------------------------------------------------------------

    def _service(self, service: str) -> None:
        if service not in self.state.services:
            raise KeyError(
                f"unknown service {service!r}; services: {', '.join(self.state.services)}"
            )

    def _values(self, service: str, metric: str) -> list[float]:
        self._service(service)
        if metric not in METRICS:
            raise KeyError(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
        return self.state.series.get(service, {}).get(metric, [])

    def services(self) -> list[ServiceInfo]:
        infos = []
        for svc in self.state.services.values():
            deps = [c.callee for c in svc.calls]
            if svc.external_dependency:
                deps.append(svc.external_dependency)  # external: it has no telemetry of its own
            infos.append(
                ServiceInfo(
                    name=svc.name,
                    tier=svc.tier,
                    dependencies=deps,
                    replicas=svc.replicas,
                    version=svc.version,
                    region=svc.region,
                    team=svc.team,
                )
            )
        return infos

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        """The last `minutes` one-minute points, oldest first, the newest at now()."""
        values = self._values(service, metric)
        count = min(max(minutes, 0), len(values))
        first = self.state.tick - count + 1
        start = tick_time(first)
        # model_construct: these values come from our own state, and evaluators pull thousands.
        points = [
            MetricPoint.model_construct(at=start + timedelta(minutes=i), value=v)
            for i, v in enumerate(values[len(values) - count :])
        ]
        return MetricSeries.model_construct(service=service, metric=metric, points=points)

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        """Mean over the last `minutes`; for error_ratio, unrecorded minutes count at the prior.

        This answers long SLO windows (28 days) from a few hours of simulated history.
        """
        if minutes < 1:
            raise ValueError(f"minutes must be at least 1, got {minutes}")
        values = self._values(service, metric)
        if minutes <= len(values):
            return sum(values[-minutes:]) / minutes
        if metric == "error_ratio":
            prior = self.state.services[service].prior_error_ratio
            return (sum(values) + prior * (minutes - len(values))) / minutes
        return sum(values) / len(values) if values else None

    def logs(
        self, service: str, minutes: int, pattern: str | None = None, limit: int = 200
    ) -> list[LogLine]:
        """Lines from the last `minutes`, oldest first; `pattern` is a case-insensitive regex."""
        self._service(service)
        since = self.state.tick - minutes
        regex = None
        if pattern:
            try:
                regex = re.compile(pattern, re.IGNORECASE)
            except re.error:  # not a regex: search for the literal text instead
                regex = re.compile(re.escape(pattern), re.IGNORECASE)
        picked = [
            (tick, level, message)
            for tick, level, message in self.state.logs.get(service, [])
            if tick > since and (regex is None or regex.search(message))
        ]
        picked = picked[-limit:] if limit > 0 else []
        return [
            LogLine(at=tick_time(t), service=service, level=lvl, message=msg)
            for t, lvl, msg in picked
        ]

    def _since(self, minutes: int) -> datetime:
        return self.now() - timedelta(minutes=minutes)

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]:
        if service is not None:
            self._service(service)
        since = self._since(minutes)
        return [
            d.model_copy()
            for d in self.state.deploys
            if d.at > since and (service is None or d.service == service)
        ]

    def flags(self, service: str | None = None) -> list[FlagState]:
        if service is not None:
            self._service(service)
        return [
            FlagState(
                key=f.key,
                service=f.service,
                enabled=f.enabled,
                rollout_percent=f.rollout_percent,
                updated_at=tick_time(f.updated_tick),
                owner=f.owner,
            )
            for f in self.state.flags
            if service is None or f.service == service
        ]

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        if service is not None:
            self._service(service)
        since = self._since(minutes)
        return [
            c.model_copy()
            for c in self.state.flag_changes
            if c.at > since and (service is None or c.service == service)
        ]

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]:
        if service is not None:
            self._service(service)
        return [
            r.experiment.model_copy(deep=True)
            for r in self.state.experiments
            if service is None or r.experiment.target_service == service
        ]

    # -- Actuator --------------------------------------------------------------------------

    def _finish(self, result: ActionResult) -> ActionResult:
        self.state.executed[result.idempotency_key] = result
        self._autosave()  # the effect and its key are on disk before we return
        return result.model_copy(deep=True)

    def _replay(self, key: str) -> ActionResult | None:
        stored = self.state.executed.get(key)
        return stored.model_copy(deep=True, update={"replayed": True}) if stored else None

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        """Run an action once per key; a repeated key returns the stored result, replayed."""
        if (replay := self._replay(idempotency_key)) is not None:
            return replay
        status, undo = ActionStatus.SUCCEEDED, dict[str, Any]()
        try:
            detail, undo = actions.run(self.state, action)
        except actions.ActionError as exc:
            status, detail = ActionStatus.FAILED, str(exc)
        return self._finish(
            ActionResult(
                action_id=action.id,
                action=action.describe(),
                idempotency_key=idempotency_key,
                status=status,
                detail=detail,
                at=self.now(),
                undo=undo,
            )
        )

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        """Undo a reversible action that succeeded; SKIPPED when there is nothing to undo."""
        if (replay := self._replay(idempotency_key)) is not None:
            return replay
        status = ActionStatus.SKIPPED
        earlier = self.state.reverted.get(result.idempotency_key)
        if result.status is not ActionStatus.SUCCEEDED:
            detail = f"nothing to revert: {result.action} did not succeed ({result.status.value})"
        elif earlier is not None:
            detail = f"{result.action} was already reverted (key {earlier})"
        elif not result.undo:
            detail = f"{result.action} is not reversible"
        else:
            try:
                detail = actions.undo(self.state, result.undo)
                status = ActionStatus.SUCCEEDED
                self.state.reverted[result.idempotency_key] = idempotency_key
            except (actions.ActionError, KeyError, ValueError) as exc:
                status, detail = ActionStatus.FAILED, f"revert failed: {exc}"
        return self._finish(
            ActionResult(
                action_id=result.action_id,
                action=f"revert {result.action}",
                idempotency_key=idempotency_key,
                status=status,
                detail=detail,
                at=self.now(),
            )
        )
