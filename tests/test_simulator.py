"""The simulated production: determinism, persistence, speed, telemetry and its log lines."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsloop.models import LogLine, RemediationAction
from opsloop.simulator import METRICS, SimEnvironment, SimState
from opsloop.simulator.events import schedule


def _errors(env: SimEnvironment, service: str, minutes: int) -> int:
    return sum(1 for line in env.logs(service, minutes, limit=10_000) if line.level == "ERROR")


def test_same_seed_gives_identical_telemetry_and_logs() -> None:
    a = SimEnvironment.create("bad_deploy", seed=5)
    b = SimEnvironment.create("bad_deploy", seed=5)
    a.wait(60)
    b.wait(60)
    assert a.state.series == b.state.series
    assert a.state.logs == b.state.logs


def test_a_different_seed_gives_different_noise() -> None:
    a = SimEnvironment.create("bad_deploy", seed=5)
    b = SimEnvironment.create("bad_deploy", seed=6)
    assert (
        a.state.series["web"]["requests_per_second"] != b.state.series["web"]["requests_per_second"]
    )


def test_json_round_trip_is_exact_and_the_future_is_unchanged(tmp_path: Path) -> None:
    env = SimEnvironment.create("memory_leak", seed=9)
    env.wait(30)
    scale = RemediationAction(id="a0", type="scale_out", service="search", params={"replicas": 8})
    env.execute(scale, "k-scale")
    env.wait(1)
    path = tmp_path / "state.json"
    env.save(path)
    loaded = SimEnvironment.load(path)
    assert loaded.state == env.state
    assert loaded.state.model_dump_json() == env.state.model_dump_json()
    action = RemediationAction(id="a1", type="restart", service="inventory")
    for e in (env, loaded):
        e.wait(20)
        e.execute(action, "k-restart")
        e.wait(20)
    assert loaded.state.series == env.state.series
    assert loaded.state.logs == env.state.logs


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    path = tmp_path / "deep" / "state.json"
    env.save(path)
    env.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
    assert SimState.load(path).tick == 0


def test_eight_simulated_hours_build_fast_and_stay_small(tmp_path: Path) -> None:
    started = time.perf_counter()
    env = SimEnvironment.create("memory_leak", seed=2)  # 120 minutes of history
    env.wait(480 - 121)
    elapsed = time.perf_counter() - started
    assert len(env.state.series["web"]["error_ratio"]) == 480
    assert elapsed < 1.0, f"480 ticks took {elapsed:.2f}s"
    env.save(tmp_path / "s.json")
    assert (tmp_path / "s.json").stat().st_size < 3_000_000


def test_clock_starts_monday_0900_and_moves_only_on_wait() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    assert env.now() == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    env.wait(0)
    assert env.now() == datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    env.wait(15)
    assert env.now() == datetime(2026, 11, 2, 9, 15, tzinfo=UTC)
    with pytest.raises(ValueError):
        env.wait(-1)


def test_fleet_has_the_documented_topology() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    infos = {s.name: s for s in env.services()}
    assert len(infos) >= 9
    assert infos["api-gateway"].dependencies == ["checkout", "search", "recommendations"]
    assert infos["checkout"].dependencies == ["payments", "inventory", "redis"]
    assert infos["payments"].dependencies == ["payments-provider"]
    assert {infos[n].tier for n in ("web", "checkout", "payments", "postgres")} == {1}
    assert infos["recommendations"].tier == 3 and infos["checkout"].team == "checkout"


def test_metric_returns_one_point_per_minute_ending_now() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    env.wait(5)
    series = env.metric("checkout", "error_ratio", 10)
    assert len(series.points) == 10
    assert series.points[-1].at == env.now()
    assert series.points[0].at == env.now() - timedelta(minutes=9)
    assert len(env.metric("checkout", "replicas", 10_000).points) == 126  # all history


@pytest.mark.parametrize(("service", "metric"), [("nope", "error_ratio"), ("web", "nope")])
def test_unknown_names_raise_key_error_saying_what_exists(service: str, metric: str) -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    with pytest.raises(KeyError) as info:
        env.metric(service, metric, 5)
    assert "nope" in str(info.value)
    assert ("web" if service == "nope" else "error_ratio") in str(info.value)


def test_every_interface_metric_is_recorded_for_every_service() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    for service in env.state.services:
        for metric in METRICS:
            assert len(env.metric(service, metric, 5).points) == 5


def test_average_blends_the_prior_into_windows_longer_than_history() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    recorded = env.state.series["inventory"]["error_ratio"]
    window = 28 * 24 * 60
    prior = env.state.services["inventory"].prior_error_ratio
    expected = (sum(recorded) + prior * (window - len(recorded))) / window
    assert env.average("inventory", "error_ratio", window) == pytest.approx(expected)
    assert env.average("inventory", "error_ratio", 5) == pytest.approx(sum(recorded[-5:]) / 5)
    # Only error_ratio has a long-run prior; other metrics average what was recorded.
    replicas = env.average("inventory", "replicas", window)
    assert replicas == pytest.approx(4.0)


def test_logs_filter_by_pattern_window_and_limit() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    env.wait(30)
    lines = env.logs("checkout", 10, pattern="nullpointer", limit=3)
    assert len(lines) == 3
    assert all("NullPointerException" in line.message for line in lines)
    assert all(line.at > env.now() - timedelta(minutes=10) for line in lines)
    assert lines == sorted(lines, key=lambda line: line.at)
    assert env.logs("checkout", 10, pattern="(unbalanced") == []  # literal, not a crash


def test_bad_deploy_logs_name_the_running_version() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    env.wait(30)
    messages = {line.message for line in env.logs("checkout", 10)}
    assert "NullPointerException in OrderService.submit (version 2.14.0)" in messages


def test_error_log_volume_scales_with_the_error_ratio() -> None:
    bad = SimEnvironment.create("bad_deploy", seed=1)
    flag = SimEnvironment.create("flag_rollout_errors", seed=1)
    bad.wait(60)
    flag.wait(70)
    healthy = _errors(bad, "checkout", 200) - _errors(bad, "checkout", 40)  # before the fault
    assert _errors(bad, "checkout", 30) > 2 * _errors(flag, "checkout", 30) > 2 * healthy


@pytest.mark.parametrize(
    ("scenario", "minutes", "service", "text"),
    [
        ("dependency_outage", 40, "payments", "upstream payments-provider timeout after 3000ms"),
        ("dependency_outage", 40, "payments", "connection refused"),
        (
            "flag_rollout_errors",
            60,
            "checkout",
            "PricingError evaluating flag new-checkout-flow=on",
        ),
        ("memory_leak", 160, "inventory", "java.lang.OutOfMemoryError: Java heap space"),
        ("memory_leak", 160, "inventory", "OOMKilled"),
        ("disk_filling", 230, "search", "disk usage above 90%"),
        ("disk_filling", 260, "search", "No space left on device"),
        ("latency_regression", 50, "search", "slow request"),
        (
            "chaos_experiment",
            40,
            "redis",
            "experiment chaos-redis-primary-loss-20261102 terminated instance redis-0",
        ),
        ("chaos_experiment", 40, "checkout", "redis connection refused"),
        ("slo_slow_burn", 60, "inventory", "[inventory-2]"),
    ],
)
def test_symptom_lines_appear_in_the_logs(
    scenario: str, minutes: int, service: str, text: str
) -> None:
    env = SimEnvironment.create(scenario, seed=3)
    env.wait(minutes)
    assert env.logs(service, minutes + 200, pattern=text.replace("[", r"\[").replace("]", r"\]"))


def test_oom_lines_follow_memory_not_the_scenario_name() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    schedule(env.state, env.state.tick + 1, "leak", "search", rate=0.05)
    env.wait(15)
    assert env.logs("search", 15, pattern="OutOfMemoryError")
    assert not env.logs("search", 15, pattern="No space left")


def test_deploys_flags_and_experiments_are_visible_with_their_times() -> None:
    env = SimEnvironment.create("flag_rollout_errors", seed=1)
    env.wait(45)
    recent = env.deploys(None, 120)
    assert [(d.service, d.version) for d in recent] == [("inventory", "3.4.2")]
    assert len(env.deploys("checkout", 30 * 24 * 60)) == 2  # older releases, days ago
    changes = env.flag_changes("checkout", 30)
    assert [(c.from_percent, c.to_percent) for c in changes] == [(0, 10), (10, 25)]
    flag = next(f for f in env.flags("checkout") if f.key == "new-checkout-flow")
    assert flag.enabled and flag.rollout_percent == 25
    chaos = SimEnvironment.create("chaos_experiment", seed=1)
    chaos.wait(40)
    by_id = {e.id: e.status.value for e in chaos.experiments()}
    assert by_id == {
        "chaos-search-instance-loss-20261102": "completed",
        "chaos-redis-primary-loss-20261102": "running",
    }
    assert [e.target_service for e in chaos.experiments("redis")] == ["redis"]


def test_telemetry_copies_cannot_change_the_world() -> None:
    env = SimEnvironment.create("chaos_experiment", seed=1)
    env.wait(40)
    env.experiments("redis")[0].status = "aborted"  # type: ignore[assignment]
    assert env.experiments("redis")[0].status.value == "running"


def test_metric_reads_reuse_points_yet_match_the_series_as_time_moves() -> None:
    """Points are built once per recorded minute; every read, in any order of window sizes
    and after time moves, is exactly the series' last minutes at their own times."""
    env = SimEnvironment.create("bad_deploy", seed=3)
    svc = env.services()[0].name
    for step, minutes in enumerate([5, 30, 2, 90, 90, 1, 600, 0, 45]):
        if step % 3 == 2:
            env.wait(7)
        series = env.metric(svc, "error_ratio", minutes)
        values = env.state.series[svc]["error_ratio"]
        count = min(minutes, len(values))
        assert series.values() == values[len(values) - count:]
        assert [p.at for p in series.points] == [
            env.now() - timedelta(minutes=count - 1 - i) for i in range(count)]
    again = env.metric(svc, "error_ratio", 30)
    assert again.points[-1] is env.metric(svc, "error_ratio", 5).points[-1]


def test_log_lines_are_built_once_and_typed_as_if_validated() -> None:
    env = SimEnvironment.create("bad_deploy", seed=2)
    first = env.logs("checkout", 30, limit=5000)
    assert first, "the scenario logs something in half an hour"
    for line in first:
        assert line == LogLine.model_validate(line.model_dump())
    env.wait(3)
    later = env.logs("checkout", 33, limit=5000)
    assert later[: len(first)] == first and later[0] is first[0]
