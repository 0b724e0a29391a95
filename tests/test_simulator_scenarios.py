"""Each built-in scenario: healthy before its fault, alerting after, fixed by the right action."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsloop.models import ActionStatus, ParamValue, RemediationAction
from opsloop.observe import AlertRule, evaluate_rules, firing_minutes
from opsloop.simulator import SCENARIOS, SimEnvironment, UnknownScenarioError, get_scenario
from opsloop.simulator.state import START, tick_time

# policies/alerts.yaml as shipped (SCENARIOS.md documents what each scenario fires with it),
# plus the 6h/30m SLO burn pair at 6x a 99.9% budget, which policies/health.yaml evaluates.
RULES = [
    AlertRule(
        name="HighErrorRate",
        metric="error_ratio",
        window_minutes=5,
        threshold=0.05,
        for_minutes=2,
        labels={"severity": "page"},
        annotations={"summary": "{service}: error ratio {value:.1%} over 5m"},
    ),
    AlertRule(
        name="HighLatencyP99",
        metric="latency_p99_ms",
        window_minutes=5,
        threshold=2.0,
        for_minutes=3,
        baseline_offset_minutes=60,
    ),
    AlertRule(
        name="MemoryHigh",
        metric="memory_utilization",
        aggregate="max",
        window_minutes=5,
        threshold=0.85,
        for_minutes=2,
    ),
    AlertRule(
        name="DiskFilling",
        metric="disk_utilization",
        aggregate="max",
        window_minutes=5,
        threshold=0.85,
        for_minutes=2,
    ),
    AlertRule(
        name="SaturationHigh", metric="saturation", window_minutes=5, threshold=0.9, for_minutes=2
    ),
    AlertRule(
        name="CostAnomaly",
        metric="cost_per_hour",
        window_minutes=5,
        threshold=2.0,
        for_minutes=5,
        baseline_offset_minutes=60,
    ),
    AlertRule(
        name="ErrorBudgetBurn6h",
        metric="error_ratio",
        window_minutes=360,
        threshold=6 * 0.001,
        for_minutes=1,
    ),
    AlertRule(
        name="ErrorBudgetBurn30m",
        metric="error_ratio",
        window_minutes=30,
        threshold=6 * 0.001,
        for_minutes=1,
    ),
]

# A plausible but wrong action for each scenario: it must not bring the service back.
WRONG: dict[str, tuple[str, dict[str, ParamValue]]] = {
    "bad_deploy": ("scale_out", {"replicas": 16}),
    "dependency_outage": ("restart", {}),
    "flag_rollout_errors": ("rollback_deploy", {}),
    "traffic_surge": ("restart", {}),
    "memory_leak": ("scale_out", {"replicas": 6}),
    "disk_filling": ("restart", {}),
    "latency_regression": ("scale_out", {"replicas": 10}),
    "quiet_slowdown": ("restart", {}),
    "cost_runaway": ("restart", {}),
    "slo_slow_burn": ("restart", {}),
    "chaos_experiment": ("restart", {}),
}

NAMES = sorted(SCENARIOS)
RULE_COVERED = sorted(n for n, s in SCENARIOS.items() if s.rules_cover)


def _minute(env: SimEnvironment, index: int) -> int:
    return env.state.history_start + index


def _first_alerts(env: SimEnvironment) -> dict[tuple[str, str], int]:
    """(service, rule) -> first minute (after 09:00) the rule was firing, over all history."""
    first: dict[tuple[str, str], int] = {}
    start = tick_time(env.state.history_start)
    for service in env.state.services:
        for rule in RULES:
            fired = firing_minutes(rule, env.state.series[service][rule.metric], start)
            if fired:
                first[(service, rule.name)] = int((fired[0] - START).total_seconds() // 60)
    return first


def _baseline(env: SimEnvironment, service: str, metric: str, fault: int) -> float:
    values = env.state.series[service][metric]
    end = fault - env.state.history_start
    window = values[max(end - 30, 0) : end]
    return sum(window) / len(window)


def _problems(env: SimEnvironment, service: str, fault: int, action: str) -> list[str]:
    """What still looks wrong with `service` over the last 5 minutes, against its pre-fault self."""
    problems = []

    def now(metric: str) -> float:
        value = env.average(service, metric, 5)
        assert value is not None
        return value

    def before(metric: str) -> float:
        return _baseline(env, service, metric, fault)

    if now("error_ratio") > max(2 * before("error_ratio"), 0.002):
        problems.append(f"error_ratio {now('error_ratio'):.4f}")
    if now("latency_p99_ms") > 1.3 * before("latency_p99_ms"):
        problems.append(f"p99 {now('latency_p99_ms'):.0f}ms vs {before('latency_p99_ms'):.0f}")
    for metric in ("saturation", "memory_utilization", "disk_utilization"):
        if now(metric) > 0.85:
            problems.append(f"{metric} {now(metric):.2f}")
    if action != "scale_out" and now("cost_per_hour") > 1.3 * before("cost_per_hour"):
        problems.append(f"cost {now('cost_per_hour'):.2f}/h")
    return problems


def _act_after_alert(name: str, action: str, params: dict[str, ParamValue]) -> SimEnvironment:
    """Run the scenario until its fault alerts on the right service, act, wait 10 minutes."""
    scenario = SCENARIOS[name]
    env = SimEnvironment.create(name, seed=11)
    env.wait(scenario.run_minutes)
    fired = [m for (svc, _), m in _first_alerts(env).items() if svc == scenario.expected.service]
    if not scenario.rules_cover:  # only a detector sees it, after policy's 10 minutes
        fired = [scenario.fault_at_minute + 10]
    assert fired, f"{name}: nothing fired on {scenario.expected.service}"
    env = SimEnvironment.create(name, seed=11)
    env.wait(max(min(fired) + 2, 0))
    target = scenario.expected.service
    result = env.execute(
        RemediationAction(id="fix", type=action, service=target, params=params), f"{name}-{action}"
    )
    assert result.status is ActionStatus.SUCCEEDED, result.detail
    env.wait(10)
    return env


def test_there_are_at_least_ten_scenarios_with_complete_answer_keys() -> None:
    assert len(SCENARIOS) >= 10
    for name, scenario in SCENARIOS.items():
        assert scenario.name == name
        assert scenario.expected.service in get_scenario(name).build(1).services
        assert scenario.run_minutes <= 480


def test_unknown_scenario_names_the_valid_ones() -> None:
    with pytest.raises(UnknownScenarioError) as info:
        get_scenario("nope")
    assert "bad_deploy" in str(info.value) and "'nope'" in str(info.value)


@pytest.mark.parametrize("name", RULE_COVERED)
def test_no_alert_fires_before_the_fault_and_one_fires_on_the_faulty_service_after(
    name: str,
) -> None:
    scenario = SCENARIOS[name]
    env = SimEnvironment.create(name, seed=7)
    env.wait(scenario.run_minutes)
    first = _first_alerts(env)
    early = {k: m for k, m in first.items() if m < scenario.fault_at_minute}
    assert not early, f"{name}: alerts before the fault at {scenario.fault_at_minute}: {early}"
    on_target = {rule: m for (svc, rule), m in first.items() if svc == scenario.expected.service}
    assert on_target, f"{name}: no alert on {scenario.expected.service}; fired: {first}"
    # The evaluator, asked at that minute, reports it with the run's first minute as starts_at.
    rule_name, minute = min(on_target.items(), key=lambda kv: kv[1])
    rule = next(r for r in RULES if r.name == rule_name)
    at = tick_time(minute)
    found = [a for a in evaluate_rules([rule], env, at) if a.service == scenario.expected.service]
    assert len(found) == 1
    hold = max(rule.for_minutes, 1) - 1
    assert found[0].starts_at == at - timedelta(minutes=hold)
    assert found[0].labels["alertname"] == rule_name and found[0].source == "rules"


@pytest.mark.parametrize("name", NAMES)
def test_the_expected_action_brings_the_service_back_within_ten_minutes(name: str) -> None:
    scenario = SCENARIOS[name]
    env = _act_after_alert(name, scenario.expected.action, dict(scenario.expected.params))
    problems = _problems(
        env, scenario.expected.service, scenario.fault_at_minute, scenario.expected.action
    )
    assert problems == []


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_action_leaves_the_service_broken(name: str) -> None:
    scenario = SCENARIOS[name]
    action, params = WRONG[name]
    env = _act_after_alert(name, action, params)
    assert _problems(env, scenario.expected.service, scenario.fault_at_minute, action)


@pytest.mark.parametrize("name", sorted(set(NAMES) - set(RULE_COVERED)))
def test_a_fault_outside_the_rules_fires_no_rule_at_all(name: str) -> None:
    env = SimEnvironment.create(name, seed=7)
    env.wait(SCENARIOS[name].run_minutes)
    assert _first_alerts(env) == {}


def test_restart_does_not_fix_a_bad_deploy() -> None:
    env = _act_after_alert("bad_deploy", "restart", {})
    error = env.average("checkout", "error_ratio", 5)
    assert error is not None and error > 0.2


def test_slow_burn_stays_below_the_fast_burn_threshold_but_spends_budget() -> None:
    budget = 0.001  # policies/health.yaml: inventory 99.9% over 28d
    env = SimEnvironment.create("slo_slow_burn", seed=7)
    assert (env.average("inventory", "error_ratio", 360) or 0) < 6 * budget  # not yet at 09:00
    env.wait(120)
    assert (env.average("inventory", "error_ratio", 360) or 0) > 6 * budget
    assert (env.average("inventory", "error_ratio", 30) or 0) > 6 * budget
    for window in (5, 60):
        assert (env.average("inventory", "error_ratio", window) or 1) < 14.4 * budget
    month = env.average("inventory", "error_ratio", 28 * 24 * 60)
    assert month is not None and 0.5 * budget < month < budget  # budget partly spent


def test_scenarios_are_healthy_at_their_first_recorded_minute() -> None:
    for name in NAMES:
        state = SCENARIOS[name].build(3)
        for service in state.services:
            assert state.series[service]["error_ratio"][0] < 0.005, (name, service)
            assert state.series[service]["saturation"][0] < 0.6, (name, service)
