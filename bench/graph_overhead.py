"""Benchmark: the operate loop's own cost per incident, offline, excluding nothing.

For every built-in scenario, repeated --rounds times in a fresh work dir, it times
`OperateLoop.start(incident)` — intake to learn, or to the approval pause — which includes
triage, routing, runbook retrieval, every tool call, guardrails, actuation, the simulated
verification window, checkpoint writes and drafting. Simulating the minutes *before*
detection is reported separately (it is the simulator's cost, not the loop's).

    .venv/bin/python bench/graph_overhead.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from opsloop.graph.runner import OperateLoop
from opsloop.settings import Settings
from opsloop.simulator import SCENARIOS
from opsloop.watch import run_scenario


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    per_incident: list[float] = []
    per_scenario: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(work_dir=Path(tmp))
        loop = OperateLoop(settings)
        loop.runbooks.search("warm up the index", k=1)  # index build is start-up, not per incident
        for round_ in range(args.rounds):
            for name in SCENARIOS:
                t0 = time.perf_counter()
                run = run_scenario(loop, name, seed=round_ + 1, progress=lambda _m: None)
                per_scenario.append(time.perf_counter() - t0)
                per_incident.extend(run.loop_seconds)
                took = ", ".join(f"{s * 1000:.0f} ms" for s in run.loop_seconds) or "no incident"
                print(f"round {round_ + 1} {name}: {took}", file=sys.stderr)
        loop.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "incidents": len(per_incident),
        "per_incident_ms": {
            "median": statistics.median(per_incident) * 1000,
            "p95": percentile(per_incident, 0.95) * 1000,
            "max": max(per_incident) * 1000,
        },
        "per_scenario_including_simulation_ms": {
            "median": statistics.median(per_scenario) * 1000,
            "p95": percentile(per_scenario, 0.95) * 1000,
        },
        "peak_rss_mb": round(peak_mb, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        pi = result["per_incident_ms"]
        ps = result["per_scenario_including_simulation_ms"]
        print(f"incidents: {result['incidents']}")
        print(
            f"graph per incident: median {pi['median']:.0f} ms, p95 {pi['p95']:.0f} ms, "
            f"max {pi['max']:.0f} ms"
        )
        print(
            f"whole scenario (simulate + detect + loop): median {ps['median']:.0f} ms, "
            f"p95 {ps['p95']:.0f} ms"
        )
        print(f"peak RSS: {result['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
