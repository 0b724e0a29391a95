"""One probe checked against its tolerance, with the engine's own activity and tolerance code."""

from __future__ import annotations

import copy
from typing import Any

import requests
from chaoslib.activity import run_activity
from chaoslib.exceptions import ChaosException
from chaoslib.hypothesis import within_tolerance

from opsloop.chaos.tolerances import reading


def check(probe: dict[str, Any], configuration: dict[str, Any] | None) -> dict[str, Any]:
    """`{"probe", "ok", "value", "error"}`; a probe that cannot run is not ok (never raises
    for a failed reading: a guard that errors must count as tripped, not as passed)."""
    probe = copy.deepcopy(probe)  # a `probe` tolerance is handed the value in place
    name = str(probe.get("name", ""))
    try:
        output = run_activity(probe, configuration or {}, {})
        tolerance = probe.get("tolerance")
        ok = True if tolerance is None else bool(
            within_tolerance(tolerance, output, configuration or {}, {}))
    except (ChaosException, requests.RequestException, KeyError, TypeError) as exc:
        return {"probe": name, "ok": False, "value": None, "error": str(exc)}
    return {"probe": name, "ok": ok, "value": reading(output), "error": None}


def hypothesis(document: dict[str, Any], configuration: dict[str, Any]) -> dict[str, Any]:
    """Every steady-state probe checked now (all of them: the engine stops at the first
    failure, a score needs each); `met` when every one is within its tolerance."""
    probes = (document.get("steady-state-hypothesis") or {}).get("probes") or []
    checks = [check(p, configuration) for p in probes if isinstance(p, dict)]
    return {"met": bool(checks) and all(c["ok"] for c in checks), "probes": checks}
