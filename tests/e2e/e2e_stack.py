"""Starting and stopping real Prometheus, Alertmanager and `opsloop serve` on loopback ports,
with bounded waits and logs kept for a failing test's message."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float,
             logs: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready within {timeout:.0f}s\n{logs()}")


def http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1.0).status_code == 200


class Proc:
    """A child process whose output goes to a log file; stop() terminates, then kills."""

    def __init__(self, name: str, argv: list[str], log_dir: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def logs(self, tail: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} log (tail) ---\n{text[-tail:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def prometheus(work: Path, sim_target: str, rules: dict[str, Any], alertmanager_port: int,
               interval: str) -> tuple[Proc, int]:
    port = free_port()
    (work / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "scrape_timeout": interval, "query_log_file": str(work / "queries.log")},
        "rule_files": [str(work / "rules.yml")],
        "alerting": {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [{"job_name": "opsloop-sim",
                            "static_configs": [{"targets": [sim_target]}]}],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert PROMETHEUS is not None
    proc = Proc("prometheus", [
        PROMETHEUS, f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
        # A simulated minute lasts under a second here: the look-back and the alert resend
        # delay shrink with it, or stale values would linger for simulated hours.
        "--query.lookback-delta=5s", "--rules.alert.resend-delay=1s",
    ], work)
    return proc, port


def alertmanager(work: Path, webhook_url: str, token: str, port: int) -> Proc:
    config = {
        "route": {"receiver": "opsloop", "group_by": ["env"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "opsloop", "webhook_configs": [{
            "url": webhook_url, "send_resolved": True,
            "http_config": {"authorization": {"credentials": token}},
        }]}],
    }
    (work / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert ALERTMANAGER is not None
    return Proc("alertmanager", [
        ALERTMANAGER, f"--config.file={work / 'alertmanager.yml'}",
        f"--storage.path={work / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: one instance, loopback only
    ], work)


def opsloop_serve(work: Path, port: int, env: Mapping[str, str]) -> Proc:
    return Proc("opsloop-serve", [sys.executable, "-m", "opsloop", "serve",
                                  "--host", "127.0.0.1", "--port", str(port)], work,
                env={"OPSLOOP_WORK_DIR": str(work / "opsloop"), **env})


def scraping(prometheus_url: str) -> Callable[[], bool]:
    """True once Prometheus holds a sample of the simulator (discovery takes a few seconds)."""

    def check() -> bool:
        answer = httpx.get(f"{prometheus_url}/api/v1/query",
                           params={"query": 'up{job="opsloop-sim"} == 1'}, timeout=1.0)
        return bool(answer.json()["data"]["result"])

    return check
