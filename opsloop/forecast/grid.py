"""From timestamped points to a regular series the models can read.

Capacity questions are about hours and days, so the resolution follows the history held:
hourly once there are three days (daily seasonality is then visible: 24 points a day), 5
minutes below that, 1 minute below an hour. Buckets are anchored at the newest point, so the
last bucket is complete and the forecast starts where the data ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

HOURLY_FROM_MINUTES = 3 * 24 * 60
FIVE_MINUTE_FROM_MINUTES = 60


def step_for(history_minutes: float) -> int:
    """The bucket size, in minutes, for this much history (see the module docstring)."""
    if history_minutes >= HOURLY_FROM_MINUTES:
        return 60
    if history_minutes >= FIVE_MINUTE_FROM_MINUTES:
        return 5
    return 1


@dataclass(frozen=True)
class Grid:
    """A regular series: `values[i]` is the mean of the bucket ending at `end - (n-1-i)*step`."""

    end: datetime
    step_minutes: int
    values: np.ndarray
    filled: int  # empty buckets filled by linear interpolation

    def time_of(self, steps_ahead: float) -> datetime:
        """The time `steps_ahead` buckets after the newest one."""
        return self.end + timedelta(minutes=steps_ahead * self.step_minutes)

    def times(self) -> list[datetime]:
        n = len(self.values)
        return [self.end - timedelta(minutes=(n - 1 - i) * self.step_minutes) for i in range(n)]


def regular(times: Sequence[datetime], values: Sequence[float], step_minutes: int) -> Grid:
    """Bucket means on a regular grid ending at the newest point; non-finite values are
    dropped and empty buckets interpolated. Needs at least one finite point."""
    if len(times) != len(values):
        raise ValueError(f"{len(times)} times but {len(values)} values")
    keep = [(t, float(v)) for t, v in zip(times, values, strict=True) if np.isfinite(v)]
    if not keep:
        raise ValueError("no finite value to forecast from")
    end = max(t for t, _ in keep)
    step = step_minutes * 60.0
    index = np.array([int((end - t).total_seconds() // step) for t, _ in keep])
    vals = np.array([v for _, v in keep])
    n = int(index.max()) + 1
    sums = np.bincount(index, weights=vals, minlength=n)
    counts = np.bincount(index, minlength=n)
    # index 0 is the newest bucket: reverse to oldest first.
    sums, counts = sums[::-1], counts[::-1]
    out = np.full(n, np.nan)
    has = counts > 0
    out[has] = sums[has] / counts[has]
    empty = int((~has).sum())
    if empty:
        x = np.arange(n)
        out[~has] = np.interp(x[~has], x[has], out[has])
    return Grid(end=end, step_minutes=step_minutes, values=out, filled=empty)
