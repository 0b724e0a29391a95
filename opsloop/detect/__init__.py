"""Streaming anomaly detectors: one score in [0, 1] per point, from the past only.

Pure algorithms over numbers (no telemetry, no policy): `opsloop.detection` runs them on a
production's metrics, `opsloop detect` on CSV files, `opsloop eval anomalies` scores them on NAB.
"""

from opsloop.detect.ensemble import NAME, DetectorSettings, Ensemble
from opsloop.detect.series import (
    Series,
    SeriesError,
    points_per_day,
    read_series,
    score_file,
    score_values,
    write_scores,
)

__all__ = [
    "NAME",
    "DetectorSettings",
    "Ensemble",
    "Series",
    "SeriesError",
    "points_per_day",
    "read_series",
    "score_file",
    "score_values",
    "write_scores",
]
