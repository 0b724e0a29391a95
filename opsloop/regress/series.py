"""Per-minute telemetry to the 5-minute series change points are found on.

A bucket's value is the median of its minutes: one slow minute moves it little, and a
5-minute point has a fifth of the per-minute points' count (detection time) and less of
their noise. Buckets are aligned to the clock (10:00, 10:05, ...) so two runs cut the same
minutes the same way; a bucket with fewer than half its minutes (the one still filling)
is left out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np

STEP_MINUTES = 5


def resample(points: Iterable[tuple[datetime, float]], step_minutes: int = STEP_MINUTES
             ) -> tuple[list[datetime], list[float]]:
    """(bucket start, median) per clock-aligned bucket holding at least half its minutes."""
    step = step_minutes * 60
    buckets: dict[int, list[float]] = {}
    for at, value in points:
        if value is None or not math.isfinite(value):
            continue
        key = int(at.timestamp()) // step
        buckets.setdefault(key, []).append(value)
    keep = sorted(k for k, v in buckets.items() if 2 * len(v) >= step_minutes)
    return ([datetime.fromtimestamp(k * step, UTC) for k in keep],
            [float(np.median(buckets[k])) for k in keep])


def step_of(times: list[datetime]) -> timedelta:
    """The series' resolution: the smallest gap between points (missing buckets widen others)."""
    if len(times) < 2:
        return timedelta(minutes=STEP_MINUTES)
    return min(b - a for a, b in itertools.pairwise(times))
