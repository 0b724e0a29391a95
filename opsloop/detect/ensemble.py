"""The detector ensemble: four surprises, each scaled by its own usual extremes, one score.

Per point, each view (forecast residual, seasonal baseline, level shift, distribution
shift; see components)
gives a surprise z in standard deviations. Each z is set against that view's usual extreme,
the median of its largest z in each of the last few multi-day blocks — so a series that is
always spiky must spike beyond its usual worst to score high — as z / (z + usual), in [0, 1).
The score is half the largest of these and half their mean. A reported peak then holds
lower scores at 0 for a day (`quiet_days`): one report per event, not one per minute of it.
The unquieted value is kept as `level`, for rules that need a condition to hold for minutes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from opsloop.detect.components import (
    DistributionShift,
    ForecastResidual,
    Range,
    RecentShift,
    SeasonalBaseline,
)

NAME = "ensemble(forecast-residual, seasonal-baseline, level-shift, distribution-shift)"


@dataclass(frozen=True)
class DetectorSettings:
    """The ensemble's settings, in days so they mean the same at any sampling interval."""

    season_days: int = 7        # days of same-time-of-day history for the seasonal baseline
    block_days: float = 3.0     # one "usual extreme" per block of this many days
    blocks: int = 5             # the median over this many blocks
    quiet_days: float = 1.0     # after a reported peak, lower scores are held at 0 this long
    shift_days: float = 0.01    # recent points averaged for the level-shift view (0: off)
    shift_baseline_days: float = 0.1  # the points before them whose median is the old level
    # The distribution view: a histogram of this many recent points (0: off) over this many
    # bins; 50 points in 10 bins keeps about 5 expected per bin, the G-test's usual floor.
    distribution_points: int = 50
    distribution_bins: int = 10
    level_alpha: float = 0.2    # forecast smoothing
    error_alpha: float = 0.002  # memory of the usual error of every view


class BlockMaxima:
    """The median of the last few blocks' largest value: how big a usual extreme is."""

    def __init__(self, block: int, blocks: int) -> None:
        self.block = max(block, 1)
        self.maxima: deque[float] = deque(maxlen=blocks)
        self.current = 0.0
        self.filled = 0

    def update(self, x: float) -> None:
        self.current = max(self.current, x)
        self.filled += 1
        if self.filled == self.block:
            self.maxima.append(self.current)
            self.current = 0.0
            self.filled = 0

    def reference(self) -> float:
        if not self.maxima:
            return 0.0
        ordered = sorted(self.maxima)
        return ordered[len(ordered) // 2]


class Ensemble:
    """One series' detector: `update(value)` returns the anomaly score of that value."""

    def __init__(self, points_per_day: int, settings: DetectorSettings | None = None) -> None:
        self.settings = s = settings or DetectorSettings()
        self.points_per_day = max(points_per_day, 1)
        self.range = Range()
        self.forecast = ForecastResidual(s.level_alpha, s.error_alpha)
        self.seasonal = SeasonalBaseline(self.points_per_day, s.season_days, s.error_alpha)
        self.shift = (
            RecentShift(round(s.shift_days * self.points_per_day),
                        round(s.shift_baseline_days * self.points_per_day), s.error_alpha)
            if s.shift_days > 0 and s.shift_baseline_days > 0 else None
        )
        self.distribution = (
            DistributionShift(s.distribution_points, s.distribution_bins, s.error_alpha)
            if s.distribution_points > 0 else None
        )
        views = 2 + (self.shift is not None) + (self.distribution is not None)
        self.usual = [BlockMaxima(round(s.block_days * self.points_per_day), s.blocks)
                      for _ in range(views)]
        quiet = round(s.quiet_days * self.points_per_day)
        self.recent: deque[float] = deque(maxlen=max(quiet, 1))
        self.quiet = quiet > 0
        self.level = 0.0

    def update(self, value: float) -> float:
        self.range.update(value)
        span = self.range.span
        zs = [self.forecast.update(value, span), self.seasonal.update(value, span)]
        if self.shift is not None:
            zs.append(self.shift.update(value, span))
        if self.distribution is not None:
            zs.append(self.distribution.update(value, self.range.low, span))
        ratios = []
        for z, maxima in zip(zs, self.usual, strict=True):
            usual = maxima.reference()
            maxima.update(z)
            if usual > 0:  # a view still learning what is usual has no vote yet
                ratios.append(z / (z + usual))
        # Half the strongest view, half their average: one view alone can report an
        # anomaly, and views that agree report it with more confidence.
        score = 0.5 * max(ratios) + 0.5 * sum(ratios) / len(ratios) if ratios else 0.0
        self.level = score
        if self.quiet:
            peak = max(self.recent, default=0.0)
            self.recent.append(score)
            if score <= peak:
                return 0.0
        return score

    def state(self) -> dict[str, Any]:
        """Everything the detector remembers, as plain JSON data (bounded by the settings)."""
        return {
            "settings": asdict(self.settings),
            "points_per_day": self.points_per_day,
            "range": [self.range.low, self.range.high],
            "forecast": self.forecast.state(),
            "seasonal": self.seasonal.state(),
            "shift": self.shift.state() if self.shift is not None else None,
            "distribution": (
                self.distribution.state() if self.distribution is not None else None),
            "usual": [[list(m.maxima), m.current, m.filled] for m in self.usual],
            "recent": list(self.recent),
            "level": self.level,
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Ensemble:
        """A detector that continues exactly where the one that wrote `state` stopped."""
        e = cls(int(state["points_per_day"]), DetectorSettings(**state["settings"]))
        e.range.low, e.range.high = state["range"]
        e.forecast.restore(state["forecast"])
        e.seasonal.restore(state["seasonal"])
        if e.shift is not None:
            e.shift.restore(state["shift"])
        if e.distribution is not None:
            e.distribution.restore(state["distribution"])
        for m, (maxima, current, filled) in zip(e.usual, state["usual"], strict=True):
            m.maxima.extend(maxima)
            m.current, m.filled = current, filled
        e.recent.extend(state["recent"])
        e.level = state["level"]
        return e
