"""`run_chaos_experiment` as an action: the GameDay runs when the change path acts.

`GameDayActuator` takes that one action type and hands every other to the actuator it wraps.
It runs the named experiment with Chaos Toolkit against the HTTP target `serve()` opens
(the served simulator, or the in-process one served on loopback for the run), once per
idempotency key (results kept in `<state>/chaos/actions.json`, written before the caller
hears of them). The result is SUCCEEDED only when the engine ran the method, the rollbacks
all succeeded and the steady state was back after them: that is what verification needs.
Nothing is left to undo after: the rollbacks ran inside the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Protocol

from opsloop.chaos.engine import write_json
from opsloop.chaos.experiments import ExperimentError, find
from opsloop.chaos.gameday import Watcher, run_gameday
from opsloop.models import ActionResult, ActionStatus, RemediationAction

RUN_EXPERIMENT = "run_chaos_experiment"
LEARNED = ("held", "aborted", "deviated")  # outcomes where the method ran as written

Target = Callable[[], AbstractContextManager[str]]


class _Actuator(Protocol):
    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult: ...

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult: ...


class GameDayActuator:
    def __init__(self, rest: _Actuator, *, experiments_dir: Path, state_dir: Path,
                 reports_dir: Path, serve: Target | None, clock: Callable[[], datetime],
                 watch: Watcher | None = None) -> None:
        self.rest = rest
        self.experiments_dir = experiments_dir
        self.results_path = state_dir / "chaos" / "actions.json"
        self.state_dir = state_dir
        self.reports_dir = reports_dir
        self.serve = serve
        self.clock = clock
        self.watch = watch  # opsloop's own detection over the run, for the report

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        if action.type != RUN_EXPERIMENT:
            return self.rest.execute(action, idempotency_key)
        stored = self._results().get(idempotency_key)
        if stored is not None:
            return ActionResult.model_validate(stored).model_copy(update={"replayed": True})
        return self._keep(self._run(action, idempotency_key))

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        if not result.action.startswith(f"{RUN_EXPERIMENT}("):
            return self.rest.revert(result, idempotency_key)
        return self._result(result.action_id, f"revert {result.action}", idempotency_key,
                            ActionStatus.SKIPPED, "nothing to undo: the GameDay's rollbacks "
                                                  "ran inside the run")

    def _run(self, action: RemediationAction, key: str) -> ActionResult:
        def done(status: ActionStatus, detail: str) -> ActionResult:
            return self._result(action.id, action.describe(), key, status, detail)

        name = str(action.params.get("experiment", ""))
        try:
            experiment = find(self.experiments_dir, name)
        except ExperimentError as exc:
            return done(ActionStatus.FAILED, f"not run: {exc}")
        if action.service not in experiment.blast_radius.services:
            return done(ActionStatus.FAILED, f"not run: {name} targets "
                                             f"{', '.join(experiment.blast_radius.services)}, "
                                             f"not {action.service}")
        if self.serve is None:
            return done(ActionStatus.FAILED, "not run: this production has no HTTP target for "
                                             "Chaos Toolkit (serve it with opsloop sim-serve)")
        # Named by experiment, unique per key: the same start replayed is the same run.
        run_id = f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        started = self.clock()
        with self.serve() as url:
            report = run_gameday(experiment, url, state_dir=self.state_dir,
                                 reports_dir=self.reports_dir, run_id=run_id, started_at=started,
                                 watch=self.watch)
        ok = report.outcome in LEARNED and report.rollbacks_ok and report.recovered
        page = self.reports_dir / f"gameday-{run_id}.md"
        return done(ActionStatus.SUCCEEDED if ok else ActionStatus.FAILED,
                    f"GameDay {name}: {report.outcome}, score {report.score:.2f}, rollbacks "
                    f"{'done' if report.rollbacks_ok else 'NOT done'}, steady state "
                    f"{'back' if report.recovered else 'NOT back'} after them; report {page}")

    def _result(self, action_id: str, what: str, key: str, status: ActionStatus,
                detail: str) -> ActionResult:
        return ActionResult(action_id=action_id, action=what, idempotency_key=key,
                            status=status, detail=detail, at=self.clock())

    def _results(self) -> dict[str, object]:
        try:
            loaded: dict[str, object] = json.loads(self.results_path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        return loaded

    def _keep(self, result: ActionResult) -> ActionResult:
        write_json(self.results_path, {**self._results(),
                                       result.idempotency_key: result.model_dump(mode="json")})
        return result
