"""Benchmark: does an incident cost more when the store holds more history?

For each history size (0, 100, 1,000, 10,000 stored incidents by default) it fills a fresh
store directly with synthetic past incidents (spread over the last year, over the fleet's
services and ten root-cause categories, one in eight with the same automatic fix), then runs
the same scenarios round the loop on every store in turn, round after round. It reports the
per-incident time (intake to learn), its ratio to the first (empty) store's, the time learn
spends writing signal files (more history raises more signals, and longer ones), and the
time of the two history reads the loop makes: the guardrails' rate-limit count (automatic
actions on this service in the last hour) and learn's history for improvement signals
(related incidents inside the lookback, as past-incident records).

    .venv/bin/python bench/history_cost.py [--sizes 0 100 1000 10000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from opsloop.environments import Production, open_environment
from opsloop.graph.nodes import learn as learn_node
from opsloop.graph.runner import OperateLoop
from opsloop.models import Incident, Signal
from opsloop.settings import Settings
from opsloop.watch import run_scenario

SCENARIOS = ("memory_leak", "flag_rollout_errors", "disk_filling")
# A plausible mix: causes and fixes vary across the history, as they do in a real fleet.
CATEGORIES = ("bad_deploy", "memory_leak", "dependency_outage", "traffic_surge", "disk_filling",
              "flag_rollout_errors", "latency_regression", "cost_runaway", "config_error",
              "certificate_expiry")


def synthetic_history(template: Incident, size: int, services: list[str],
                      rng: random.Random) -> list[Incident]:
    """`size` past incidents like `template`, on random services, over the last year."""
    lean = template.model_copy(update={"diagnoses": [], "timeline": []})
    now = template.opened_at
    out = []
    for n in range(size):
        opened = now - timedelta(minutes=rng.uniform(60, 365 * 24 * 60))
        service = rng.choice(services)
        body = json.loads(lean.model_dump_json())
        text = json.dumps(body).replace(template.services[0], service)
        incident = Incident.model_validate_json(text)
        cause = incident.root_cause
        out.append(incident.model_copy(update={
            "id": f"HIS-{n:06d}", "opened_at": opened, "services": [service],
            "environment": f"{template.environment}-past-{n % 7}",
            "root_cause": cause.model_copy(update={"category": rng.choice(CATEGORIES)})
            if cause else None,
            # one in eight past incidents ran the same kind of fix as the template
            "actions": incident.actions if rng.random() < 1 / 8 else [],
        }))
    return out


class Store:
    """One size of history: a loop whose store holds `size` synthetic past incidents."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self._tmp = tempfile.TemporaryDirectory()
        self.loop = OperateLoop(Settings(work_dir=Path(self._tmp.name)))
        self.loop.runbooks.search("warm up the index", k=1)
        self.first = run_scenario(self.loop, "memory_leak", seed, lambda _m: None).incidents[0]
        services = [s.name for s in _env(self.loop, self.first).services()]
        t0 = time.perf_counter()
        for incident in synthetic_history(self.first, size, services, random.Random(seed)):
            self.loop.store.save_incident(incident)
        self.fill = time.perf_counter() - t0
        self.per_incident: list[float] = []
        self.signal_writes: list[float] = []

    def close(self) -> None:
        self.loop.close()
        self._tmp.cleanup()


def measure(sizes: list[int], rounds: int, seed: int) -> list[dict[str, float]]:
    """Every size's store is filled first; then the rounds run the same scenarios on each in
    turn, so a change in the machine's load falls on all sizes alike."""
    stores = []
    for size in sizes:
        print(f"filling a store with {size} incidents…", file=sys.stderr)
        stores.append(Store(size, seed))
    timed: list[float] = []
    real_write = learn_node.write_signals

    def write_signals(signals: list[Signal], directory: Path) -> list[Path]:
        t0 = time.perf_counter()
        try:
            return real_write(signals, directory)
        finally:
            timed.append(time.perf_counter() - t0)

    learn_node.write_signals = write_signals
    try:
        for round_ in range(rounds):
            print(f"round {round_ + 1} of {rounds}…", file=sys.stderr)
            for store in stores:
                for name in SCENARIOS:
                    timed.clear()
                    run = run_scenario(store.loop, name, seed + round_ + 1, lambda _m: None)
                    store.per_incident.extend(run.loop_seconds)
                    store.signal_writes.append(sum(timed) / max(len(run.loop_seconds), 1))
    finally:
        learn_node.write_signals = real_write
    results = []
    for store in stores:
        reads = _history_reads(store.loop, store.first, repeats=20)
        results.append({
            "stored": store.size,
            "fill_s": store.fill,
            "incidents_run": len(store.per_incident),
            "per_incident_ms_median": statistics.median(store.per_incident) * 1000,
            "per_incident_ms_max": max(store.per_incident) * 1000,
            "signal_files_ms_median": statistics.median(store.signal_writes) * 1000,
            "rate_limit_read_ms": reads["rate_limit"] * 1000,
            "signal_history_read_ms": reads["history"] * 1000,
            "signal_history_rows": reads["rows"],
        })
        store.close()
    base = results[0]["per_incident_ms_median"]
    for r in results:
        r["ratio_to_first"] = r["per_incident_ms_median"] / base
    return results


def _env(loop: OperateLoop, incident: Incident) -> Production:

    return open_environment(incident.environment, loop.settings)


def _history_reads(loop: OperateLoop, incident: Incident, repeats: int) -> dict[str, float]:
    """The two reads the loop makes of history, timed on their own (median of `repeats`)."""
    from opsloop.agents.signals import DEFAULT_LOOKBACK_DAYS

    rate, hist, rows = [], [], 0
    now = incident.opened_at
    for _ in range(repeats):
        t0 = time.perf_counter()
        loop.store.auto_actions_since(incident.environment, incident.services[0],
                                      now - timedelta(hours=1), now, excluding=incident.id)
        rate.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        since = now - timedelta(days=DEFAULT_LOOKBACK_DAYS)
        rows = len(loop.store.related_history(incident, since))
        hist.append(time.perf_counter() - t0)
    return {"rate_limit": statistics.median(rate), "history": statistics.median(hist),
            "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.sizes, args.rounds, args.seed)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'stored':>8} {'per incident (median)':>22} {'ratio':>6} {'max':>9} "
          f"{'signal files':>13} {'rate-limit read':>16} {'signal history read':>20} "
          f"{'rows read':>10}")
    for r in results:
        print(f"{r['stored']:>8} {r['per_incident_ms_median']:>19.0f} ms "
              f"{r['ratio_to_first']:>5.2f}x {r['per_incident_ms_max']:>6.0f} ms "
              f"{r['signal_files_ms_median']:>10.1f} ms {r['rate_limit_read_ms']:>13.2f} ms "
              f"{r['signal_history_read_ms']:>17.2f} ms {r['signal_history_rows']:>10}")
    print(f"ratio: per-incident median over the {results[0]['stored']}-incident store's, "
          "measured in the same run (rounds interleaved across sizes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
