"""Run the real `opsloop` in a subprocess, kill it (-9), recover, and check what it left.

Shared by the crash and race suites. The invariants are the operate loop's promises after
any death: every incident finished or waiting for a human (and then listed), every action
ran at most once, no notification went out twice, a verification window was waited once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsloop.simulator import SimEnvironment


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPSLOOP_LLM_", "OPSLOOP_CRASH_"))}
    env["OPSLOOP_TESTING"] = "1"
    env.update(extra)
    return env


def command(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "opsloop", *args, "--work-dir", str(work)]


def run(work: Path, *args: str, crash_at: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    extra = {"OPSLOOP_CRASH_AT": crash_at} if crash_at else {}
    return subprocess.run(command(work, *args), capture_output=True, text=True,
                          timeout=timeout, check=False, env=child_env(**extra))


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@dataclass
class Findings:
    incidents: int = 0
    finished: int = 0
    waiting: int = 0
    actions: int = 0
    problems: list[str] = field(default_factory=list)


def sim_of(work: Path, environment: str) -> SimEnvironment:
    return SimEnvironment.load(work / "environments" / f"{environment.removeprefix('sim:')}.json")


def check_invariants(work: Path, *, exact_learn: bool = True) -> Findings:
    """What the work dir holds after recovery, and every broken promise in it."""
    found = Findings()
    listed = as_json(run(work, "incidents", "--json"))
    waiting_for = {w["incident_id"] for w in as_json(run(work, "approvals", "--json"))}
    notifications = work / "notifications.jsonl"
    keys = [json.loads(line).get("key") for line in
            (notifications.read_text().splitlines() if notifications.exists() else [])]
    keys = [k for k in keys if k]
    doubled = {k for k in keys if keys.count(k) > 1}
    if doubled:
        found.problems.append(f"notifications sent twice: {sorted(doubled)}")
    environments: dict[str, list[dict[str, Any]]] = {}
    for brief in listed:
        found.incidents += 1
        shown = as_json(run(work, "show", brief["id"], "--json"))
        incident, audit = shown["incident"], shown["audit"]
        environments.setdefault(incident["environment"], []).append(incident)
        status = incident["status"]
        if status == "open":
            found.problems.append(f"{incident['id']} left open")
        elif status == "awaiting_approval":
            found.waiting += 1
            if incident["id"] not in waiting_for:
                found.problems.append(f"{incident['id']} waits but no approval is listed")
        else:
            found.finished += 1
            closed = sum(1 for a in audit if a["kind"] == "closed")
            if closed == 0 or (exact_learn and closed > 1):
                found.problems.append(f"{incident['id']} learn ran {closed} times")
        verification = incident.get("verification")
        results = [c["result"] for c in incident["actions"] if c["result"]]
        succeeded = [r for r in results if r["status"] == "succeeded"]
        if verification and succeeded:
            from datetime import datetime
            acted = max(datetime.fromisoformat(r["at"]) for r in succeeded)
            waited = (datetime.fromisoformat(verification["at"]) - acted).total_seconds() / 60
            if waited != verification["window_minutes"]:
                found.problems.append(f"{incident['id']} waited {waited:g} min for a "
                                      f"{verification['window_minutes']} min window")
    for environment, incidents in environments.items():
        executed = [k for k in sim_of(work, environment).state.executed
                    if not k.startswith("revert:")]
        action_ids = {c["result"]["action_id"] for i in incidents for c in i["actions"]
                      if c["result"]}
        found.actions += len(executed)
        # One key per action id: an action run under a second key would be a second run.
        if len(executed) != len({k.rsplit(":", 1)[0] for k in executed}):
            found.problems.append(f"{environment}: an action ran under two keys: {executed}")
        if len(executed) > len(action_ids) and action_ids:
            found.problems.append(f"{environment}: {len(executed)} executions for "
                                  f"{len(action_ids)} actions")
    return found
