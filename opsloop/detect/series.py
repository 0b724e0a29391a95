"""Whole series in and out: NAB's CSV format, and scoring a series from its first row."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from opsloop.detect.ensemble import DetectorSettings, Ensemble

DAY_SECONDS = 86400


class SeriesError(ValueError):
    """A CSV that is not `timestamp,value` rows; the message names the file, line and value."""


@dataclass(frozen=True)
class Series:
    path: Path
    timestamps: list[str]
    values: list[float]
    texts: list[str]  # the values as written, copied to the output unchanged

    @property
    def per_day(self) -> int:
        """Points per day, from the timestamps' spacing."""
        return points_per_day(self.timestamps)


def read_series(path: Path) -> Series:
    """A NAB-format CSV: a `timestamp,value` header, then one row per point in time order."""
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise SeriesError(f"{path}: cannot read: {exc}") from None
    if not rows or [c.strip() for c in rows[0][:2]] != ["timestamp", "value"]:
        raise SeriesError(f"{path}:1: expected the header `timestamp,value`")
    stamps: list[str] = []
    values: list[float] = []
    texts: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            raise SeriesError(f"{path}:{line}: expected `timestamp,value`, got {row!r}")
        try:
            values.append(float(row[1]))
        except ValueError:
            raise SeriesError(f"{path}:{line}: value {row[1]!r} is not a number") from None
        stamps.append(row[0])
        texts.append(row[1])
    if len(stamps) < 2:
        raise SeriesError(f"{path}: needs at least two rows, has {len(stamps)}")
    return Series(path, stamps, values, texts)


def points_per_day(timestamps: Sequence[str]) -> int:
    """Rows per day, from the median of the first intervals (1 when it cannot be told)."""
    try:
        times = [datetime.fromisoformat(t.strip()) for t in timestamps[:101]]
    except ValueError as exc:
        raise SeriesError(f"timestamp not ISO 8601: {exc}") from None
    gaps = sorted((b - a).total_seconds() for a, b in pairwise(times))
    gap = gaps[len(gaps) // 2] if gaps else 0.0
    return max(1, round(DAY_SECONDS / gap)) if gap > 0 else 1


def score_values(
    values: Sequence[float], per_day: int, settings: DetectorSettings | None = None
) -> list[float]:
    """Each value's anomaly score, reading the series once in order (no look-ahead)."""
    detector = Ensemble(per_day, settings)
    return [detector.update(v) for v in values]


def score_file(path: Path, settings: DetectorSettings | None = None) -> tuple[Series, list[float]]:
    """A NAB-format CSV read and scored, its points per day taken from its timestamps;
    SeriesError names the file when it cannot be read."""
    series = read_series(path)
    return series, score_values(series.values, series.per_day, settings)


def write_scores(path: Path, series: Series, scores: Sequence[float]) -> None:
    """`timestamp,value,anomaly_score`, one row per input row, in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["timestamp", "value", "anomaly_score"])
        for t, v, s in zip(series.timestamps, series.texts, scores, strict=True):
            out.writerow([t, v, f"{s:.6f}"])
