"""opsloop.regress: change points, baselines, attribution, and the detection eval's goals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from opsloop.cli.render import Ui
from opsloop.evals.regressions import GOAL_FALSE_ALARMS, GOAL_FOUND, render, run_regression_eval
from opsloop.models import DeployEvent, FlagChange
from opsloop.regress import changepoints
from opsloop.regress.attribute import attribute, from_deploys, from_flag_changes
from opsloop.regress.baseline import baseline
from opsloop.regress.changepoints import ChangePoint, Detector, change_points, noise_scale
from opsloop.regress.regressions import RULES, MetricRule, find_changes
from opsloop.regress.series import resample

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def noisy(seed: int, n: int = 576, step: float = 0.0, at: int | None = None,
          noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 100.0 * (1.0 + noise * rng.standard_normal(n))
    if at is not None:
        x[at:] += 100.0 * step
    return x


def test_the_documented_method_is_the_one_that_runs() -> None:
    # The constants the module's docstring and the eval's goals rest on.
    assert (changepoints.PENALTY, changepoints.MIN_SIZE, changepoints.ALPHA) == (3.0, 6, 1e-3)
    assert Detector() == Detector(penalty=3.0, min_size=6, alpha=1e-3)


def test_a_five_percent_step_in_five_percent_noise_is_found_where_it_is() -> None:
    (point,) = change_points(noisy(3, step=0.05, at=300))
    assert abs(point.index - 300) <= 12
    assert point.mean_before == pytest.approx(100, rel=0.02)
    assert point.mean_after == pytest.approx(105, rel=0.02)
    assert point.change == pytest.approx(0.05, abs=0.015)
    assert point.p_value < 1e-6
    assert point.n_before + point.n_after == 576


def test_a_stable_series_has_no_change_point() -> None:
    assert all(change_points(noisy(seed)) == [] for seed in range(30))


def test_the_penalty_is_what_keeps_noise_from_being_called_a_change() -> None:
    # The same stable series, with a penalty far below the documented one: noise is cut up.
    loose = Detector(penalty=0.3, alpha=0.5)
    assert sum(len(change_points(noisy(seed), loose)) for seed in range(10)) > 5


def test_the_same_series_gives_the_same_change_points() -> None:
    x = noisy(9, step=0.04, at=200)
    assert change_points(x) == change_points(x.copy())


def test_a_burst_of_outliers_is_not_a_change() -> None:
    x = noisy(4)
    x[250:255] *= 3.0  # five wild points in a row: a scrape glitch, not a new level
    assert change_points(x) == []


def test_noise_is_measured_without_the_step_it_should_find() -> None:
    x = noisy(5, step=0.5, at=288)  # a 50% step: ten times the noise
    assert noise_scale(x) == pytest.approx(5.0, rel=0.2)
    assert float(np.std(x)) > 20  # what a plain std would have said


def test_constant_short_and_broken_series_have_no_change_points() -> None:
    assert change_points(np.full(100, 3.0)) == []
    assert change_points(noisy(1, n=10)) == []
    broken = noisy(1)
    broken[5] = np.nan
    assert change_points(broken) == []


def test_a_down_step_is_found_with_its_direction() -> None:
    (point,) = change_points(noisy(6, step=-0.10, at=400))
    assert point.mean_after < point.mean_before
    assert point.change is not None and point.change < -0.08


def test_baseline_summarises_the_normal_level() -> None:
    b = baseline(noisy(7))
    assert b is not None
    assert b.points == 576
    assert b.median == pytest.approx(100, rel=0.01)
    assert b.p05 < b.median < b.p95
    assert b.noise == pytest.approx(0.05, rel=0.2)
    assert baseline([]) is None


def test_resampling_takes_clock_aligned_five_minute_medians() -> None:
    minutes = [(T0 + timedelta(minutes=i), float(i)) for i in range(12)]
    minutes[1] = (minutes[1][0], 1000.0)  # one wild minute moves the median little
    times, values = resample(minutes)
    # 09:00-09:04 and 09:05-09:09 are whole; 09:10 has 2 of 5 minutes: still filling.
    assert times == [T0, T0 + timedelta(minutes=5)]
    assert values == [3.0, 7.0]


def deploy(service: str, minutes_ago: int, version: str, previous: str,
           kind: str = "deploy") -> DeployEvent:
    return DeployEvent(at=T0 - timedelta(minutes=minutes_ago), service=service, version=version,
                       previous_version=previous, kind=kind)


def test_a_change_is_attributed_to_the_nearest_change_before_it() -> None:
    changes = from_deploys([deploy("search", 200, "4.7.9", "4.7.8"),
                            deploy("search", 60, "4.8.0", "4.7.9"),
                            deploy("checkout", 100, "2.1-cfg", "2.0", "config")])
    found = attribute(T0, "search", changes)
    assert found is not None and found.change.version == "4.8.0" and found.own
    assert {c.version for c in found.rivals} == {"4.7.9", "2.1-cfg"}
    # A change placed a little before its cause still finds it (the detector's slack) ...
    early = attribute(T0 - timedelta(minutes=80), "search", changes)
    assert early is not None and early.change.version == "4.8.0"
    # ... but nothing long before counts, and nothing after the slack does either.
    assert attribute(T0 - timedelta(hours=10), "search", changes) is None


def test_flag_changes_are_suspects_too_and_the_own_service_wins_a_tie() -> None:
    flag = FlagChange(at=T0 - timedelta(minutes=30), key="new-ranker", service="search",
                      enabled=True, from_percent=0, to_percent=50)
    changes = [*from_flag_changes([flag]),
               *from_deploys([deploy("postgres", 30, "16.2", "16.1")])]
    found = attribute(T0, "search", changes)
    assert found is not None and found.change.kind == "flag" and found.own
    assert "new-ranker" in found.change.what and "50%" in found.change.what


def point(before: float, after: float) -> ChangePoint:
    return ChangePoint(index=10, n_before=10, n_after=10, mean_before=before, mean_after=after,
                       median_before=before, median_after=after, p_value=1e-9)


def test_only_a_change_the_bad_way_past_the_rule_is_a_regression() -> None:
    rules = {r.metric: r for r in RULES}
    p99 = rules["latency_p99_ms"]
    assert p99.is_regression(point(100, 107))
    assert not p99.is_regression(point(100, 102))  # under 3%
    assert not p99.is_regression(point(100, 80))  # faster is not a regression
    rps = rules["requests_per_second"]
    assert rps.is_regression(point(100, 80)) and not rps.is_regression(point(100, 130))
    errors = rules["error_ratio"]
    assert not errors.is_regression(point(0.0003, 0.0009))  # 3x, but +0.06 pp only
    assert errors.is_regression(point(0.0003, 0.02))
    assert not MetricRule("x", +1, 0.0).is_regression(point(0.0, 5.0))  # no base, no ratio


def test_find_changes_reports_only_the_window_and_says_what_still_holds() -> None:
    x = noisy(8, n=288, step=0.08, at=240)
    times = [T0 - timedelta(minutes=5 * (288 - i)) for i in range(288)]
    rule = next(r for r in RULES if r.metric == "latency_p99_ms")
    changes = from_deploys([DeployEvent(at=times[240], service="search", version="4.8.0",
                                        previous_version="4.7.3")])
    (found,) = find_changes("search", rule, times, list(x), changes,
                            since=T0 - timedelta(hours=5), persist_for=timedelta(minutes=60))
    assert found.regression and found.persistent
    assert found.attribution is not None and found.attribution.change.version == "4.8.0"
    row = found.to_dict()
    for key in ("at", "mean_before", "mean_after", "change", "p_value", "attributed_to"):
        assert key in row
    assert find_changes("search", rule, times, list(x), changes, since=T0,
                        persist_for=timedelta(minutes=60)) == []
    not_yet = find_changes("search", rule, times, list(x), changes,
                           since=T0 - timedelta(hours=5), persist_for=timedelta(hours=5))
    assert [c.persistent for c in not_yet] == [False]


def test_the_detection_eval_meets_its_goals(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_regression_eval(seed=14, series=200)
    rates = {s["step"]: s["detection_rate"] for s in result["stepped"]}
    assert rates[0.05] >= GOAL_FOUND
    assert rates[0.10] >= rates[0.05] >= rates[0.02]
    assert result["stable"]["false_alarms_per_100"] <= GOAL_FALSE_ALARMS
    assert all(g["met"] for g in result["goals"].values())
    assert result["seconds"] > 0
    assert render(result, Ui(), as_json=False) == 0
    out = capsys.readouterr().out
    assert "false alarms" in out and "5%" in out
    assert render(result, Ui(), as_json=True) == 0
    assert '"false_alarms_per_100"' in capsys.readouterr().out


def test_the_eval_fails_its_goals_when_the_detector_is_broken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A detector that calls noise a change must fail the false-alarm goal, not pass it.
    monkeypatch.setattr("opsloop.evals.regressions.Detector",
                        lambda: Detector(penalty=0.3, alpha=0.5))
    result = run_regression_eval(seed=14, series=10)
    assert not result["goals"]["false_alarms_per_100_stable"]["met"]
    assert render(result, Ui(), as_json=True) == 1
