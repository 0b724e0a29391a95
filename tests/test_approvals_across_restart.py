"""Approve / reject / modify from a new process after the one that paused has exited.

Each command opens the work dir afresh, as a new process would: through `main` here, and
as a real new process in the slow run (CI runs both).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsloop.cli import main
from opsloop.simulator import SimEnvironment

Opsloop = Callable[..., subprocess.CompletedProcess[str]]


def in_a_new_process(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsloop", *args, "--work-dir", str(work)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def in_this_process(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*args, "--work-dir", str(work)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.fixture(params=[pytest.param(in_this_process, id="main"),
                        pytest.param(in_a_new_process, id="process", marks=pytest.mark.slow)])
def opsloop(request: pytest.FixtureRequest) -> Opsloop:
    runner: Opsloop = request.param
    return runner


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def executed_keys(work: Path, environment: str) -> list[str]:
    env = SimEnvironment.load(work / "environments" / f"{environment.removeprefix('sim:')}.json")
    return list(env.state.executed)


def test_approve_in_a_new_process_runs_the_action_once(tmp_path: Path, opsloop: Opsloop) -> None:
    work = tmp_path / "work"
    [row] = as_json(opsloop(work, "demo", "--scenario", "bad_deploy", "--json"))
    assert row["outcome"] == "pending approval"

    [waiting] = as_json(opsloop(work, "approvals", "--json"))
    assert waiting["incident_id"] == row["incident"]
    assert waiting["decision"]["outcome"] == "needs_approval"
    assert executed_keys(work, row["environment"]) == []

    approved = opsloop(work, "approve", waiting["id"], "--by", "alice", "--reason", "looks right")
    assert approved.returncode == 0, approved.stderr
    assert "mitigated" in approved.stdout and "verified" in approved.stdout

    again = opsloop(work, "approve", waiting["id"], "--by", "bob")
    assert again.returncode == 1
    assert "already decided" in again.stderr
    assert "Traceback" not in again.stderr

    assert len(executed_keys(work, row["environment"])) == 1  # ran once, never twice
    shown = as_json(opsloop(work, "show", row["incident"], "--json"))
    incident = shown["incident"]
    assert incident["status"] == "mitigated"
    [case] = incident["actions"]
    approval = case["approval"]
    assert (approval["verdict"], approval["by"], approval["reason"]) == (
        "approve", "alice", "looks right")
    audit = [(a["actor"], a["kind"]) for a in shown["audit"]]
    assert ("alice", "approval") in audit
    assert as_json(opsloop(work, "approvals", "--json")) == []


def test_reject_runs_nothing_and_records_why(tmp_path: Path, opsloop: Opsloop) -> None:
    work = tmp_path / "work"
    [row] = as_json(opsloop(work, "demo", "--scenario", "dependency_outage", "--json"))
    [waiting] = as_json(opsloop(work, "approvals", "--json"))
    missing = opsloop(work, "reject", waiting["id"])
    assert missing.returncode == 2 and "--reason" in missing.stderr  # a reason is required
    done = opsloop(work, "reject", waiting["id"], "--by", "carol", "--reason", "vendor fixing")
    assert done.returncode == 0, done.stderr
    incident = as_json(opsloop(work, "show", row["incident"], "--json"))["incident"]
    assert incident["status"] == "rejected"
    [case] = incident["actions"]
    assert case["result"] is None
    assert case["approval"]["reason"] == "vendor fixing"
    assert executed_keys(work, row["environment"]) == []


def test_modify_changes_the_action_within_policy(tmp_path: Path, opsloop: Opsloop) -> None:
    work = tmp_path / "work"
    [row] = as_json(opsloop(work, "demo", "--scenario", "cost_runaway", "--json"))
    [waiting] = as_json(opsloop(work, "approvals", "--json"))
    done = opsloop(work, "modify", waiting["id"], "--set", "replicas=12", "--by", "dan",
                   "--reason", "keep headroom")
    assert done.returncode == 0, done.stderr
    incident = as_json(opsloop(work, "show", row["incident"], "--json"))["incident"]
    [case] = incident["actions"]
    assert case["proposal"]["action"]["params"]["replicas"] == 12
    assert case["result"]["status"] == "succeeded"
    assert "replicas=12" in case["result"]["action"]
    env = SimEnvironment.load(
        work / "environments" / f"{row['environment'].removeprefix('sim:')}.json")
    assert next(s.replicas for s in env.services() if s.name == "recommendations") == 12


def test_modify_cannot_push_an_action_past_a_deny(tmp_path: Path, opsloop: Opsloop) -> None:
    # Refused before anything is recorded (issue 10.4): the approval stays pending, with the
    # key and the allowed range named, and nothing runs.
    work = tmp_path / "work"
    [row] = as_json(opsloop(work, "demo", "--scenario", "cost_runaway", "--json"))
    [waiting] = as_json(opsloop(work, "approvals", "--json"))
    done = opsloop(work, "modify", waiting["id"], "--set", "replicas=-5", "--by", "eve")
    assert done.returncode == 2, done.stderr
    assert "replicas=-5" in done.stderr and "from 1 to 500" in done.stderr
    assert "Traceback" not in done.stderr
    incident = as_json(opsloop(work, "show", row["incident"], "--json"))["incident"]
    assert [(c["result"], c["approval"]) for c in incident["actions"]] == [(None, None)]
    assert incident["status"] == "awaiting_approval"
    assert [w["id"] for w in as_json(opsloop(work, "approvals", "--json"))] == [waiting["id"]]
    assert executed_keys(work, row["environment"]) == []


def test_bad_modify_syntax_is_a_clear_error(tmp_path: Path, opsloop: Opsloop) -> None:
    work = tmp_path / "work"
    as_json(opsloop(work, "demo", "--scenario", "cost_runaway", "--json"))
    [waiting] = as_json(opsloop(work, "approvals", "--json"))
    bad = opsloop(work, "modify", waiting["id"], "--set", "replicas")
    assert bad.returncode == 1
    assert "expected KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr
    assert len(as_json(opsloop(work, "approvals", "--json"))) == 1  # still waiting
