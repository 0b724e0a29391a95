"""`opsloop run` as a real process: starts with no configuration, runs the scheduled agents on
production's clock, stops cleanly on SIGTERM, and after a kill -9 continues without doubling
or losing a scheduled run.

The simulator is the one `run` starts itself; its clock is fast (0.05 s per minute) and the
alert-quality agent is scheduled every 30 simulated minutes, so runs come every 1.5 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from test_restart import free_port

from opsloop.settings import REPO_ROOT

pytestmark = pytest.mark.slow

WAIT_SECONDS = 60.0


class Run:
    def __init__(self, work: Path, policies: Path, log: Path) -> None:
        self.port, self.sim_port = free_port(), free_port()
        env = {**os.environ, "OPSLOOP_WORK_DIR": str(work),
               "OPSLOOP_POLICIES_DIR": str(policies),
               "OPSLOOP_SCHEDULE_TICK_SECONDS": "0.2",
               "OPSLOOP_SLO_EVALUATION_SECONDS": "1"}
        env.pop("OPSLOOP_SERVE_ENVIRONMENT", None)
        self.began = time.monotonic()
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opsloop", "run", "--port", str(self.port),
             "--sim-port", str(self.sim_port), "--minute-seconds", "0.05"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self) -> float:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "opsloop run exited while starting"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - self.began
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("opsloop run never became ready")

    def runs(self) -> list[dict[str, object]]:
        reply = httpx.get(f"{self.url}/api/v1/agents/alert-quality/runs?limit=500", timeout=5)
        reply.raise_for_status()
        return list(reply.json())

    def wait_runs(self, at_least: int) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.runs()) < at_least:
            assert time.monotonic() < deadline, f"fewer than {at_least} runs"
            time.sleep(0.2)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


def ledger(work: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(work / "state" / "schedule.db") as db:
        return db.execute("SELECT run_id, due_at, trigger, status FROM agent_runs "
                          "WHERE agent = 'alert-quality' ORDER BY due_at").fetchall()


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", target)
    schedule = yaml.safe_load((target / "schedule.yaml").read_text())
    schedule["agents"]["alert-quality"]["cron"] = "*/30 * * * *"
    for name in schedule["agents"]:
        if name != "alert-quality":
            schedule["agents"][name]["enabled"] = False
    (target / "schedule.yaml").write_text(yaml.safe_dump(schedule))
    return target


def test_run_starts_schedules_and_survives_sigterm_and_kill(tmp_path: Path,
                                                            policies: Path) -> None:
    work, log = tmp_path / "work", tmp_path / "run.log"
    first = Run(work, policies, log)
    took = first.ready()
    assert took < 30, f"took {took:.1f} s to be ready"  # the goal is < 10 s; CI is busy
    first.wait_runs(2)
    assert first.stop(signal.SIGTERM) == 0, log.read_text()[-2000:]
    after_term = ledger(work)
    assert all(status != "running" for *_, status in after_term), after_term

    second = Run(work, policies, log)
    second.ready()
    # `run` continues the simulation it saved (its clock too): runs go on from where they
    # were, and none of the earlier ones is run again.
    second.wait_runs(len(after_term) + 2)
    assert second.stop(signal.SIGKILL) == -signal.SIGKILL

    third = Run(work, policies, log)
    third.ready()
    third.wait_runs(len(ledger(work)) + 1)
    metrics = httpx.get(f"{third.url}/metrics", timeout=5).text
    assert third.stop(signal.SIGTERM) == 0
    rows = ledger(work)
    dues = [due for _, due, _, _ in rows]
    assert len(dues) == len(set(dues)), "a scheduled time ran twice"
    assert all(status in ("succeeded",) for *_, status in rows), rows
    assert 'opsloop_agent_runs_total{agent="alert-quality",status="succeeded"}' in metrics
