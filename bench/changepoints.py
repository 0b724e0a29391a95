"""Change-point detection at fleet scale: N series of D days at 5-minute resolution through
`opsloop.regress.changepoints.change_points` (the performance agent's detector), one process.

    .venv/bin/python bench/changepoints.py [--series 1000] [--days 30] [--seed 7] [--json]

Each series is a level of 100 with 5% Gaussian noise per point; every tenth has a 5% step
at a random point, so the timing covers both the stable case and the one with a change. The
series are generated before the clock starts; the time is detection only (noise estimate,
outlier filter, ruptures KernelCPD Pelt, Mann-Whitney per change), wall clock.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from opsloop.regress.changepoints import Detector, change_points

POINTS_PER_DAY = 288  # 5-minute resolution


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.days * POINTS_PER_DAY
    rng = np.random.default_rng(args.seed)
    series, steps = [], []
    for i in range(args.series):
        x = 100.0 * (1.0 + 0.05 * rng.standard_normal(n))
        if i % 10 == 0:
            at = int(rng.integers(n // 5, 4 * n // 5))
            x[at:] += 5.0
            steps.append(i)
        series.append(x)
    detector = Detector()
    found: list[int] = []
    slowest = 0.0
    began = time.perf_counter()
    for x in series:
        one = time.perf_counter()
        found.append(len(change_points(x, detector)))
        slowest = max(slowest, time.perf_counter() - one)
    seconds = time.perf_counter() - began
    stepped = set(steps)
    result = {
        "series": args.series, "days": args.days, "points_per_series": n,
        "seconds": round(seconds, 2), "ms_per_series": round(1000 * seconds / args.series, 1),
        "slowest_ms": round(1000 * slowest, 1),
        "stepped_series": len(stepped),
        "stepped_with_a_change": sum(1 for i in stepped if found[i] > 0),
        "stable_with_a_change": sum(1 for i, k in enumerate(found) if k and i not in stepped),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"change points: {result['series']} series x {args.days} days at 5 minutes "
              f"({n} points each) in {result['seconds']:.1f} s, one process "
              f"({result['ms_per_series']:.1f} ms per series, slowest "
              f"{result['slowest_ms']:.0f} ms); steps found in "
              f"{result['stepped_with_a_change']}/{result['stepped_series']} stepped series, "
              f"a change in {result['stable_with_a_change']} stable ones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
