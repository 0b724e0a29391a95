"""The embedded offline production: metrics, change feed, clock and actuator over one SimState."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from opsloop.models import ActionResult, ActionStatus, RemediationAction
from opsloop.simulator import actions, flags, physics
from opsloop.simulator.scenarios import Scenario, get_scenario
from opsloop.simulator.state import SimState
from opsloop.simulator.telemetry import SimChangeFeed, SimMetrics
from opsloop.tools.backend import IdempotentActuator
from opsloop.tools.protocols import Production


class SimClock:
    """Simulated time: it moves only through `wait`, one physics tick per minute."""

    def __init__(self, state: SimState, saved: Callable[[], None],
                 before: Callable[[], None] = lambda: None) -> None:
        self.state = state
        self.saved = saved
        self.before = before  # runs before time moves (following a flag file)

    def now(self) -> datetime:
        return self.state.now()

    def wait(self, minutes: int) -> None:
        """Advance production `minutes` simulated minutes, one physics tick per minute."""
        if minutes < 0:
            raise ValueError(f"cannot wait a negative number of minutes ({minutes})")
        if minutes:
            self.before()
        for _ in range(minutes):
            physics.step(self.state)
        if minutes:
            self.saved()


class SimActuator(IdempotentActuator):
    """Actions change the simulated physics; results are kept in the state, saved with it."""

    def __init__(self, state: SimState, saved: Callable[[], None]) -> None:
        self.state = state
        self.saved = saved

    def _results(self) -> dict[str, ActionResult]:
        return self.state.executed

    def _stored(self, result: ActionResult) -> None:
        self.saved()  # the effect and its key are on disk before we return

    def _execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        status, undo = ActionStatus.SUCCEEDED, dict[str, Any]()
        try:
            detail, undo = actions.run(self.state, action)
        except actions.ActionError as exc:
            status, detail = ActionStatus.FAILED, str(exc)
        return ActionResult(
            action_id=action.id,
            action=action.describe(),
            idempotency_key=idempotency_key,
            status=status,
            detail=detail,
            at=self.state.now(),
            undo=undo,
        )

    def _revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        """Undo a reversible action that succeeded; SKIPPED when there is nothing to undo."""
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
        return ActionResult(
            action_id=result.action_id,
            action=f"revert {result.action}",
            idempotency_key=idempotency_key,
            status=status,
            detail=detail,
            at=self.state.now(),
        )


class SimEnvironment(Production):
    """Simulated production. Time moves only through `wait`; actions change the physics.

    With a `flag_file` (a team's flagd file), the file decides the simulated flags' state and
    percent: it is read before time moves, as flagd's file watcher would."""

    def __init__(self, state: SimState, autosave_path: str | Path | None = None,
                 flag_file: Path | None = None) -> None:
        self.autosave_path = Path(autosave_path) if autosave_path is not None else None
        self.flag_file = flag_file
        self.flag_file_problems: list[str] = []  # the last read's, when it was invalid
        self._state = state
        super().__init__(*self._parts(state))

    def _parts(self, state: SimState) -> tuple[SimMetrics, SimChangeFeed, SimClock, SimActuator]:
        return (SimMetrics(state), SimChangeFeed(state),
                SimClock(state, self._autosave, self.follow_flag_file),
                SimActuator(state, self._autosave))

    def follow_flag_file(self) -> None:
        """Bring the simulated flags in line with the flag file, when there is one."""
        if self.flag_file is not None:
            self.flag_file_problems = flags.follow(self._state, self.flag_file)

    @property
    def state(self) -> SimState:
        return self._state

    @state.setter
    def state(self, state: SimState) -> None:
        """Production over another state (a copy of a cached one): every part reads it."""
        self._state = state
        self.metrics, self.changes, self.clock, self.actuator = self._parts(state)

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
