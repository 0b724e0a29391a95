"""Issue 13's "Done when", with the real `opsloop run` process on a team's flagd file:
a failed analysis reaches the kill switch within one interval without a human, and an advance
the plan wants approved does not happen — not even across a kill -9 and a restart — until the
owner approves it. The flag file is read back with the real OpenFeature flagd provider.

`run` starts its own simulator (0.2 s per simulated minute) that follows the flag file; the
rollouts agent runs every 5 simulated minutes on a plan whose steps last 15.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from test_restart import free_port

from opsloop.rollouts import flagd
from opsloop.settings import REPO_ROOT
from opsloop.simulator.remote import SimClient
from opsloop.simulator.state import tick_time

pytestmark = pytest.mark.slow

KILLED, ADVANCED = "new-checkout-flow", "search-v2"
INTERVAL = 15  # simulated minutes per step (rollouts.yaml below)
MINUTE_SECONDS = 0.2
TOKEN = "approver-token-for-the-test"
WAIT_SECONDS = 45.0
T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], seconds: float = WAIT_SECONDS) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found is not None and found is not False:
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


class Run:
    """One `opsloop run` process on the flag file."""

    def __init__(self, work: Path, policies: Path, flag_file: Path, port: int, sim_port: int,
                 log: Path) -> None:
        env = {**os.environ, "OPSLOOP_WORK_DIR": str(work),
               "OPSLOOP_POLICIES_DIR": str(policies),
               "OPSLOOP_API_TOKENS": f"owner:approve:{TOKEN}",
               "OPSLOOP_SCHEDULE_TICK_SECONDS": "0.2",
               "OPSLOOP_SLO_EVALUATION_SECONDS": "1"}
        env.pop("OPSLOOP_SERVE_ENVIRONMENT", None)
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opsloop", "run", "--scenario", "cost_runaway",
             "--port", str(port), "--sim-port", str(sim_port),
             "--minute-seconds", str(MINUTE_SECONDS), "--flag-file", str(flag_file)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=10,
                                 headers={"Authorization": f"Bearer {TOKEN}"})

    def ready(self) -> None:
        def up() -> bool:
            assert self.proc.poll() is None, "opsloop run exited while starting"
            try:
                return self.http.get("/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        eventually("opsloop run to be ready", up)

    def approvals(self) -> list[dict[str, Any]]:
        reply = self.http.get("/api/v1/approvals")
        reply.raise_for_status()
        return list(reply.json())

    def advances(self, flag: str) -> list[dict[str, Any]]:
        return [a for a in self.approvals() if a["action"]["type"] == "set_flag_rollout"
                and a["action"]["params"]["flag"] == flag]

    def agent_runs(self) -> int:
        reply = self.http.get("/api/v1/agents/rollouts/runs?limit=500")
        reply.raise_for_status()
        return sum(r["status"] == "succeeded" for r in reply.json())

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.http.close()
        self.log.close()
        return code


def served_on(path: Path, key: str, domain: str, keys: int = 10_000) -> float:
    """The percent of `keys` targeting keys the OpenFeature flagd provider (file mode) serves
    `on`; every evaluation must succeed (an error's default would pass for `off`)."""
    provider = FlagdProvider(resolver_type=ResolverType.FILE,
                             offline_flag_source_path=str(path))
    api.set_provider_and_wait(provider, domain)
    try:
        client = api.get_client(domain)
        on = 0
        for i in range(keys):
            got = client.get_boolean_details(key, False,
                                             EvaluationContext(targeting_key=f"user-{i}"))
            assert got.error_code is None, got.error_message
            on += bool(got.value)
        return 100.0 * on / keys
    finally:
        provider.shutdown()


def flag(path: Path, key: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(path.read_text())["flags"][key]
    return found


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """The shipped policies with two managed flags (owner approves advances) and only the
    rollouts agent scheduled, every 5 simulated minutes."""
    target = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", target)
    schedule = yaml.safe_load((target / "schedule.yaml").read_text())
    for name, agent in schedule["agents"].items():
        agent["enabled"] = name == "rollouts"
    schedule["agents"]["rollouts"]["cron"] = "*/5 * * * *"
    (target / "schedule.yaml").write_text(yaml.safe_dump(schedule))
    rollouts = yaml.safe_load((target / "rollouts.yaml").read_text())
    rollouts["flags"] = {
        KILLED: {"service": "checkout", "owner": "payments", "steps": [5, 25, 50, 100],
                 "interval": f"{INTERVAL}m", "advances": "needs_approval"},
        ADVANCED: {"service": "search", "owner": "discovery", "steps": [5, 25, 50, 100],
                   "interval": f"{INTERVAL}m", "advances": "needs_approval"}}
    (target / "rollouts.yaml").write_text(yaml.safe_dump(rollouts))
    return target


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    """The team's flag file, in its own git repository: search-v2's 5% step began an hour
    before the simulation starts (09:00), so it has run a whole interval; new-checkout-flow
    is off until the team starts its rollout during the test."""
    folder = tmp_path / "flags"
    folder.mkdir()
    began = tick_time(0) - timedelta(hours=1)
    path = folder / "flags.flagd.json"
    off = flagd.disabled(flagd.rollout_flag(0, service="checkout", owner="payments",
                                            updated_at=began))
    path.write_text(json.dumps({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {
        KILLED: off,
        ADVANCED: flagd.rollout_flag(5, service="search", owner="discovery",
                                     updated_at=began)}}, indent=2))
    git(folder, "init", "-q")
    git(folder, "add", path.name)
    git(folder, "-c", "user.name=team", "-c", "user.email=t@t", "commit", "-qm", "flags")
    return path


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True,
                          text=True).stdout


def start_step(path: Path, key: str, percent: int, at: datetime) -> None:
    """What the team does to start a rollout step: edit the file (replaced whole, as an
    editor or a deploy would, so a reader never sees half of it)."""
    document = json.loads(path.read_text())
    document["flags"][key] = flagd.with_percent(document["flags"][key], percent, at)
    tmp = path.with_name(".team-edit.json")
    tmp.write_text(json.dumps(document, indent=2))
    tmp.replace(path)


def flag_results(path: Path) -> list[dict[str, Any]]:
    """The flag actions opsloop ran on the file (kept beside it, one per idempotency key)."""
    kept = json.loads(path.with_name(path.name + ".actions.json").read_text())
    return list(kept.values())


def test_a_failed_step_is_killed_unattended_and_an_advance_waits_for_approval_across_restarts(
        tmp_path: Path, policies: Path, flag_file: Path) -> None:
    work, log = tmp_path / "work", tmp_path / "run.log"
    port, sim_port = free_port(), free_port()
    began = time.monotonic()
    first = Run(work, policies, flag_file, port, sim_port, log)
    try:
        first.ready()
        # The healthy step's advance is asked of the owner, not made.
        (asked,) = eventually("the advance of search-v2 to be asked",
                              lambda: first.advances(ADVANCED) or None)
        assert asked["action"]["params"]["percent"] == 25
        assert flagd.rollout_percent(flag(flag_file, ADVANCED)) == 5

        # The team starts new-checkout-flow at 25%; its `on` cohort fails 60% of requests.
        sim = SimClient(f"http://127.0.0.1:{sim_port}")
        sim.inject("flag", "checkout", {"key": KILLED, "variant_error_ratio": 0.6})
        step_began = sim.now()
        sim.close()
        start_step(flag_file, KILLED, 25, step_began)
        eventually("the kill switch in the flag file",
                   lambda: flag(flag_file, KILLED)["state"] == "DISABLED")
        # The commit comes last in a change: wait for it before pulling the plug.
        eventually("the kill committed in the flag folder",
                   lambda: git(flag_file.parent, "log", "-1", "--format=%s").strip()
                   == f"flag {KILLED}: 25% -> 0% (DISABLED) by opsloop")
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # no chance to tidy up
    history = [json.loads(line) for line in
               flag_file.with_name(flag_file.name + ".history.jsonl").read_text().splitlines()]
    (kill,) = [h for h in history if h["key"] == KILLED]
    assert (kill["enabled"], kill["to_percent"], kill["author"]) == (False, 0, "opsloop")
    took = datetime.fromisoformat(kill["at"]) - step_began
    print(f"killed {took} (simulated) after the 25% step began; interval {INTERVAL} min")
    assert timedelta(0) <= took <= timedelta(minutes=INTERVAL)
    # The rollouts agent's change record ran it (its action ids start with its run id).
    (ran,) = [r for r in flag_results(flag_file) if r["action"].startswith("disable_flag")]
    assert ran["status"] == "succeeded" and ran["action_id"].startswith("run-rollouts-")
    assert served_on(flag_file, KILLED, "killed") == 0.0

    second = Run(work, policies, flag_file, port, sim_port, log)
    try:
        second.ready()
        runs = second.agent_runs()
        eventually("three more rollouts runs after the restart",
                   lambda: second.agent_runs() >= runs + 3)
        # Still asked once, still not made: a restart neither advances nor asks again.
        assert [a["id"] for a in second.advances(ADVANCED)] == [asked["id"]]
        assert flagd.rollout_percent(flag(flag_file, ADVANCED)) == 5
        assert flag(flag_file, KILLED)["state"] == "DISABLED"  # killed stays killed

        reply = second.http.post(f"/api/v1/approvals/{asked['id']}/approve",
                                 json={"reason": "the 5% step looks healthy"})
        assert reply.status_code in (200, 202), reply.text
        eventually("the approved advance in the flag file",
                   lambda: flagd.rollout_percent(flag(flag_file, ADVANCED)) == 25)
    finally:
        assert second.stop(signal.SIGTERM) == 0, log.read_text()[-3000:]
    observed = served_on(flag_file, ADVANCED, "advanced")
    print(f"{ADVANCED} approved to 25%: the provider serves `on` to {observed:.2f}% of keys; "
          f"whole test {time.monotonic() - began:.1f} s")
    assert abs(observed - 25) <= 2.0
    assert flagd.problems(json.loads(flag_file.read_text())) == []
