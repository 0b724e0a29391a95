"""The crash suite: kill -9 the real process at seeded points across every step of the loop,
during `demo` (auto-remediation with notifications) and `approve`, and at seeded random
moments; recover with `opsloop resume --all`; then every promise must hold.

Run alone with `-s` to see the figures: kills, recovered, problems.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from crash_harness import as_json, check_invariants, child_env, command, run

pytestmark = pytest.mark.slow

SEED = 20261130
KILLED = -signal.SIGKILL
# A SEV2 auto-remediation: notifies, acts, verifies, drafts a postmortem.
AUTO_SCENARIO = "flag_rollout_errors"
# A SEV1 that waits for a human; the approval then acts, verifies and learns.
APPROVAL_SCENARIO = "bad_deploy"


def _points(rng: random.Random, checkpoints: int, *named: str) -> list[str]:
    """The named points, and four of the run's first `checkpoints` checkpoint writes."""
    picked = sorted(rng.sample(range(1, checkpoints + 1), min(4, checkpoints)))
    return [*named, *(f"checkpoint.saved#{n}" for n in picked)]


def _recover_and_check(work: Path, label: str, report: list[str]) -> None:
    recovered = run(work, "resume", "--all", "--json")
    assert recovered.returncode == 0, f"{label}: {recovered.stderr}"
    findings = check_invariants(work)
    report.append(f"{label}: {findings.incidents} incident(s), {findings.finished} finished, "
                  f"{findings.waiting} waiting, {findings.actions} action(s) "
                  f"-> {len(as_json(recovered))} resumed")
    assert not findings.problems, f"{label}: {findings.problems}"
    assert findings.incidents >= 1 and findings.finished + findings.waiting == findings.incidents


def test_kill_during_auto_remediation_at_every_step(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    points = _points(rng, 9, "start.saved", "act.executed", "notify.recorded", "notify.written",
                     "verify.waited", "learn.drafted", "run.invoked")
    report: list[str] = []
    for point in points:
        work = tmp_path / point.replace("#", "-")
        died = run(work, "demo", "--scenario", AUTO_SCENARIO, crash_at=point)
        assert died.returncode == KILLED, f"{point} was never reached: {died.stderr[-500:]}"
        _recover_and_check(work, f"demo killed at {point}", report)
    print("\n".join(["", f"crash suite, auto remediation: {len(points)} kills", *report]))


def test_kill_during_an_approval_at_every_step(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    template = tmp_path / "template"
    [row] = as_json(run(template, "demo", "--scenario", APPROVAL_SCENARIO, "--json"))
    assert row["outcome"] == "pending approval"
    [waiting] = as_json(run(template, "approvals", "--json"))
    # approval, act, verify, learn: four steps after the resume
    points = _points(rng, 4, "decide.claimed", "act.executed", "notify.written",
                     "verify.waited", "learn.drafted", "run.invoked")
    report: list[str] = []
    for point in points:
        work = tmp_path / point.replace("#", "-")
        shutil.copytree(template, work)
        died = run(work, "approve", waiting["id"], "--by", "alice", crash_at=point)
        assert died.returncode == KILLED, f"{point} was never reached: {died.stderr[-500:]}"
        _recover_and_check(work, f"approve killed at {point}", report)
        shown = as_json(run(work, "show", row["incident"], "--json"))["incident"]
        assert shown["status"] == "mitigated", point
        assert [c["approval"]["by"] for c in shown["actions"]] == ["alice"], point
    print("\n".join(["", f"crash suite, approval: {len(points)} kills", *report]))


def test_kill_at_seeded_random_moments(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    scenarios = ("demo", "--scenario", AUTO_SCENARIO, "memory_leak")
    started = time.monotonic()
    as_json(run(tmp_path / "uninterrupted", *scenarios, "--json"))
    whole = time.monotonic() - started  # moments are fractions of a run on this machine
    report: list[str] = []
    kills = 0
    for attempt in range(5):
        work = tmp_path / f"random-{attempt}"
        proc = subprocess.Popen(command(work, *scenarios), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=child_env())
        delay = rng.uniform(0.5, 0.9) * whole  # start-up and detection come first
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        # A kill between learn's audit and its checkpoint may replay learn: allowed here.
        recovered = run(work, "resume", "--all", "--json")
        assert recovered.returncode == 0, recovered.stderr
        findings = check_invariants(work, exact_learn=False)
        report.append(f"random kill after {delay:.1f} s of {whole:.1f} s: "
                      f"{findings.incidents} incident(s), {findings.finished} finished, "
                      f"{findings.waiting} waiting")
        assert not findings.problems, findings.problems
    print("\n".join(["", f"crash suite, random moments: {kills} kills", *report]))
    assert kills >= 3  # the moments fell inside the runs, not after them
