"""opsloop.forecast: the grid, the model rule, intervals, crossings; the backtest's measures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from opsloop.cli.main import main
from opsloop.evals.forecast import backtest_series, run_backtest
from opsloop.forecast import Kind, crossing, forecast, regular, seasonal_naive, step_for
from opsloop.forecast.model import NotEnoughHistory

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday


def hourly_series(days: int, level: float = 0.4, daily: float = 0.1, monday: float = 0.0,
                  noise: float = 0.01, seed: int = 1) -> np.ndarray:
    """Utilisation with a daily swing peaking at 14:00 and, optionally, busier Mondays."""
    hours = np.arange(days * 24)
    y = level * (1 + daily * np.sin(2 * np.pi * (hours - 8) / 24))
    y = y * (1 + monday * ((hours // 24) % 7 == 0))
    return y + np.random.default_rng(seed).normal(0, noise, len(hours))


def test_the_grid_averages_buckets_ending_at_the_newest_point_and_fills_gaps() -> None:
    times = [T0 + timedelta(minutes=m) for m in range(0, 20)]
    values = [float(m) for m in range(20)]
    del times[5:10], values[5:10]  # a gap: one 5-minute bucket empty
    grid = regular(times, values, 5)
    assert grid.end == T0 + timedelta(minutes=19)
    # Buckets (ending at the newest point): 15-19, 10-14, 5-9 (empty), 0-4.
    assert list(grid.values) == [2.0, 7.0, 12.0, 17.0]
    assert grid.filled == 1
    assert step_for(2 * 1440) == 5 and step_for(3 * 1440) == 60 and step_for(30) == 1


def test_three_days_of_hourly_history_gets_daily_seasonality_and_intervals_nest() -> None:
    y = hourly_series(7)
    fc = forecast(y, 60, 48)
    assert fc.model == "ETS(A,Z,A) m=24, log"
    assert np.all(fc.lo95 <= fc.lo80) and np.all(fc.lo80 <= fc.mean)
    assert np.all(fc.mean <= fc.hi80) and np.all(fc.hi80 <= fc.hi95)
    # The forecast peak lands on the next day's 14:00 (hour 7*24 + 14 = step 15).
    assert 14 <= int(np.argmax(fc.mean[:24])) + 1 <= 16
    short = forecast(y[:48], 60, 24)
    assert short.model.startswith("ETS(A,N,N)")  # two days: no season, no trend


def test_a_weekly_pattern_with_three_weeks_of_history_brings_in_weekly_seasonality() -> None:
    y = hourly_series(28, monday=0.5)
    fc = forecast(y, 60, 24 * 7)
    assert fc.model.startswith("MSTL(m=24,168)")
    # The history ends Sunday 23:00: the busiest hour ahead is Monday's 14:00.
    assert 14 <= int(np.argmax(fc.mean)) + 1 <= 16
    c = crossing(fc, 0.64)  # only a Monday afternoon reaches it
    assert c.expected is not None and 10 <= c.expected <= 16  # Monday, before the peak
    assert forecast(hourly_series(28), 60, 24).model.startswith("ETS(A,Z,A)")  # no weekly


def test_a_fill_is_a_linear_trend_and_its_crossing_has_an_interval() -> None:
    rng = np.random.default_rng(3)
    y = 0.45 + 0.01 * np.arange(40) + rng.normal(0, 0.003, 40)  # +1 point an hour
    fc = forecast(y, 60, 96, Kind.FILL)
    assert fc.model.startswith("ETS(A,A,N)")
    c = crossing(fc, 1.0)
    # 0.84 now, 0.01 an hour: full in ~16 hours.
    assert c.expected is not None and 14 <= c.expected <= 18
    assert c.earliest is not None and c.latest is not None
    assert c.earliest <= c.expected <= c.latest
    assert crossing(fc, 0.5, now=0.84).expected == 0  # already past it


def test_a_constant_series_is_flat_and_too_little_history_is_refused() -> None:
    fc = forecast([0.45] * 50, 5, 10, Kind.FILL)
    assert fc.model == "constant" and np.all(fc.hi95 == 0.45)
    assert crossing(fc, 0.75).expected is None
    with pytest.raises(NotEnoughHistory):
        forecast([0.1, 0.2], 5, 10)


def test_seasonal_naive_repeats_the_last_period() -> None:
    assert list(seasonal_naive([1, 2, 3, 4, 5, 6], 3, 5)) == [4, 5, 6, 4, 5]


def test_the_backtest_scores_a_good_forecast_below_one_and_a_bad_one_above(
        monkeypatch: pytest.MonkeyPatch) -> None:
    y = hourly_series(30, level=100, daily=0.3, noise=2.0)
    good = backtest_series("s", y, horizon=24, origins=5, history=28 * 24)
    assert good is not None and good.origins == 5
    assert good.mase < 1.0 and good.mase < good.naive_mase
    assert 0.6 <= good.coverage_80 <= 1.0 and good.coverage_95 >= good.coverage_80

    import opsloop.evals.forecast as bt
    from opsloop.forecast.model import Forecast

    def off_by_ten(values: np.ndarray, step: int, horizon: int) -> Forecast:
        flat = np.full(horizon, float(np.mean(values)) + 10)
        return Forecast("broken", "test", step, flat, flat, flat, flat, flat)

    monkeypatch.setattr(bt, "forecast", off_by_ten)
    bad = backtest_series("s", y, horizon=24, origins=5, history=28 * 24)
    assert bad is not None and bad.mase > 1.0 and bad.coverage_80 < 0.1


def test_eval_forecast_prints_per_series_and_overall_and_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "nab"
    data.mkdir()
    y = hourly_series(12, level=50, daily=0.3, noise=1.0)
    rows = [f"{(T0 + timedelta(hours=i)):%Y-%m-%d %H:%M:%S},{v:.3f}" for i, v in enumerate(y)]
    (data / "one.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    code = main(["--work-dir", str(tmp_path / "w"), "eval", "forecast", "--data", str(data),
                 "--horizon", "24", "--origins", "3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["horizon_hours"] == 24 and result["series"][0]["series"] == "one"
    assert result["series"][0]["origins"] == 3
    assert set(result["goals"]) == {"mase_below_1", "coverage_80_within_5_points",
                                    "coverage_95_within_5_points"}
    assert code == (0 if all(result["goals"].values()) else 1)
    main(["--work-dir", str(tmp_path / "w"), "eval", "forecast", "--data", str(data),
          "--horizon", "24", "--origins", "3"])
    out = capsys.readouterr().out
    assert "overall" in out and "seasonal naive MASE" in out and "95% coverage" in out
    assert main(["--work-dir", str(tmp_path / "w"), "eval", "forecast", "--data",
                 str(tmp_path / "nope")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_the_backtest_refuses_a_series_too_short_to_score(tmp_path: Path) -> None:
    from opsloop.evals.forecast import BacktestError

    (tmp_path / "s.csv").write_text("timestamp,value\n2026-01-01 00:00:00,1\n"
                                    "2026-01-01 01:00:00,2\n")
    with pytest.raises(BacktestError, match="no series long enough"):
        run_backtest([tmp_path / "s.csv"], horizon=24, origins=2)
