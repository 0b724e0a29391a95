"""`opsloop eval forecast`: a rolling-origin backtest of opsloop.forecast on real public series.

Each series (NAB's real ad-exchange and Twitter-volume series by default) is put on an hourly
grid (opsloop.forecast.regular: bucket means, gaps interpolated), then forecast from
`origins` points in time, one day apart, ending `horizon` hours before the series does.
Each forecast sees at most `history` hours before its origin, and is compared with what
happened in the `horizon` hours after it.

- MASE (Hyndman & Koehler 2006): absolute errors divided by the in-sample mean absolute error
  of the seasonal naive forecast (period 24 h) on that origin's training window; averaged
  over origins and horizon steps per series, and over series overall. Below 1 beats the
  one-step in-sample seasonal naive; the out-of-sample seasonal naive (the last day repeated)
  is reported beside it on the same scale, as the baseline.
- Coverage: the share of actual values inside the 80% and 95% prediction intervals; the goal
  is the nominal level within ±5 points.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from opsloop.detect import SeriesError
from opsloop.detect.series import read_series
from opsloop.forecast import forecast, regular, seasonal_naive
from opsloop.forecast.model import NotEnoughHistory
from opsloop.settings import REPO_ROOT

NAB_DATA = REPO_ROOT.parent / "shared" / "data" / "nab" / "data"
REAL = ("realAdExchange", "realTweets")
PERIOD = 24  # hours: the seasonal naive's period and the MASE scale's
HORIZON_GROUPS = ((1, 6), (7, 24), (25, 48))
MASE_GOAL = 1.0
COVERAGE_TOLERANCE = 0.05


class BacktestError(ValueError):
    """A data folder or series that cannot be backtested; the message says which and why."""


@dataclass
class SeriesResult:
    series: str
    points: int  # hourly points after resampling
    origins: int
    mase: float
    naive_mase: float
    coverage_80: float
    coverage_95: float
    models: dict[str, int] = field(default_factory=dict)  # model name -> origins it was used
    by_horizon: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Backtest:
    horizon: int
    origins: int
    history: int
    series: list[SeriesResult]
    seconds: float

    def overall(self) -> dict[str, float]:
        keys = ("mase", "naive_mase", "coverage_80", "coverage_95")
        return {k: float(np.mean([getattr(s, k) for s in self.series])) for k in keys}

    def overall_by_horizon(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for group in self.series[0].by_horizon if self.series else {}:
            out[group] = {k: float(np.mean([s.by_horizon[group][k] for s in self.series]))
                          for k in self.series[0].by_horizon[group]}
        return out

    def goals(self) -> dict[str, bool]:
        o = self.overall()
        return {"mase_below_1": o["mase"] < MASE_GOAL,
                "coverage_80_within_5_points": abs(o["coverage_80"] - 0.80)
                <= COVERAGE_TOLERANCE,
                "coverage_95_within_5_points": abs(o["coverage_95"] - 0.95)
                <= COVERAGE_TOLERANCE}

    def to_dict(self) -> dict[str, object]:
        return {"horizon_hours": self.horizon, "origins_per_series": self.origins,
                "history_hours": self.history, "seasonal_period_hours": PERIOD,
                "overall": self.overall(), "overall_by_horizon": self.overall_by_horizon(),
                "goals": self.goals(), "seconds": round(self.seconds, 1),
                "series": [asdict(s) for s in self.series]}


def series_files(data: Path | None) -> list[Path]:
    """The CSVs to backtest: NAB's real series by default, else every CSV under `data`."""
    if data is None:
        files = [p for sub in REAL for p in sorted((NAB_DATA / sub).glob("*.csv"))]
        if not files:
            raise BacktestError(f"{NAB_DATA}: no NAB real series found (expected "
                                f"{' and '.join(REAL)}); pass --data DIR")
        return files
    if not data.is_dir():
        raise BacktestError(f"--data {data}: not a directory")
    files = sorted(data.rglob("*.csv"))
    if not files:
        raise BacktestError(f"--data {data}: no .csv file under it")
    return files


def hourly(path: Path) -> np.ndarray:
    """A NAB-format CSV as hourly bucket means."""
    series = read_series(path)
    try:
        times = [datetime.fromisoformat(t.strip()) for t in series.timestamps]
    except ValueError as exc:
        raise SeriesError(f"{path}: timestamp not ISO 8601: {exc}") from None
    return regular(times, series.values, 60).values


def _groups(horizon: int) -> list[tuple[int, int]]:
    return [(a, min(b, horizon)) for a, b in HORIZON_GROUPS if a <= horizon]


def backtest_series(name: str, y: np.ndarray, horizon: int, origins: int,
                    history: int) -> SeriesResult | None:
    """Rolling-origin errors and coverage for one hourly series (None: too short)."""
    last = len(y) - horizon
    starts = [last - 24 * k for k in range(origins)][::-1]
    starts = [o for o in starts if o >= SEASONS_MIN * PERIOD]
    if not starts:
        return None
    model_err, naive_err, in80, in95 = [], [], [], []
    models: dict[str, int] = {}
    for origin in starts:
        train, actual = y[max(0, origin - history):origin], y[origin:origin + horizon]
        scale = float(np.mean(np.abs(train[PERIOD:] - train[:-PERIOD])))
        if not np.isfinite(scale) or scale <= 0:
            continue  # a series that repeats exactly has no scale: MASE is undefined
        try:
            fc = forecast(train, 60, horizon)
        except (NotEnoughHistory, ArithmeticError):
            continue
        models[fc.model] = models.get(fc.model, 0) + 1
        model_err.append(np.abs(fc.mean - actual) / scale)
        naive_err.append(np.abs(seasonal_naive(train, PERIOD, horizon) - actual) / scale)
        in80.append((actual >= fc.lo80) & (actual <= fc.hi80))
        in95.append((actual >= fc.lo95) & (actual <= fc.hi95))
    if not model_err:
        return None
    m, n, c80, c95 = (np.array(a, dtype=float) for a in (model_err, naive_err, in80, in95))
    by = {f"h{a}-{b}": {"mase": float(m[:, a - 1:b].mean()),
                        "naive_mase": float(n[:, a - 1:b].mean()),
                        "coverage_80": float(c80[:, a - 1:b].mean()),
                        "coverage_95": float(c95[:, a - 1:b].mean())}
          for a, b in _groups(horizon)}
    return SeriesResult(name, len(y), len(model_err), float(m.mean()), float(n.mean()),
                        float(c80.mean()), float(c95.mean()), models, by)


SEASONS_MIN = 3  # days of history before the first origin


def run_backtest(files: Iterable[Path], horizon: int = 48, origins: int = 15,
                 history: int = 28 * 24,
                 progress: Callable[[str], None] | None = None) -> Backtest:
    """Backtest every file; a file that cannot be read raises BacktestError naming it."""
    if horizon < 1 or origins < 1 or history < SEASONS_MIN * PERIOD:
        raise BacktestError(f"need horizon >= 1, origins >= 1 and history >= "
                            f"{SEASONS_MIN * PERIOD} hours; got {horizon}, {origins}, {history}")
    started = time.perf_counter()
    results = []
    for path in files:
        try:
            y = hourly(path)
        except (SeriesError, ValueError) as exc:
            raise BacktestError(str(exc)) from None
        result = backtest_series(path.stem, y, horizon, origins, history)
        if progress:
            progress(f"{path.stem}: " + ("too short, skipped" if result is None else
                                         f"MASE {result.mase:.3f}, 80% {result.coverage_80:.0%}"
                                         f", 95% {result.coverage_95:.0%}"))
        if result is not None:
            results.append(result)
    if not results:
        raise BacktestError("no series long enough to backtest")
    return Backtest(horizon, origins, history, results, time.perf_counter() - started)
