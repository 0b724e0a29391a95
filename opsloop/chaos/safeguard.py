"""The safeguard: a Chaos Toolkit control that stops an experiment when a guard probe fails.

Declared in an experiment as a control (`provider.module: opsloop.chaos.safeguard`, the
guard probes under `provider.arguments.probes`, each a probe with a tolerance). While the
method runs, every guard probe is checked after each method activity; the first one out of
tolerance interrupts the run (the engine's rollbacks still run: its strategy is `always`).
Against the simulator, time moves only in the method's steps, so a fast burn that starts
in a step is caught at the end of that step: within one interval.

What tripped (and every check made) is written into the journal under `safeguard`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from chaoslib.exceptions import InterruptExecution

from opsloop.chaos import probes as probes_

METHOD_STEP = "method-step"  # the `probe` of a trip caused by a failed method step
_lock = threading.Lock()
_state: dict[str, Any] = {"armed": False, "checks": [], "tripped": None}


def reset() -> None:
    with _lock:
        _state.update(armed=False, checks=[], tripped=None)


def before_method_control(context: Any, probes: list[dict[str, Any]], **_: Any) -> None:
    with _lock:
        _state.update(armed=True, checks=[], tripped=None)


def after_method_control(context: Any, probes: list[dict[str, Any]], **_: Any) -> None:
    with _lock:
        _state["armed"] = False


def after_activity_control(context: dict[str, Any], state: Any, probes: list[dict[str, Any]],
                           configuration: Any = None, secrets: Any = None, **_: Any) -> None:
    """After each method activity: a step the target refused stops the run (Chaos Toolkit
    only warns on an HTTP error, so a method could "succeed" without its fault); then the
    guard probes run, and the first one out of tolerance interrupts."""
    with _lock:
        if not _state["armed"] or _state["tripped"] is not None:
            return
    refused = _refused(context, state)
    if refused is not None:
        with _lock:
            _state["tripped"] = refused
            _state["armed"] = False
        raise InterruptExecution(f"method step {refused['after']} failed: {refused['error']}")
    for probe in probes:
        check = {**probes_.check(probe, configuration), "after": str(context.get("name", "")),
                 "at": datetime.now(UTC).isoformat()}
        ok = bool(check["ok"])
        with _lock:
            _state["checks"].append(check)
            if not ok:
                _state["tripped"] = check
                _state["armed"] = False
        if not ok:
            raise InterruptExecution(
                f"safeguard {check['probe']} tripped after {check['after']}: "
                f"read {check['value'] if check['error'] is None else check['error']}, "
                "outside its tolerance")


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


def after_experiment_control(context: Any, state: Any, probes: list[dict[str, Any]],
                             **_: Any) -> None:
    """Keep what the safeguard saw with the run's journal."""
    with _lock:
        record = {"probes": [str(p.get("name", "")) for p in probes],
                  "checks": list(_state["checks"]), "tripped": _state["tripped"]}
        _state.update(armed=False, checks=[], tripped=None)
    if isinstance(state, dict):
        state["safeguard"] = record
