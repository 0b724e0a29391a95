"""The safeguard: a Chaos Toolkit control that stops an experiment when a guard probe fails.

Declared in an experiment as a control (`provider.module: opsloop.chaos.safeguard`, the
guard probes under `provider.arguments.probes`, each a probe with a tolerance, and an
optional `interval` in seconds). While the method runs:

- after each method step, every guard probe is checked; the first one out of tolerance
  interrupts the run. Against the simulator with a manual clock, time moves only in the
  method's steps, so a fast burn that starts in a step is caught at its end: one interval;
- with `interval`, the probes are also checked every `interval` wall seconds in the
  background, so a trip during a long pause stops the run within one interval too (the
  engine's own graceful exit, SIGUSR1; only when the engine runs on the main thread, where
  its signal handlers are; elsewhere the step checks alone apply).

Either way the engine's rollbacks still run (its strategy is `always`). Only the first trip
acts. What tripped, and every check made, is written into the journal under `safeguard`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from chaoslib.exceptions import InterruptExecution
from chaoslib.exit import exit_gracefully

from opsloop.chaos import probes as probes_

METHOD_STEP = "method-step"  # the `probe` of a trip caused by a failed method step
INTERVAL_CHECK = "interval"  # the `after` of a trip found by the background check
MIN_INTERVAL_SECONDS = 0.05
_lock = threading.Lock()
_state: dict[str, Any] = {"armed": False, "checks": [], "tripped": None}
_stop = threading.Event()


def reset() -> None:
    _stop.set()
    with _lock:
        _state.update(armed=False, checks=[], tripped=None)


def before_method_control(context: Any, probes: list[dict[str, Any]],
                          interval: float | None = None, configuration: Any = None,
                          **_: Any) -> None:
    with _lock:
        _state.update(armed=True, checks=[], tripped=None)
    if interval and probes and threading.current_thread() is threading.main_thread():
        _stop.clear()
        threading.Thread(target=_watch, args=(probes, max(float(interval),
                                                          MIN_INTERVAL_SECONDS),
                                              configuration),
                         name="chaos-safeguard", daemon=True).start()


def after_method_control(context: Any, probes: list[dict[str, Any]], **_: Any) -> None:
    _stop.set()
    with _lock:
        _state["armed"] = False


def after_activity_control(context: dict[str, Any], state: Any, probes: list[dict[str, Any]],
                           configuration: Any = None, secrets: Any = None, **_: Any) -> None:
    """After each method activity: a step the target refused stops the run (Chaos Toolkit
    only warns on an HTTP error, so a method could "succeed" without its fault); then the
    guard probes run, and the first one out of tolerance interrupts."""
    with _lock:
        if not _state["armed"]:
            return
    refused = _refused(context, state)
    if refused is not None:
        if _trip(refused):
            raise InterruptExecution(f"method step {refused['after']} failed: "
                                     f"{refused['error']}")
        return
    check = _first_failure(probes, configuration, str(context.get("name", "")))
    if check is not None and _trip(check):
        raise InterruptExecution(
            f"safeguard {check['probe']} tripped after {check['after']}: "
            f"read {check['value'] if check['error'] is None else check['error']}, "
            "outside its tolerance")


def after_experiment_control(context: Any, state: Any, probes: list[dict[str, Any]],
                             **_: Any) -> None:
    """Keep what the safeguard saw with the run's journal."""
    _stop.set()
    with _lock:
        record = {"probes": [str(p.get("name", "")) for p in probes],
                  "checks": list(_state["checks"]), "tripped": _state["tripped"]}
        _state.update(armed=False, checks=[], tripped=None)
    if isinstance(state, dict):
        state["safeguard"] = record


def _watch(probes: list[dict[str, Any]], interval: float, configuration: Any) -> None:
    """The background check: every `interval` seconds while armed; a trip asks the engine
    to leave gracefully (rollbacks run). Loop bound: it ends when the method ends."""
    while not _stop.wait(interval):
        with _lock:
            if not _state["armed"]:
                return
        check = _first_failure(probes, configuration, INTERVAL_CHECK)
        if check is not None:
            with _lock:
                won = _state["armed"] and _state["tripped"] is None
                if won:
                    _state["tripped"], _state["armed"] = check, False
                    # Sent under the lock: after_method_control cannot disarm in between.
                    exit_gracefully()
            return


def _first_failure(probes: list[dict[str, Any]], configuration: Any, after: str
                   ) -> dict[str, Any] | None:
    for probe in probes:
        check = {**probes_.check(probe, configuration), "after": after,
                 "at": datetime.now(UTC).isoformat()}
        with _lock:
            _state["checks"].append(check)
        if not check["ok"]:
            return check
    return None


def _trip(check: dict[str, Any]) -> bool:
    """Record the first trip of this run; False when another check already tripped it."""
    with _lock:
        if not _state["armed"] or _state["tripped"] is not None:
            return False
        _state["tripped"], _state["armed"] = check, False
        return True


def _refused(context: dict[str, Any], state: Any) -> dict[str, Any] | None:
    """The check record of a method step that failed or that its target answered >= 400."""
    if not isinstance(state, dict):
        return None
    output = state.get("output")
    status = output.get("status") if isinstance(output, dict) else None
    if state.get("status") == "failed":
        error = "".join(state.get("exception") or []).strip() or "the engine marked it failed"
    elif isinstance(status, int) and status >= 400:
        body = output.get("body") if isinstance(output, dict) else None
        error = f"the target answered {status}: {body}"
    else:
        return None
    return {"probe": METHOD_STEP, "ok": False, "value": None, "error": error,
            "after": str(context.get("name", "")), "at": datetime.now(UTC).isoformat()}
