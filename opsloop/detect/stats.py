"""Small streaming statistics the detectors share: bounded state, plain floats, no look-ahead."""

from __future__ import annotations

import math


class EwStats:
    """Exponentially weighted mean and variance; `alpha` is the weight of the newest value."""

    __slots__ = ("alpha", "count", "mean", "var")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.count = 0
        self.mean = 0.0
        self.var = 0.0

    def update(self, x: float) -> None:
        self.count += 1
        # A plain running mean until 1/alpha values are in, so the start is not biased to 0.
        a = max(self.alpha, 1.0 / self.count)
        d = x - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)

    def update_clipped(self, x: float, limit: float, floor: float) -> None:
        """Learn from `x` pulled in to `limit` deviations of the mean."""
        if self.count > 10:
            sd = max(math.sqrt(self.var), floor)
            x = min(max(x, self.mean - limit * sd), self.mean + limit * sd)
        self.update(x)

    def z(self, x: float, floor: float) -> float:
        """How many deviations `x` is from the mean (the deviation floored at `floor`)."""
        return (x - self.mean) / max(math.sqrt(self.var), floor)

    def state(self) -> list[float]:
        return [self.alpha, self.count, self.mean, self.var]

    @classmethod
    def restore(cls, state: list[float]) -> EwStats:
        s = cls(state[0])
        s.count, s.mean, s.var = int(state[1]), state[2], state[3]
        return s

