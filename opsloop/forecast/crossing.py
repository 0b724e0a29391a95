"""When a forecast reaches a limit: expected (the mean), earliest (the upper bound) and
latest (the lower bound) of an interval, in steps after the forecast origin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opsloop.forecast.model import Forecast


@dataclass(frozen=True)
class Crossing:
    """Steps until the limit is reached (1 = the first forecast step; 0 = already there).
    None: not within the horizon. `latest` None with `earliest` set means "maybe, maybe not
    within the horizon": the lower bound never reaches the limit."""

    limit: float
    level: int
    expected: int | None
    earliest: int | None
    latest: int | None

    @property
    def likely(self) -> bool:
        return self.expected is not None


def _first(path: np.ndarray, limit: float) -> int | None:
    hit = np.flatnonzero(path >= limit)
    return int(hit[0]) + 1 if hit.size else None


def crossing(fc: Forecast, limit: float, level: int = 80, now: float | None = None) -> Crossing:
    """When `fc` reaches `limit` (values at or above it), with the `level`% interval's bounds.
    `now`, the newest observed value, at or above the limit makes every time 0."""
    if now is not None and now >= limit:
        return Crossing(limit, level, 0, 0, 0)
    low, high = fc.interval(level)
    earliest = _first(high, limit)
    expected = _first(fc.mean, limit)
    latest = _first(low, limit)
    # Bounds are monotone in the level only pointwise; keep the order the words promise.
    if expected is not None and (earliest is None or earliest > expected):
        earliest = expected
    if latest is not None and expected is not None and latest < expected:
        latest = expected
    return Crossing(limit, level, expected, earliest, latest)
