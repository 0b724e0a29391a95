"""Restart suite: the real `opsloop serve` killed with SIGKILL and started again on the same work
dir while Alertmanager keeps re-sending the same alerts. After every restart: one incident per
alert group, the id it had before, still open, opened once (one 'opened' in its audit log),
and every alert posted before the kill in it, including those acknowledged a moment before.

Each restart point adds a group of its own (`env` label) and posts it; later points also post
a new alert to the first group, whose incident is open. serve is killed once with the first
incident open and seen, once at once after the 200, and then at seeded random moments right
after it; every alert posted so far is then re-sent several times to the restarted process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from opsloop.environments import remote_ref
from opsloop.fingerprint import label_fingerprint
from opsloop.settings import REPO_ROOT
from opsloop.simulator import SimEnvironment
from opsloop.simulator.remote import SimClient
from opsloop.simulator.server import SimServer

pytestmark = pytest.mark.slow

INGEST = "restart-ingest-token-0123456789"
READ = "restart-read-token-0123456789ab"
SEED = 20261102
RESTART_POINTS = 4  # each one starts and kills a real process: a few seconds apiece
RESENDS = 3
SETTLE_SECONDS = 1.5  # six dispatcher rounds: long enough for a duplicate to show up
WAIT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`opsloop serve` as a child process on a free loopback port, output kept in a log."""

    def __init__(self, work: Path, policies: Path, log: Path,
                 environment: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "OPSLOOP_WORK_DIR": str(work), "OPSLOOP_POLICIES_DIR": str(policies),
               "OPSLOOP_API_TOKENS": f"am:ingest:{INGEST},viewer:read:{READ}",
               "OPSLOOP_TESTING": "1"}
        env.pop("OPSLOOP_SERVE_ENVIRONMENT", None)  # none: incidents recorded, not run
        if environment is not None:
            # Burn-rate evaluation stays out of it: the incident comes from the webhook.
            env.update({"OPSLOOP_SERVE_ENVIRONMENT": environment,
                        "OPSLOOP_SLO_EVALUATION_SECONDS": "3600"})
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "opsloop", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)], env=env, stdout=out, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self._wait_ready()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited ({self.proc.returncode})\n{self.logs()}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve not ready within {WAIT_SECONDS:.0f}s\n{self.logs()}")

    def post(self, alerts: list[dict[str, Any]]) -> None:
        body = {"version": "4", "status": "firing", "receiver": "opsloop", "groupKey": "{}",
                "alerts": alerts}
        answer = self.client.post("/api/v1/alerts/alertmanager", json=body,
                                  headers={"Authorization": f"Bearer {INGEST}"})
        assert answer.status_code == 200, answer.text

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident in full: the record and its audit log."""
        read = {"Authorization": f"Bearer {READ}"}
        listing = self.client.get("/api/v1/incidents", headers=read)
        assert listing.status_code == 200, listing.text
        return [self.client.get(f"/api/v1/incidents/{i['id']}", headers=read).json()
                for i in listing.json()]

    def kill(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def group_alerts(env: str, count: int) -> list[dict[str, Any]]:
    return [{"status": "firing", "startsAt": "2026-11-02T09:00:00Z",
             "labels": {"alertname": "HighErrorRate", "service": f"svc-{n}", "env": env},
             "annotations": {"summary": f"svc-{n} fails"}} for n in range(count)]


def opened_by_intake(record: dict[str, Any]) -> int:
    """How often intake opened the incident (the loop's own intake step says 'opened' too)."""
    return sum(a["actor"] == "intake" and a["kind"] == "opened" for a in record["audit"])


@dataclass
class Tally:
    restarts: int = 0
    posts: int = 0
    duplicates: int = 0  # incidents beyond one per group
    lost: int = 0  # alerts acknowledged with 200 and in no incident
    kills: list[str] = field(default_factory=list)


def by_group(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in found:
        groups.setdefault(record["incident"]["group_key"], []).append(record)
    return groups


def wait_for_groups(serve: Serve, keys: set[str]) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        groups = by_group(serve.incidents())
        if keys <= set(groups):
            return groups
        time.sleep(0.1)
    raise AssertionError(f"no incident for {sorted(keys - set(groups))}\n{serve.logs()}")


@pytest.fixture
def quick_policies(tmp_path: Path) -> Path:
    """The shipped policies, with incidents opening on the first dispatcher round."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    intake = yaml.safe_load((policies / "intake.yaml").read_text())
    intake["group_wait_minutes"] = 0
    (policies / "intake.yaml").write_text(yaml.safe_dump(intake))
    return policies


def test_a_killed_serve_restarted_on_the_same_work_dir_keeps_one_incident_per_group(
    tmp_path: Path, quick_policies: Path,
) -> None:
    rng = random.Random(SEED)
    work, log = tmp_path / "work", tmp_path / "serve.log"
    posted: dict[str, list[dict[str, Any]]] = {}  # group key -> alerts acknowledged
    opening: dict[str, set[str]] = {}  # group key -> fingerprints its incident opens with
    known: dict[str, tuple[str, str]] = {}  # group key -> (incident id, status) seen alive
    tally = Tally()
    serve = Serve(work, quick_policies, log)
    try:
        for point in range(RESTART_POINTS):
            env = f"zone-{point}"
            key = f'{{env="{env}"}}'
            if point > 0:  # news for the open first group, acknowledged just before the kill
                news = group_alerts("zone-0", 1)[0]
                news["labels"]["service"] = f"svc-news-{point}"
                posted['{env="zone-0"}'].append(news)
                serve.post([news])
                tally.posts += 1
            posted[key] = group_alerts(env, rng.randint(2, 6))
            opening[key] = {label_fingerprint(a["labels"]) for a in posted[key]}
            serve.post(posted[key])
            tally.posts += 1
            if point == 0:  # once with the incident open and seen ...
                for k, [record] in wait_for_groups(serve, {key}).items():
                    known[k] = (record["incident"]["id"], record["incident"]["status"])
                tally.kills.append("incident open")
            else:  # ... at once after the 200, then at seeded moments right after it
                pause = 0.0 if point == 1 else rng.uniform(0.0, 0.4)
                time.sleep(pause)
                tally.kills.append(f"{pause:.3f}s after the 200")
            serve.kill()
            serve = Serve(work, quick_policies, log)
            tally.restarts += 1
            everything = [a for alerts in posted.values() for a in alerts]
            for _ in range(RESENDS):
                rng.shuffle(everything)
                serve.post(everything)
                tally.posts += 1
                time.sleep(rng.uniform(0.05, 0.3))
            wait_for_groups(serve, set(posted))
            time.sleep(SETTLE_SECONDS)
            groups = by_group(serve.incidents())
            tally.duplicates += sum(len(records) - 1 for records in groups.values())
            assert set(groups) == set(posted), f"after restart {point + 1}: {sorted(groups)}"
            for k, records in groups.items():
                record = records[0]
                incident = record["incident"]
                assert len(records) == 1, f"{k}: {[r['incident']['id'] for r in records]}"
                assert opened_by_intake(record) == 1, f"{k}: {incident['id']} opened again"
                if k in known:
                    assert (incident["id"], incident["status"]) == known[k], k
                known[k] = (incident["id"], incident["status"])
                recorded = {a["fingerprint"] for a in incident["anomalies"]}
                assert recorded == opening[k], f"{k}: {incident['id']} opened with other alerts"
            # News for an open group waits for group_interval in intake, not in the record.
            intake = serve.client.get("/api/v1/intake",
                                      headers={"Authorization": f"Bearer {READ}"}).json()
            acknowledged = sum(map(len, posted.values()))
            tally.lost = acknowledged - intake["alerts_held"]
            assert (intake["groups_open"], intake["alerts_held"]) == (len(posted), acknowledged)
            assert all(status == "open" for _, status in known.values())
    finally:
        serve.stop()
        print(f"\nrestart suite (seed {SEED}): " + json.dumps({
            "restarts": tally.restarts, "kills": tally.kills, "webhook_posts": tally.posts,
            "groups": len(posted), "incidents": len(known),
            "duplicates": tally.duplicates, "alerts_posted": sum(map(len, posted.values())),
            "alerts_lost": tally.lost}))
    assert (tally.duplicates, tally.lost, len(known)) == (0, 0, RESTART_POINTS)


def test_an_incident_run_against_an_environment_is_not_run_again_after_a_kill(
    tmp_path: Path, quick_policies: Path,
) -> None:
    sim = SimServer(SimEnvironment.create("bad_deploy", seed=7), hold_scenario=True).start()
    client = SimClient(sim.url)
    work, log = tmp_path / "work", tmp_path / "serve.log"
    alerts = [{"status": "firing", "startsAt": "2026-11-02T09:00:00Z",
               "labels": {"alertname": "HighErrorRate", "service": "checkout", "env": "prod",
                          "severity": "page"}}]
    serve = Serve(work, quick_policies, log, remote_ref(sim.url))
    try:
        client.release_scenario()
        client.wait(12)
        serve.post(alerts)
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            found = serve.incidents()
            if found and found[0]["incident"]["status"] != "open":
                break  # the run stopped: at an approval (SEV1), or done
            time.sleep(0.2)
        [before] = serve.incidents()
        assert before["incident"]["status"] != "open", serve.logs()
        serve.kill()
        for _ in range(2):
            serve = Serve(work, quick_policies, log, remote_ref(sim.url))
            for _ in range(RESENDS):
                serve.post(alerts)
            time.sleep(SETTLE_SECONDS)
            found = serve.incidents()
            assert len(found) == 1, [(i["incident"]["id"], i["incident"]["status"]) for i in found]
            after = found[0]
            assert (after["incident"]["id"], after["incident"]["status"]) == (
                before["incident"]["id"], before["incident"]["status"])
            # The loop's own entries are those it had: nothing ran again.
            assert [a["kind"] for a in after["audit"] if a["actor"] != "intake"] == [
                a["kind"] for a in before["audit"] if a["actor"] != "intake"]
            assert opened_by_intake(after) == 1
            serve.kill()
    finally:
        serve.stop()
        client.close()
        sim.stop()
