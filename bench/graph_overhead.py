"""Benchmark: the operate loop's own cost per incident, offline, excluding nothing.

For every built-in scenario, repeated --rounds times in a fresh work dir, it times
`OperateLoop.start(incident)` — intake to learn, or to the approval pause — which includes
triage, routing, runbook retrieval, every tool call, guardrails, actuation, the simulated
verification window, checkpoint writes and drafting. Simulating the minutes *before*
detection is reported separately (it is the simulator's cost, not the loop's).

In the same run, right after its real run, each incident is replayed through a bare
LangGraph graph of the same shape (bench/bare_graph.py: same steps and fan-out, same SQLite
checkpointer, each node writing what the real node wrote) whose nodes do nothing else;
the ratio of the two medians is the figure we track. The embedded simulator's own work
inside the loop (metric series, log lines, physics ticks while verification waits,
applying actions) is measured apart (bench/production_time.py) and a second ratio leaves
it out: against real production that time is Prometheus and the fleet answering.

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
from typing import Any

from bare_graph import Shape, build_bare_graph, footprint, shape_of, sqlite_checkpointer
from production_time import ProductionTime

from opsloop.agents.specialists import SPECIALISTS
from opsloop.graph.runner import OperateLoop
from opsloop.models import Incident
from opsloop.settings import Settings
from opsloop.simulator import SCENARIOS
from opsloop.watch import run_scenario


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[index]


class Bare:
    """The bare graph over its own checkpoint file: each incident replayed right after the
    real run, so both see the same machine load (a busy neighbour moves both alike)."""

    def __init__(self, state_dir: Path) -> None:
        self.checkpointer = sqlite_checkpointer(state_dir / "bare-checkpoints.sqlite")
        self.graph = build_bare_graph(list(SPECIALISTS), self.checkpointer)
        self.seconds: list[float] = []
        self.cpu: list[float] = []  # process CPU seconds per replay
        self.sizes: list[tuple[int, int]] = []  # (checkpoints, bytes) per thread

    def replay(self, shape: Shape) -> None:
        thread = f"bare-{len(self.seconds)}"
        t0, c0 = time.perf_counter(), time.process_time()
        self.graph.invoke({"incident": shape.outer[0]}, {"configurable": {"thread_id": thread}},
                          context=shape, durability="sync")
        self.seconds.append(time.perf_counter() - t0)
        self.cpu.append(time.process_time() - c0)
        self.sizes.append(footprint(self.checkpointer.conn, thread))

    def close(self) -> None:
        self.checkpointer.conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    per_incident: list[float] = []
    production: list[float] = []  # the simulator's CPU inside each incident's run
    cpu: list[float] = []  # process CPU seconds inside each incident's run
    per_scenario: list[float] = []
    sizes: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(work_dir=Path(tmp))
        loop = OperateLoop(settings)
        loop.runbooks.search("warm up the index", k=1)  # index build is start-up, not per incident
        bare_graph = Bare(Path(tmp))
        clock = ProductionTime()
        clock.install()
        start = loop.start

        def timed_start(*args: Any, **kwargs: Any) -> Incident:
            clock.take()
            c0 = time.process_time()
            try:
                with clock.measuring():
                    return start(*args, **kwargs)
            finally:
                cpu.append(time.process_time() - c0)
                production.append(clock.take())

        loop.start = timed_start  # type: ignore[method-assign]
        for round_ in range(args.rounds):
            for name in SCENARIOS:
                t0 = time.perf_counter()
                run = run_scenario(loop, name, seed=round_ + 1, progress=lambda _m: None)
                per_scenario.append(time.perf_counter() - t0)
                per_incident.extend(run.loop_seconds)
                for incident in run.incidents:
                    bare_graph.replay(shape_of(loop.checkpointer, incident))
                    sizes.append(footprint(loop.checkpointer.conn, incident.id))
                took = ", ".join(f"{s * 1000:.0f} ms" for s in run.loop_seconds) or "no incident"
                print(f"round {round_ + 1} {name}: {took}", file=sys.stderr)
        loop.close()
        clock.uninstall()
        bare_graph.close()
        bare, bare_sizes = bare_graph.seconds, bare_graph.sizes
    own = [max(w - p, 0.0) for w, p in zip(per_incident, production, strict=True)]
    own_cpu = [max(c - p, 0.0) for c, p in zip(cpu, production, strict=True)]
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
        "bare_graph_per_incident_ms": {
            "median": statistics.median(bare) * 1000,
            "p95": percentile(bare, 0.95) * 1000,
        },
        "ratio_to_bare_graph": statistics.median(per_incident) / statistics.median(bare),
        "production_ms": {"median": statistics.median(production) * 1000},
        "own_per_incident_ms": {"median": statistics.median(own) * 1000,
                                "p95": percentile(own, 0.95) * 1000},
        "own_ratio_to_bare_graph": statistics.median(own) / statistics.median(bare),
        "cpu_ms": {"opsloop": statistics.median(cpu) * 1000,
                   "opsloop_own": statistics.median(own_cpu) * 1000,
                   "bare": statistics.median(bare_graph.cpu) * 1000},
        "cpu_ratio_to_bare_graph": statistics.median(cpu) / statistics.median(bare_graph.cpu),
        "own_cpu_ratio_to_bare_graph": (statistics.median(own_cpu)
                                        / statistics.median(bare_graph.cpu)),
        "checkpoints_per_incident": statistics.median(c for c, _ in sizes),
        "checkpoint_kb_per_incident": statistics.median(b for _, b in sizes) / 1024,
        "bare_checkpoints_per_incident": statistics.median(c for c, _ in bare_sizes),
        "bare_checkpoint_kb_per_incident": statistics.median(b for _, b in bare_sizes) / 1024,
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
        pb = result["bare_graph_per_incident_ms"]
        print(
            f"bare LangGraph graph, same shape and state: median {pb['median']:.0f} ms, "
            f"p95 {pb['p95']:.0f} ms"
        )
        print(
            f"checkpoints per incident: opsloop {result['checkpoints_per_incident']:.0f} "
            f"({result['checkpoint_kb_per_incident']:.0f} KB), bare "
            f"{result['bare_checkpoints_per_incident']:.0f} "
            f"({result['bare_checkpoint_kb_per_incident']:.0f} KB)"
        )
        print(f"graph overhead ratio (opsloop / bare, medians): "
              f"{result['ratio_to_bare_graph']:.2f}x")
        po = result["own_per_incident_ms"]
        print(f"of which the simulator answering (production's work): median "
              f"{result['production_ms']['median']:.0f} ms; the loop's own: median "
              f"{po['median']:.0f} ms, p95 {po['p95']:.0f} ms")
        print(f"loop's own / bare graph (medians): {result['own_ratio_to_bare_graph']:.2f}x")
        pc = result["cpu_ms"]
        print(f"process CPU per incident (medians; moves less with a busy machine than wall "
              f"time): opsloop {pc['opsloop']:.0f} ms, its own {pc['opsloop_own']:.0f} ms, "
              f"bare {pc['bare']:.0f} ms; ratios {result['cpu_ratio_to_bare_graph']:.2f}x and "
              f"{result['own_cpu_ratio_to_bare_graph']:.2f}x")
        print(f"peak RSS: {result['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
