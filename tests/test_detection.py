"""Anomaly detectors in the loop: what no rule covers becomes an alert, noise does not."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from opsloop import watch
from opsloop.detection import MetricDetectors
from opsloop.graph.runner import OperateLoop
from opsloop.intake import AlertGrouper
from opsloop.models import Anomaly, IncidentStatus, MetricPoint, MetricSeries, ServiceInfo
from opsloop.policy import load_policies
from opsloop.policy.schema.alerts import AnomalyDetection
from opsloop.settings import REPO_ROOT
from opsloop.simulator import SCENARIOS, SimEnvironment
from opsloop.simulator.variants import HEALTHY, Variant

SHIPPED = load_policies(REPO_ROOT / "policies").alerts.detectors
assert SHIPPED is not None
START = datetime(2026, 11, 2, 9, 0)
DETECTOR_ONLY = sorted(n for n, s in SCENARIOS.items() if not s.rules_cover)


class Series:
    """One service, one metric, one value a minute: the telemetry a detector reads."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.now = START

    def services(self) -> list[ServiceInfo]:
        return [ServiceInfo(name="api", tier=1, replicas=3, version="1.0", team="edge")]

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        end = int((self.now - START).total_seconds() // 60)
        first = max(0, end - minutes + 1)
        points = [MetricPoint(at=START + timedelta(minutes=i), value=self.values[i])
                  for i in range(first, min(end + 1, len(self.values)))]
        return MetricSeries(service=service, metric=metric, points=points)


def _policy(**changes: object) -> AnomalyDetection:
    return AnomalyDetection.model_validate({
        "metrics": [{"metric": "latency_p99_ms", "runbook": "latency-regression"}],
        "threshold": 0.75, "for_minutes": 5, "cooldown_minutes": 240, "history_minutes": 60,
        **changes})


def _noisy(minutes: int, steps: dict[int, float], seed: int = 5) -> list[float]:
    """100 ± 2 a minute, plus `steps`: from minute m on, the level moves by the amount."""
    rng = random.Random(seed)
    level, out = 100.0, []
    for i in range(minutes):
        level += steps.get(i, 0.0)
        out.append(level + rng.gauss(0, 2))
    return out


def _watch(detectors: MetricDetectors, telemetry: Series, minutes: range) -> list[Anomaly]:
    fired: dict[tuple[str, datetime], Anomaly] = {}
    for m in minutes:
        telemetry.now = START + timedelta(minutes=m)
        for a in detectors.observe(telemetry, telemetry.now):
            fired.setdefault((a.fingerprint, a.starts_at), a)
    return list(fired.values())


def test_a_level_shift_becomes_an_alert_with_its_evidence() -> None:
    telemetry = Series(_noisy(300, {200: 40.0}))
    (alert,) = _watch(MetricDetectors(_policy()), telemetry, range(120, 300))
    assert alert.source == "detector"
    assert alert.labels["alertname"] == "MetricAnomaly"
    assert alert.labels["service"] == "api" and alert.labels["team"] == "edge"
    assert alert.starts_at == START + timedelta(minutes=200)  # the first minute of the run
    assert alert.annotations["metric"] == "latency_p99_ms"
    assert float(alert.annotations["score"]) >= 0.75
    assert alert.annotations["detector"].startswith("ensemble(")
    assert alert.annotations["runbook"] == "latency-regression"
    assert alert.annotations["evidence"].count(",") >= 10  # the values up to firing


def test_noise_alone_raises_nothing() -> None:
    assert _watch(MetricDetectors(_policy()), Series(_noisy(600, {})), range(120, 600)) == []


def test_a_second_shift_inside_the_cool_down_is_not_raised_again() -> None:
    # A day of history first, so one event cannot make up half of the usual extremes.
    day = 1440
    steps = {day + 80: 40.0, day + 200: 40.0}
    watched = range(day, day + 320)
    quiet = _watch(MetricDetectors(_policy(history_minutes=day)), Series(_noisy(day + 320, steps)),
                   watched)
    loud = _watch(MetricDetectors(_policy(history_minutes=day, cooldown_minutes=60)),
                  Series(_noisy(day + 320, steps)), watched)
    assert len(quiet) == 1 and len(loud) == 2


def test_a_restored_watch_continues_exactly_where_it_stopped() -> None:
    values = _noisy(400, {250: 30.0})
    whole = _watch(MetricDetectors(_policy()), Series(values), range(120, 400))
    first = MetricDetectors(_policy())
    telemetry = Series(values)
    before = _watch(first, telemetry, range(120, 240))
    state = json.loads(json.dumps(first.state()))
    after = _watch(MetricDetectors.restore(_policy(), state), telemetry, range(240, 400))
    assert before == [] and after == whole and len(whole) == 1


def test_the_policy_refuses_an_unknown_metric_and_a_metric_without_a_runbook() -> None:
    with pytest.raises(ValidationError, match="not a metric telemetry provides"):
        _policy(metrics=[{"metric": "latency_p999", "runbook": "x"}])
    with pytest.raises(ValidationError, match="name a runbook"):
        _policy(metrics=[{"metric": "error_ratio"}])
    with pytest.raises(ValidationError):
        _policy(threshold=1.5)


def test_a_healthy_simulated_week_raises_at_most_one_detector_anomaly() -> None:
    env = SimEnvironment(Variant(base=HEALTHY, seed=7).build("week"))
    detectors = MetricDetectors(SHIPPED)
    for _hour in range(7 * 24):
        env.wait(60)
        detectors.observe(env, env.now())  # an hour of new points, scored minute by minute
    assert len(detectors.series) == 9 * len(SHIPPED.metrics)
    assert detectors.fired <= 1


@pytest.mark.parametrize("name", DETECTOR_ONLY)
def test_a_fault_no_rule_covers_is_seen_by_a_detector_and_fixed_by_the_loop(
        loop: OperateLoop, name: str) -> None:
    scenario = SCENARIOS[name]
    run = watch.run_scenario(loop, name, seed=7, progress=lambda _m: None)
    (incident,) = run.incidents
    assert {a.source for a in incident.anomalies} == {"detector"}
    assert run.detected_at is not None and run.detected_at >= run.fault_at
    assert incident.services == [scenario.expected.service]
    assert incident.root_cause is not None
    assert incident.root_cause.category == scenario.expected.category
    assert [c.action.type for c in incident.actions] == [scenario.expected.action]
    assert incident.status is IncidentStatus.MITIGATED


def test_without_a_detectors_section_the_watch_runs_rules_only() -> None:
    policies = load_policies(REPO_ROOT / "policies")
    bare = policies.model_copy(update={
        "alerts": policies.alerts.model_copy(update={"detectors": None})})
    assert watch.metric_detectors(bare) is None
    assert watch.metric_detectors(policies) is not None


def test_a_detector_alert_joins_the_rule_alerts_of_its_service_in_one_incident() -> None:
    policies = load_policies(REPO_ROOT / "policies")
    (detected,) = _watch(MetricDetectors(_policy()), Series(_noisy(300, {200: 40.0})),
                         range(120, 300))
    rule_alert = Anomaly(
        fingerprint="rule-api", labels={"env": "prod", "alertname": "HighErrorRate",
                                        "service": "api", "severity": "page"},
        annotations={"summary": "api: errors", "runbook": "high-error-rate"},
        starts_at=detected.starts_at, source="rules")
    grouper = AlertGrouper(policies.intake, "sim", lambda: "INC-1")
    now = START + timedelta(minutes=300)
    grouper.ingest([detected, rule_alert], now)
    (incident,) = grouper.due(now + timedelta(minutes=policies.intake.group_wait_minutes))
    assert {a.source for a in incident.anomalies} == {"detector", "rules"}
    assert incident.services == ["api"]
