"""Change points in one series, deterministic: where its mean steps, and whether it did.

The method, fixed (every number below is a named constant a test pins):

1. **Noise.** Two robust estimates, the larger kept: the point-to-point one,
   1.4826 * MAD(first differences) / sqrt(2) (a step is one large difference and an outlier
   two, so neither inflates it, where a plain std would hide the very step it is meant to
   find), and the same over means of `BLOCK` consecutive points, times sqrt(BLOCK): the
   long-run noise, which is larger when neighbours are correlated (real metrics drift and
   wander; independent noise is the easy case). Quantised values whose differences are
   mostly zero fall back to the std of the differences; a constant series has no change
   points.
   Outliers are then replaced by the median of the `MIN_SIZE` points either side when they
   are more than `OUTLIER` point-to-point noises from it (a Hampel filter), so a burst of
   wild points cannot carve out a segment; means and tests below use the raw values.
2. **Segmentation.** ruptures' `KernelCPD` with the linear kernel (the l2 cost: a change in
   mean) and its exact Pelt search, compiled in C, on the series divided by sigma, with a
   penalty of `PENALTY * ln(n)` per change (3 ln n: stricter than BIC's 2 ln n; it is what
   holds false alarms to <= 1 per 100 stable series in `opsloop eval regressions`) and
   segments of at least `MIN_SIZE` points (30 minutes at 5-minute resolution).
3. **Significance.** Each change is tested on the points between its neighbouring change
   points, before against after, with a two-sided Mann-Whitney U test (rank-based: a few
   wild points do not make or break a change). The least significant change with p above
   `ALPHA` is dropped, its neighbours' segments merge, and the rest are tested again,
   until every change left is significant.

No randomness anywhere: the same series gives the same change points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import ruptures as rpt
from numpy.typing import ArrayLike, NDArray
from scipy.stats import mannwhitneyu

PENALTY = 3.0  # times ln(n), per change, on the series in units of its noise
MIN_SIZE = 6  # points per segment: 30 minutes at 5-minute resolution
ALPHA = 1e-3  # Mann-Whitney U p-value a change must beat
BLOCK = 6  # points per block mean in the long-run noise estimate
OUTLIER = 4.0  # point-to-point noises from the local median that make a point an outlier
_MAD_TO_SIGMA = 1.4826  # MAD of a normal sample times this is its standard deviation


@dataclass(frozen=True)
class Detector:
    """The detector's settings; the defaults are the documented method above."""

    penalty: float = PENALTY
    min_size: int = MIN_SIZE
    alpha: float = ALPHA


@dataclass(frozen=True)
class ChangePoint:
    """One step in a series: `index` is the first point of the new level."""

    index: int
    n_before: int
    n_after: int
    mean_before: float
    mean_after: float
    median_before: float
    median_after: float
    p_value: float

    @property
    def change(self) -> float | None:
        """Relative change of the mean (0.07 = 7% higher); None when it was zero before."""
        return relative(self.mean_before, self.mean_after)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change}


def relative(before: float, after: float) -> float | None:
    """(after - before) / |before|, or None when `before` is zero or either is not finite."""
    if before == 0 or not (math.isfinite(before) and math.isfinite(after)):
        return None
    return (after - before) / abs(before)


def noise_scale(values: ArrayLike) -> float:
    """The series' noise (a standard deviation): the larger of the point-to-point and the
    long-run robust estimates (see the module's note)."""
    x = np.asarray(values, dtype=float)
    sigma = _mad_sigma(x)
    if x.size >= 4 * BLOCK:
        blocks = x[:x.size // BLOCK * BLOCK].reshape(-1, BLOCK).mean(axis=1)
        sigma = max(sigma, _mad_sigma(blocks) * math.sqrt(BLOCK))
    return sigma


def _mad_sigma(x: NDArray[np.float64]) -> float:
    """Point-to-point noise from the MAD of first differences (std of them when MAD is 0)."""
    if x.size < 3:
        return 0.0
    diffs = np.diff(x)
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2)
    if sigma == 0.0:  # mostly-equal neighbours (quantised values): the plain spread instead
        sigma = float(np.std(diffs)) / math.sqrt(2)
    return sigma


def _without_outliers(x: NDArray[np.float64], half: int) -> NDArray[np.float64]:
    """Points further than OUTLIER point-to-point noises from their local median, replaced
    by it (Hampel filter, window 2*half+1)."""
    sigma = _mad_sigma(x)
    if sigma <= 0.0:
        return x
    padded = np.pad(x, half, mode="edge")
    local = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    wild = np.abs(x - local) > OUTLIER * sigma
    return np.where(wild, local, x)


def change_points(values: ArrayLike, detector: Detector | None = None) -> list[ChangePoint]:
    """The significant steps in the mean of `values` (finite numbers, oldest first)."""
    d = detector or Detector()
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2 * d.min_size or not np.all(np.isfinite(x)):
        return []
    sigma = noise_scale(x)
    if sigma <= 0.0:
        return []
    clean = _without_outliers(x, d.min_size)
    z = ((clean - np.median(clean)) / sigma).reshape(-1, 1)
    found = rpt.KernelCPD(kernel="linear", min_size=d.min_size).fit(z).predict(
        pen=d.penalty * math.log(n))
    breaks = [int(b) for b in found[:-1]]  # ruptures ends the list with n itself
    # Each pass drops one change, so this ends after at most len(breaks) passes.
    while breaks:
        tested = _test(x, breaks)
        worst = max(range(len(tested)), key=lambda i: tested[i].p_value)
        if tested[worst].p_value < d.alpha:
            return tested
        del breaks[worst]
    return []


def _test(x: NDArray[np.float64], breaks: list[int]) -> list[ChangePoint]:
    edges = [0, *breaks, x.size]
    points = []
    for i, at in enumerate(breaks):
        before, after = x[edges[i]:at], x[at:edges[i + 2]]
        p = float(mannwhitneyu(before, after, alternative="two-sided").pvalue)
        points.append(ChangePoint(
            index=at, n_before=before.size, n_after=after.size,
            mean_before=float(before.mean()), mean_after=float(after.mean()),
            median_before=float(np.median(before)), median_after=float(np.median(after)),
            p_value=p if math.isfinite(p) else 1.0))
    return points
