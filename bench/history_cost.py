"""Benchmark: does an incident cost more when the store holds more history?

For each history size (10, 1,000, 10,000 stored incidents by default) it fills a fresh
store with synthetic past incidents (spread over the last year, over the fleet's services
and ten root-cause categories, one in eight with the same automatic fix), then runs the same
scenarios round the loop. It reports the per-incident time (intake to learn) and the time
of the two history reads the loop makes: the guardrails' rate-limit count (automatic
actions on this service in the last hour) and learn's history for improvement signals
(related incidents inside the lookback).

    .venv/bin/python bench/history_cost.py [--sizes 10 1000 10000] [--rounds 2] [--json]
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
from opsloop.graph.runner import OperateLoop
from opsloop.models import Incident
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


def measure(size: int, rounds: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(work_dir=Path(tmp))
        loop = OperateLoop(settings)
        loop.runbooks.search("warm up the index", k=1)
        first = run_scenario(loop, "memory_leak", seed, lambda _m: None).incidents[0]
        services = [s.name for s in _env(loop, first).services()]
        rng = random.Random(seed)
        t0 = time.perf_counter()
        for incident in synthetic_history(first, size, services, rng):
            loop.store.save_incident(incident)
        fill = time.perf_counter() - t0
        per_incident: list[float] = []
        for round_ in range(rounds):
            for name in SCENARIOS:
                run = run_scenario(loop, name, seed + round_ + 1, lambda _m: None)
                per_incident.extend(run.loop_seconds)
        probe = loop.store.incidents(since=first.opened_at - timedelta(days=1))
        reads = _history_reads(loop, first, repeats=20)
        loop.close()
    return {
        "stored": size,
        "fill_s": fill,
        "incidents_run": len(per_incident),
        "per_incident_ms_median": statistics.median(per_incident) * 1000,
        "per_incident_ms_max": max(per_incident) * 1000,
        "rate_limit_read_ms": reads["rate_limit"] * 1000,
        "signal_history_read_ms": reads["history"] * 1000,
        "signal_history_rows": reads["rows"],
        "recent_day_rows": len(probe),
    }


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
        rows = len(loop.store.related(incident, now - timedelta(days=DEFAULT_LOOKBACK_DAYS)))
        hist.append(time.perf_counter() - t0)
    return {"rate_limit": statistics.median(rate), "history": statistics.median(hist),
            "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        print(f"history of {size} incidents…", file=sys.stderr)
        results.append(measure(size, args.rounds, args.seed))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'stored':>8} {'per incident (median)':>22} {'max':>9} {'rate-limit read':>16} "
          f"{'signal history read':>20} {'rows read':>10}")
    for r in results:
        print(f"{r['stored']:>8} {r['per_incident_ms_median']:>19.0f} ms "
              f"{r['per_incident_ms_max']:>6.0f} ms {r['rate_limit_read_ms']:>13.2f} ms "
              f"{r['signal_history_read_ms']:>17.2f} ms {r['signal_history_rows']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
