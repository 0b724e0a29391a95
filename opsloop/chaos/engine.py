"""Run one experiment with Chaos Toolkit's engine (`chaoslib`) against an HTTP target.

The engine does the work: steady-state hypothesis before, the method, the hypothesis after,
then the rollbacks, which run whatever happened (`rollbacks.strategy: always`). Around it
opsloop records a timeline (each step stamped with wall time and, when the target serves
`/api/clock` like `opsloop sim-serve`, its clock's minute), measures the hypothesis once
more when the fault is at its height (as the rollbacks start) and once after them (did it
recover), and keeps the journal, the engine's log and the timeline in the run's folder.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from chaoslib.run import RunEventHandler, Runner
from chaoslib.types import Schedule, Strategy

from opsloop.chaos import probes, safeguard
from opsloop.chaos.experiments import Experiment

ENGINE_SETTINGS: dict[str, Any] = {"runtime": {"rollbacks": {"strategy": "always"}}}
# chaoslib keeps controls in module globals: one experiment at a time per process.
_one_at_a_time = threading.Lock()


def run_experiment(experiment: Experiment, target_url: str, run_dir: Path,
                   run_id: str) -> dict[str, Any]:
    """Run `experiment` against `target_url`; the journal (with opsloop's timeline under
    `opsloop`) is written to `run_dir/journal.json` and returned."""
    run_dir.mkdir(parents=True, exist_ok=True)
    variables = {"target_url": target_url.rstrip("/"), "run_id": run_id}
    recorder = _Recorder(target_url)
    with _one_at_a_time, _EngineLog(run_dir / "chaostoolkit.log"):
        safeguard.reset()
        runner = _Runner(Strategy.DEFAULT, Schedule())
        runner.register_event_handler(recorder)
        document = with_safeguard(json.loads(json.dumps(experiment.document)))
        try:
            journal: dict[str, Any] = runner.run(document, settings=ENGINE_SETTINGS,
                                                 experiment_vars=(variables, {}))
        finally:
            safeguard.reset()  # no background check outlives the run (nor its signal)
        after = steady_state(experiment, target_url, run_id)
    recorder.stamp("recovery_checked")
    journal["opsloop"] = {"run_id": run_id, "experiment": experiment.name,
                          "target_url": target_url, "timeline": recorder.timeline,
                          "under_fault": recorder.under_fault, "after_rollbacks": after}
    write_json(run_dir / "journal.json", journal)
    return journal


def with_safeguard(document: dict[str, Any]) -> dict[str, Any]:
    """Every run has the safeguard control (with no guard probes when the experiment names
    none): a method step its target refused must stop the run, not pass as done."""
    controls = document.setdefault("controls", [])
    if not any((c.get("provider") or {}).get("module") == safeguard.__name__ for c in controls):
        controls.append({"name": "opsloop-safeguard", "provider": {
            "type": "python", "module": safeguard.__name__, "arguments": {"probes": []}}})
    return document


def steady_state(experiment: Experiment, target_url: str, run_id: str = "check"
                 ) -> dict[str, Any]:
    """Every steady-state probe of `experiment`, checked against `target_url` now."""
    return probes.hypothesis(experiment.document, {"target_url": target_url.rstrip("/"),
                                                   "run_id": run_id})


class _Runner(Runner):
    """The engine's runner; off the main thread it cannot install its signal handlers (only
    used for SIGUSR exits, which opsloop never sends), so it runs without them there."""

    def run(self, experiment: dict[str, Any], settings: Any = None,
            experiment_vars: Any = None, journal: Any = None) -> dict[str, Any]:
        if threading.current_thread() is threading.main_thread():
            result: dict[str, Any] = super().run(experiment, settings, experiment_vars, journal)
            return result
        self.configure(experiment, settings, experiment_vars)
        result = self._run(self.strategy, self.schedule, experiment, journal, self.config,
                           self.secrets, self.settings, self.event_registry)
        return result


class _Recorder(RunEventHandler):
    """Stamps each step of the run, and measures the hypothesis as the rollbacks start."""

    def __init__(self, target_url: str) -> None:
        self.target_url = target_url.rstrip("/")
        self.timeline: list[dict[str, Any]] = []
        self.under_fault: dict[str, Any] | None = None
        self.configuration: Any = None
        self.secrets: Any = None
        self.phase = "before"

    def stamp(self, event: str, **details: Any) -> None:
        self.timeline.append({"event": event, "phase": self.phase, "wall": time.time(),
                              "minute": target_minute(self.target_url), **details})

    def running(self, experiment: Any, journal: Any, configuration: Any, secrets: Any,
                schedule: Any, settings: Any) -> None:
        self.configuration, self.secrets = configuration, secrets
        self.stamp("started")

    def start_method(self, experiment: Any) -> None:
        self.phase = "method"
        self.stamp("method_started")

    def activity_completed(self, activity: Any, run: Any) -> None:
        self.stamp("activity", name=str(activity.get("name", "")),
                   type=str(activity.get("type", "")), status=str(run.get("status", "")))

    def start_hypothesis_after(self, experiment: Any) -> None:
        self.phase = "hypothesis_after"

    def start_rollbacks(self, experiment: Any) -> None:
        self.phase = "under_fault"
        self.stamp("rollbacks_started")
        self.under_fault = probes.hypothesis(experiment, dict(self.configuration or {}))
        self.phase = "rollbacks"

    def rollbacks_completed(self, experiment: Any, journal: Any) -> None:
        self.stamp("rollbacks_completed")
        self.phase = "after"


def target_minute(target_url: str) -> int | None:
    """The target's clock in minutes, when it tells one (`opsloop sim-serve`); else None."""
    try:
        reply = requests.get(f"{target_url.rstrip('/')}/api/clock", timeout=2)
        tick = reply.json().get("tick") if reply.ok else None
    except (requests.RequestException, ValueError, AttributeError):
        return None
    return tick if isinstance(tick, int) and not isinstance(tick, bool) else None


def write_json(path: Path, data: Any) -> None:
    """Atomically: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _EngineLog:
    """The engine's log goes to the run's folder, not to the operator's terminal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logger = logging.getLogger("chaostoolkit")
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def __enter__(self) -> None:
        self.saved = (self.logger.level, self.logger.propagate)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
        self.logger.level, self.logger.propagate = self.saved
