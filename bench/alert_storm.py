"""Alert storm: post N alerts (one outage, many pods) in Alertmanager webhook batches to
`opsloop serve` on loopback; report alerts/s, incidents created and the server's peak memory.
When the Alertmanager binary is installed, the same alerts go to Alertmanager's own API
(POST /api/v2/alerts) in the same run, and the ratio is reported.

    .venv/bin/python bench/alert_storm.py [--alerts 100000] [--batch 1000] [--json]

`opsloop serve` runs as its own process with an ingest token and no environment (intake
only: incidents are recorded, not run), with a copy of policies/ whose group_wait is 0 so
the incident count can be read as soon as the storm is in.

Alertmanager keeps alerts in memory (its --storage.path holds silences and the notification
log, not alerts); opsloop writes every batch to SQLite and fsyncs it before answering. So
opsloop runs twice: with its state on tmpfs (/dev/shm: the same writes, no wait for the
disk), the like-for-like comparison, and with it on disk as deployed. Each server's CPU
seconds during the storm are reported too: on a shared machine they move less than rates.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-ingest-token-0123456789"
READER = "bench-read-token-0123456789ab"
ALERTNAMES = ("HighErrorRate", "PodCrashLooping", "HighLatencyP99", "SaturationHigh")
err = Console(stderr=True, highlight=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process' peak resident set, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used, every thread (from /proc, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready within {timeout:.0f}s")


def storm(count: int, services: int) -> list[dict[str, Any]]:
    """One outage: every pod of every service of one cluster alerting at once."""
    starts = datetime.now(UTC).isoformat()
    return [
        {
            "labels": {"alertname": ALERTNAMES[i % len(ALERTNAMES)], "env": "prod",
                       "cluster": "eu-1", "service": f"svc-{i % services:03d}",
                       "pod": f"pod-{i:07d}", "severity": "page"},
            "annotations": {"summary": f"pod-{i:07d} is unhealthy",
                            "runbook": "high-error-rate"},
            "startsAt": starts,
            "generatorURL": "http://prometheus.example/graph",
        }
        for i in range(count)
    ]


def webhook_bodies(alerts: list[dict[str, Any]], batch: int) -> list[bytes]:
    return [
        json.dumps({"version": "4", "status": "firing", "receiver": "opsloop",
                    "groupKey": '{}:{env="prod"}', "groupLabels": {"env": "prod"},
                    "alerts": [{"status": "firing", **a} for a in alerts[i:i + batch]]}).encode()
        for i in range(0, len(alerts), batch)
    ]


def am_bodies(alerts: list[dict[str, Any]], batch: int) -> list[bytes]:
    return [json.dumps(alerts[i:i + batch]).encode() for i in range(0, len(alerts), batch)]


def post_all(url: str, bodies: list[bytes], headers: dict[str, str], senders: int) -> float:
    """Seconds to post every body, `senders` connections in parallel; any non-2xx aborts."""
    def send(chunk: list[bytes]) -> None:
        with httpx.Client(timeout=120, headers={"Content-Type": "application/json",
                                                **headers}) as client:
            for body in chunk:
                answer = client.post(url, content=body)
                if answer.status_code >= 300:
                    raise SystemExit(f"{url} answered {answer.status_code}: {answer.text[:300]}")

    chunks = [bodies[i::senders] for i in range(senders)]
    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, chunks))
    return time.perf_counter() - started


def bench_opsloop(alerts: list[dict[str, Any]], args: argparse.Namespace,
                  work: Path, state: Path) -> dict[str, Any]:
    """`state`: the work dir serve writes its SQLite state to (on disk, or on tmpfs)."""
    policies = work / "policies"
    if not policies.exists():
        shutil.copytree(REPO / "policies", policies)
    intake = yaml.safe_load((policies / "intake.yaml").read_text())
    intake["group_wait_minutes"] = 0
    (policies / "intake.yaml").write_text(yaml.safe_dump(intake))
    port = free_port()
    env = {**os.environ, "OPSLOOP_WORK_DIR": str(state),
           "OPSLOOP_POLICIES_DIR": str(policies),
           "OPSLOOP_API_TOKENS": f"am:ingest:{TOKEN},bench:read:{READER}"}
    env.pop("OPSLOOP_SERVE_ENVIRONMENT", None)
    proc = subprocess.Popen([sys.executable, "-m", "opsloop", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", proc)
        idle = peak_rss_mb(proc.pid)
        bodies = webhook_bodies(alerts, args.batch)
        err.print(f"opsloop serve (state in {state}): posting {len(alerts):,} alerts in "
                  f"{len(bodies)} webhook batches, {args.senders} sender(s)…")
        cpu = cpu_seconds(proc.pid)
        seconds = post_all(f"{base}/api/v1/alerts/alertmanager", bodies,
                           {"Authorization": f"Bearer {TOKEN}"}, args.senders)
        cpu = cpu_seconds(proc.pid) - cpu
        resend = bodies[: max(1, len(bodies) // 10)]  # Alertmanager re-sends on group_interval
        resend_seconds = post_all(f"{base}/api/v1/alerts/alertmanager", resend,
                                  {"Authorization": f"Bearer {TOKEN}"}, args.senders)
        reader = {"Authorization": f"Bearer {READER}"}
        deadline = time.monotonic() + 10
        incidents: list[Any] = []
        while time.monotonic() < deadline and not incidents:
            time.sleep(0.3)
            incidents = httpx.get(f"{base}/api/v1/incidents", headers=reader, timeout=30).json()
        intake = httpx.get(f"{base}/api/v1/intake", headers=reader, timeout=30).json()
        return {
            "alerts": len(alerts), "batches": len(bodies), "seconds": round(seconds, 3),
            "alerts_per_second": round(len(alerts) / seconds),
            "cpu_seconds": round(cpu, 2), "state": str(state),
            "resent_alerts_per_second": round(sum(len(json.loads(b)["alerts"]) for b in resend)
                                              / resend_seconds),
            "incidents_created": len(incidents),
            "alerts_held": intake["alerts_held"], "deduplicated": intake["deduplicated"],
            "peak_rss_mb": round(peak_rss_mb(proc.pid), 1), "idle_rss_mb": round(idle, 1),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_alertmanager(alerts: list[dict[str, Any]], args: argparse.Namespace,
                       work: Path, binary: str) -> dict[str, Any]:
    port = free_port()
    config = work / "alertmanager.yml"
    config.write_text(yaml.safe_dump({
        "route": {"receiver": "null", "group_by": ["env"], "group_wait": "30s"},
        "receivers": [{"name": "null"}]}))
    proc = subprocess.Popen([binary, f"--config.file={config}",
                             f"--storage.path={work / 'am-data'}",
                             f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/-/ready", proc)
        idle = peak_rss_mb(proc.pid)
        bodies = am_bodies(alerts, args.batch)
        err.print(f"alertmanager: posting the same {len(alerts):,} alerts to /api/v2/alerts…")
        cpu = cpu_seconds(proc.pid)
        seconds = post_all(f"{base}/api/v2/alerts", bodies, {}, args.senders)
        cpu = cpu_seconds(proc.pid) - cpu
        groups = httpx.get(f"{base}/api/v2/alerts/groups", timeout=60).json()
        return {"alerts": len(alerts), "seconds": round(seconds, 3),
                "alerts_per_second": round(len(alerts) / seconds), "groups": len(groups),
                "cpu_seconds": round(cpu, 2),
                "peak_rss_mb": round(peak_rss_mb(proc.pid), 1), "idle_rss_mb": round(idle, 1)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="alerts per webhook call")
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--senders", type=int, default=4, help="parallel connections")
    parser.add_argument("--no-alertmanager", action="store_true")
    parser.add_argument("--disk-only", action="store_true",
                        help="run opsloop with its state on disk only, not on tmpfs too")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.alerts < 1 or args.batch < 1 or args.senders < 1 or args.services < 1:
        parser.error("--alerts, --batch, --senders and --services must be positive")
    alerts = storm(args.alerts, args.services)
    memory = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="opsloop-storm-") as tmp, \
            tempfile.TemporaryDirectory(prefix="opsloop-storm-state-",
                                        dir=memory if memory.is_dir() else None) as shm:
        work = Path(tmp)
        result: dict[str, Any] = {}
        if not args.disk_only:
            result["opsloop"] = bench_opsloop(alerts, args, work, Path(shm) / "opsloop")
        result["opsloop_on_disk"] = bench_opsloop(alerts, args, work, work / "opsloop")
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary and not args.no_alertmanager:
            result["alertmanager"] = am = bench_alertmanager(alerts, args, work, binary)
            for name in ("opsloop", "opsloop_on_disk"):
                if name in result:
                    o = result[name]
                    result[f"ratio_{name}_to_alertmanager"] = round(
                        o["alerts_per_second"] / am["alerts_per_second"], 3)
                    result[f"cpu_ratio_{name}_to_alertmanager"] = round(
                        o["cpu_seconds"] / am["cpu_seconds"], 3)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    table = Table(title=f"Alert storm: {args.alerts:,} alerts, batches of {args.batch}, "
                        f"{args.senders} sender(s)", title_justify="left")
    for column in ("target", "alerts/s", "seconds", "server CPU s", "incidents / groups",
                   "peak RSS MB"):
        table.add_column(column)
    rows = {"opsloop": "opsloop (state on tmpfs)", "opsloop_on_disk": "opsloop (on disk, fsync)"}
    for name, title in rows.items():
        if name in result:
            o = result[name]
            table.add_row(title, f"{o['alerts_per_second']:,}", f"{o['seconds']:.2f}",
                          f"{o['cpu_seconds']:.2f}", str(o["incidents_created"]),
                          f"{o['peak_rss_mb']:.0f}")
    if "alertmanager" in result:
        a = result["alertmanager"]
        table.add_row("alertmanager (in memory)", f"{a['alerts_per_second']:,}",
                      f"{a['seconds']:.2f}", f"{a['cpu_seconds']:.2f}", str(a["groups"]),
                      f"{a['peak_rss_mb']:.0f}")
    Console(highlight=False).print(table)
    for name, title in rows.items():
        if f"ratio_{name}_to_alertmanager" in result:
            print(f"{title} / alertmanager: throughput "
                  f"{result[f'ratio_{name}_to_alertmanager']:.2f}, server CPU "
                  f"{result[f'cpu_ratio_{name}_to_alertmanager']:.2f}")
    for name, title in rows.items():
        if name in result:
            o = result[name]
            print(f"{title}: re-sent alerts (deduplicated) {o['resent_alerts_per_second']:,}/s; "
                  f"alerts held after the storm: {o['alerts_held']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
