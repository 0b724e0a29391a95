"""Forecasting at fleet scale: N series of D days at 5-minute resolution through the capacity
agent's path (opsloop.forecast: hourly grid, the model rule, a 48-hour forecast with 80% and
95% intervals, the limit crossing), as opsloop/scheduled/agents/capacity.py does per series.

    .venv/bin/python bench/forecast.py [--series 1000] [--days 30] [--jobs 2] [--seed 7] [--json]

Three in four series are levels (utilisation with a ±10% daily swing peaking at 14:00, every
other one with busier Mondays, 2% noise); one in four is a fill (a disk growing linearly with
0.3% noise). They are generated before the clock starts; the time is regridding, model choice,
fitting and forecasting, wall clock, in `--jobs` processes (the machine has 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np

from opsloop.forecast import Kind, crossing, forecast, regular, step_for

POINTS_PER_DAY = 288  # 5-minute resolution
HORIZON_MINUTES = 48 * 60
T0 = datetime(2026, 11, 2, tzinfo=UTC)


def make_series(i: int, days: int, seed: int) -> tuple[Kind, np.ndarray]:
    rng = np.random.default_rng(seed + i)
    n = days * POINTS_PER_DAY
    hours = np.arange(n) / 12
    if i % 4 == 3:
        y = 0.3 + 0.4 * np.arange(n) / n
        return Kind.FILL, y * (1 + 0.003 * rng.standard_normal(n))
    level = rng.uniform(0.2, 0.6)
    y = level * (1 + 0.1 * np.sin(2 * np.pi * (hours - 8) / 24))
    if i % 2:
        y *= 1 + 0.3 * ((hours // 24) % 7 == 0)
    return Kind.LEVEL, y * (1 + 0.02 * rng.standard_normal(n))


def one(job: tuple[Kind, np.ndarray]) -> tuple[str, float]:
    """The agent's per-series work; returns the model chosen and its seconds."""
    kind, y = job
    started = time.perf_counter()
    times = [T0 + timedelta(minutes=5 * k) for k in range(len(y))]
    # As the agent: a fill keeps 5-minute points, a level follows the history held.
    step = 5 if kind is Kind.FILL else step_for(5 * (len(y) - 1))
    grid = regular(times, y, step)
    fc = forecast(grid.values, step, HORIZON_MINUTES // step, kind)
    crossing(fc, 1.0, now=float(y[-1]))
    return fc.model, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    jobs = [make_series(i, args.days, args.seed) for i in range(args.series)]
    began = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            done = list(pool.map(one, jobs, chunksize=max(1, len(jobs) // (8 * args.jobs))))
    else:
        done = [one(j) for j in jobs]
    seconds = time.perf_counter() - began
    models: dict[str, int] = {}
    for model, _ in done:
        models[model] = models.get(model, 0) + 1
    per = [s for _, s in done]
    result = {"series": args.series, "days": args.days,
              "points_per_series": args.days * POINTS_PER_DAY, "jobs": args.jobs,
              "seconds": round(seconds, 1),
              "ms_per_series_one_core": round(1000 * float(np.mean(per)), 1),
              "slowest_ms": round(1000 * max(per), 1), "models": models}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"forecast: {args.series} series × {args.days} days at 5 min "
              f"({result['points_per_series']} points each), 48 h ahead with 80%/95% "
              f"intervals: {seconds:.1f} s on {args.jobs} process(es) "
              f"({result['ms_per_series_one_core']} ms a series on one core, slowest "
              f"{result['slowest_ms']} ms)")
        for model, count in sorted(models.items()):
            print(f"  {count:5d} × {model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
