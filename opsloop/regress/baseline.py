"""A service's baseline for one metric: where it normally sits and how much it wanders."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from opsloop.regress.changepoints import noise_scale


@dataclass(frozen=True)
class Baseline:
    """Summary of a metric's baseline period (5-minute points)."""

    points: int
    mean: float
    median: float
    p05: float
    p95: float
    noise: float  # point-to-point noise as a share of the median (0.05 = 5%)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def baseline(values: ArrayLike) -> Baseline | None:
    """The baseline of these values, or None when there are none."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    median = float(np.median(x))
    sigma = noise_scale(x)
    return Baseline(points=int(x.size), mean=float(x.mean()), median=median,
                    p05=float(np.percentile(x, 5)), p95=float(np.percentile(x, 95)),
                    noise=sigma / abs(median) if median else 0.0)
