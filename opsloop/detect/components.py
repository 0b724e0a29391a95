"""The ensemble's views of a series, each a surprise in standard deviations per point.

- `ForecastResidual`: the distance from an exponentially smoothed forecast, in units of that
  forecast's usual error (short memory: catches jumps and spikes).
- `RecentShift`: how far the mean of the last few points is from the median of the points
  before them, in units of that difference's usual size (catches a level shift for as long
  as the old level is still in its baseline, where the forecast adapts within minutes).
- `DistributionShift`: the relative entropy between the histogram of the last few points and
  the series' long-run histogram (a G-test), as a normal quantile (catches a change of
  shape — more spikes, a flat line, a new spread — that no single point shows).
- `SeasonalBaseline`: the distance from the median of the same time of day on the previous
  days, in units of that baseline's usual error (catches what is odd for the hour).

Both learn from every point after scoring it, so a score never depends on its own point.
"""

from __future__ import annotations

import math
from collections import deque

from opsloop.detect.stats import EwStats


class Range:
    """The running minimum and maximum: a scale for error floors on any series."""

    __slots__ = ("high", "low")

    def __init__(self) -> None:
        self.low = math.inf
        self.high = -math.inf

    def update(self, x: float) -> None:
        self.low = min(self.low, x)
        self.high = max(self.high, x)

    @property
    def span(self) -> float:
        return self.high - self.low if self.high > self.low else 0.0


def _floor(span: float) -> float:
    # A flat series has no error at all; a tiny floor keeps the first change finite.
    return 1e-3 * span + 1e-12


class ForecastResidual:
    def __init__(self, level_alpha: float = 0.2, error_alpha: float = 0.005) -> None:
        self.level_alpha = level_alpha
        self.level: float | None = None
        self.errors = EwStats(error_alpha)

    def update(self, x: float, span: float) -> float:
        if self.level is None:
            self.level = x
            return 0.0
        error = x - self.level
        z = abs(self.errors.z(error, floor=_floor(span)))
        self.errors.update(error)
        self.level += self.level_alpha * error
        return z if self.errors.count > 10 else 0.0

    def state(self) -> dict[str, object]:
        return {"level": self.level, "errors": self.errors.state()}

    def restore(self, state: dict[str, object]) -> None:
        self.level = state["level"]  # type: ignore[assignment]
        self.errors = EwStats.restore(state["errors"])  # type: ignore[arg-type]


class SeasonalBaseline:
    def __init__(self, period: int, days: int = 7, error_alpha: float = 0.005) -> None:
        self.period = max(period, 1)
        self.history: deque[float] = deque(maxlen=self.period * days)
        self.errors = EwStats(error_alpha)

    def update(self, x: float, span: float) -> float:
        h = self.history
        n = len(h)
        z = 0.0
        if self.period > 1 and n >= self.period:
            same_time = sorted(h[n - k * self.period] for k in range(1, n // self.period + 1))
            m = len(same_time)
            median = (same_time[(m - 1) // 2] + same_time[m // 2]) / 2.0
            error = x - median
            z = abs(self.errors.z(error, floor=_floor(span)))
            self.errors.update(error)
            if self.errors.count <= self.period:
                z = 0.0
        h.append(x)
        return z

    def state(self) -> dict[str, object]:
        return {"history": list(self.history), "errors": self.errors.state()}

    def restore(self, state: dict[str, object]) -> None:
        self.history.extend(state["history"])  # type: ignore[arg-type]
        self.errors = EwStats.restore(state["errors"])  # type: ignore[arg-type]


class RecentShift:
    def __init__(self, recent: int, baseline: int, error_alpha: float = 0.005) -> None:
        self.recent = max(recent, 1)
        self.baseline = max(baseline, 1)
        self.window: deque[float] = deque(maxlen=self.recent + self.baseline)
        self.recent_sum = 0.0
        self.errors = EwStats(error_alpha)

    def update(self, x: float, span: float) -> float:
        w = self.window
        if len(w) >= self.recent:
            self.recent_sum -= w[len(w) - self.recent]
        full = len(w) == w.maxlen
        w.append(x)
        self.recent_sum += x
        if not full:
            return 0.0
        before = sorted(w[i] for i in range(self.baseline))
        m = len(before)
        median = (before[(m - 1) // 2] + before[m // 2]) / 2.0
        error = self.recent_sum / self.recent - median
        z = abs(self.errors.z(error, floor=_floor(span)))
        # A shift that lasts must not teach the scale that it is normal within minutes.
        self.errors.update_clipped(error, limit=3.0, floor=_floor(span))
        return z if self.errors.count > 10 else 0.0

    def state(self) -> dict[str, object]:
        return {"window": list(self.window), "recent_sum": self.recent_sum,
                "errors": self.errors.state()}

    def restore(self, state: dict[str, object]) -> None:
        self.window.extend(state["window"])  # type: ignore[arg-type]
        self.recent_sum = state["recent_sum"]  # type: ignore[assignment]
        self.errors = EwStats.restore(state["errors"])  # type: ignore[arg-type]


class DistributionShift:
    """Relative entropy of the recent points' histogram against the long-run one (G-test)."""

    def __init__(self, recent: int, bins: int, memory_alpha: float) -> None:
        self.bins = bins
        self.recent: deque[int] = deque(maxlen=max(recent, 2))
        self.counts = [0] * bins
        self.reference = [1.0 / bins] * bins
        self.memory_alpha = memory_alpha
        self.seen = 0

    def update(self, x: float, low: float, span: float) -> float:
        b = min(int((x - low) / span * self.bins), self.bins - 1) if span > 0 else 0
        r = self.recent
        if len(r) == r.maxlen:
            self.counts[r[0]] -= 1
        r.append(b)
        self.counts[b] += 1
        self.seen += 1
        g = 0.0
        n = len(r)
        for c, q in zip(self.counts, self.reference, strict=True):
            if c:
                g += c * math.log(c / (n * max(q, 1e-4)))
        a = max(self.memory_alpha, 1.0 / self.seen)
        self.reference = [(1.0 - a) * q + (a if i == b else 0.0)
                          for i, q in enumerate(self.reference)]
        if self.seen <= 2 * n:
            return 0.0
        # 2G is chi-squared with bins - 1 degrees of freedom: as a normal quantile
        # (Wilson-Hilferty), so it reads in standard deviations like the other views.
        k = float(self.bins - 1)
        x2 = max(2.0 * g, 0.0)
        return max(0.0, ((x2 / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k)))

    def state(self) -> dict[str, object]:
        return {"recent": list(self.recent), "counts": self.counts,
                "reference": self.reference, "seen": self.seen}

    def restore(self, state: dict[str, object]) -> None:
        self.recent.extend(state["recent"])  # type: ignore[arg-type]
        self.counts = list(state["counts"])  # type: ignore[call-overload]
        self.reference = list(state["reference"])  # type: ignore[call-overload]
        self.seen = state["seen"]  # type: ignore[assignment]
