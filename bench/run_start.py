"""Benchmark: how long `opsloop run` takes from start to ready, on a fresh work dir (nothing
configured: it starts its own simulator) and again on the same work dir (a restart: it
reloads its simulation, intake groups and ledger and recovers what was left).

    .venv/bin/python bench/run_start.py [--rounds 3] [--json]

Ready means `/readyz` answers 200. The first agent run (alert-quality on a manual trigger
through the API) is timed too, as the first scheduled work a fresh process does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_once(work: Path) -> tuple[float, float]:
    port, sim_port = free_port(), free_port()
    env = {**os.environ, "OPSLOOP_WORK_DIR": str(work)}
    env.pop("OPSLOOP_SERVE_ENVIRONMENT", None)
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "opsloop", "run", "--port", str(port),
                             "--sim-port", str(sim_port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"opsloop run exited with {proc.returncode}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        ready = time.perf_counter() - began
        token = (work / "state" / "api-token").read_text().strip()
        t = time.perf_counter()
        reply = httpx.post(f"{url}/api/v1/agents/alert-quality/run", timeout=60,
                           headers={"Authorization": f"Bearer {token}"})
        reply.raise_for_status()
        first_run = time.perf_counter() - t
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return ready, first_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fresh, again, runs = [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "work"
            ready, first = start_once(work)
            fresh.append(ready)
            runs.append(first)
            again.append(start_once(work)[0])
    result = {"rounds": args.rounds,
              "fresh_ready_s": round(statistics.median(fresh), 2),
              "restart_ready_s": round(statistics.median(again), 2),
              "first_agent_run_s": round(statistics.median(runs), 2),
              "fresh_ready_max_s": round(max(fresh), 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"opsloop run ready (fresh work dir): median {result['fresh_ready_s']} s, "
              f"max {result['fresh_ready_max_s']} s over {args.rounds}")
        print(f"opsloop run ready (restart):        median {result['restart_ready_s']} s")
        print(f"first agent run over the API:       median {result['first_agent_run_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
