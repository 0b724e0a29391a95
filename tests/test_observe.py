"""Alert rule evaluation: Prometheus-style `for`, windows, offsets, labels and fingerprints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from opsloop.fingerprint import label_fingerprint
from opsloop.models import MetricPoint, MetricSeries, ServiceInfo
from opsloop.observe import AlertRule, RuleError, condition_series, evaluate_rules

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class FakeTelemetry:
    """Just enough Telemetry for the evaluator: fixed series, newest point at `now`."""

    def __init__(self, series: dict[str, dict[str, list[float]]], teams: dict[str, str]) -> None:
        self.series = series
        self.teams = teams

    def now(self) -> datetime:
        longest = max(len(v) for m in self.series.values() for v in m.values())
        return T0 + timedelta(minutes=longest - 1)

    def services(self) -> list[ServiceInfo]:
        return [
            ServiceInfo(name=n, tier=1, replicas=1, version="1", team=t)
            for n, t in self.teams.items()
        ]

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        values = self.series[service][metric]
        kept = values[-minutes:] if minutes > 0 else []
        first = self.now() - timedelta(minutes=len(kept) - 1)
        points = [MetricPoint(at=first + timedelta(minutes=i), value=v) for i, v in enumerate(kept)]
        return MetricSeries(service=service, metric=metric, points=points)


def _rule(**overrides: object) -> AlertRule:
    fields: dict[str, object] = {
        "name": "HighErrorRate",
        "metric": "error_ratio",
        "aggregate": "avg",
        "window_minutes": 1,
        "op": ">",
        "threshold": 0.05,
        "for_minutes": 2,
    }
    fields.update(overrides)
    return AlertRule.model_validate(fields)


def _tel(values: list[float], metric: str = "error_ratio") -> FakeTelemetry:
    return FakeTelemetry({"checkout": {metric: values}}, {"checkout": "payments-team"})


def test_the_interfaces_yaml_example_loads_into_an_alert_rule() -> None:
    rule = AlertRule.model_validate(
        {
            "name": "HighErrorRate",
            "metric": "error_ratio",
            "aggregate": "avg",
            "window_minutes": 5,
            "op": ">",
            "threshold": 0.05,
            "for_minutes": 2,
            "services": ["*"],
            "labels": {"severity": "page"},
            "annotations": {
                "summary": "{service}: error ratio {value:.1%} over 5m",
                "runbook": "high-error-rate",
            },
        }
    )
    assert rule.applies_to("anything") and rule.baseline_offset_minutes is None


@pytest.mark.parametrize(
    "bad", [{"op": "=="}, {"aggregate": "p99"}, {"window_minutes": 0}, {"windw_minutes": 5}]
)
def test_malformed_rules_are_rejected_when_loaded(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _rule(**bad)


def test_fires_only_after_holding_for_minutes_and_starts_at_the_run_start() -> None:
    rule = _rule(for_minutes=3)
    assert evaluate_rules([rule], _tel([0, 0, 0.1, 0.1]), T0 + timedelta(minutes=3)) == []
    tel = _tel([0, 0, 0.1, 0.1, 0.1, 0.1])
    [alert] = evaluate_rules([rule], tel, tel.now())
    assert alert.starts_at == T0 + timedelta(minutes=2)
    assert alert.source == "rules" and alert.service == "checkout"


def test_a_broken_run_does_not_fire() -> None:
    tel = _tel([0.1, 0.1, 0.1, 0.0, 0.1])
    assert evaluate_rules([_rule(for_minutes=2)], tel, tel.now()) == []


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        ("avg", [False, False, False, True]),  # 0.0, 0.05, 0.04, 0.09 (shorter windows at first)
        ("max", [False, True, True, True]),
        ("min", [False, False, False, False]),
        ("last", [False, True, False, True]),
    ],
)
def test_window_aggregates(aggregate: str, expected: list[bool]) -> None:
    rule = _rule(aggregate=aggregate, window_minutes=3, threshold=0.06)
    assert condition_series(rule, [0.0, 0.1, 0.02, 0.15]) == expected


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (">", [False, False, True]),
        (">=", [False, True, True]),
        ("<", [True, False, False]),
        ("<=", [True, True, False]),
    ],
)
def test_comparison_operators(op: str, expected: list[bool]) -> None:
    assert condition_series(_rule(op=op, threshold=0.05), [0.01, 0.05, 0.09]) == expected


def test_baseline_offset_compares_against_the_same_window_earlier() -> None:
    rule = _rule(
        name="CostAnomaly",
        metric="cost_per_hour",
        threshold=2.0,
        for_minutes=2,
        baseline_offset_minutes=3,
    )
    flat = [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    doubled = [2.0, 2.0, 2.0, 2.0, 5.0, 5.0]
    assert evaluate_rules([rule], _tel(flat, "cost_per_hour"), T0 + timedelta(minutes=5)) == []
    [alert] = evaluate_rules([rule], _tel(doubled, "cost_per_hour"), T0 + timedelta(minutes=5))
    assert alert.starts_at == T0 + timedelta(minutes=4)
    # Without data `offset` minutes back there is no ratio, so nothing fires.
    assert (
        evaluate_rules([rule], _tel([2.0, 9.0, 9.0], "cost_per_hour"), T0 + timedelta(minutes=2))
        == []
    )


def test_labels_annotations_and_fingerprint() -> None:
    rule = _rule(
        labels={"severity": "page", "service": "spoofed"},
        annotations={
            "summary": "{service}: error ratio {value:.1%} > {threshold}",
            "broken": "{nope} stays as written",
        },
    )
    tel = _tel([0.0, 0.25, 0.25])
    [alert] = evaluate_rules([rule], tel, tel.now())
    assert alert.labels == {
        "alertname": "HighErrorRate",
        "service": "checkout",
        "env": "prod",
        "team": "payments-team",
        "severity": "page",
    }
    assert alert.fingerprint == label_fingerprint(alert.labels)
    assert alert.annotations == {
        "summary": "checkout: error ratio 25.0% > 0.05",
        "broken": "{nope} stays as written",
    }


def test_evaluating_in_the_past_ignores_later_points() -> None:
    tel = _tel([0.0, 0.0, 0.0, 0.2, 0.2, 0.2])
    rule = _rule(for_minutes=2)
    assert evaluate_rules([rule], tel, T0 + timedelta(minutes=3)) == []
    [alert] = evaluate_rules([rule], tel, T0 + timedelta(minutes=4))
    assert alert.starts_at == T0 + timedelta(minutes=3)


def test_services_filter_and_unknown_names() -> None:
    tel = FakeTelemetry(
        {"a": {"error_ratio": [0.5, 0.5]}, "b": {"error_ratio": [0.5, 0.5]}}, {"a": "x", "b": "y"}
    )
    found = evaluate_rules([_rule(services=["b"])], tel, tel.now())
    assert [a.service for a in found] == ["b"]
    with pytest.raises(RuleError, match="unknown service"):
        evaluate_rules([_rule(services=["zzz"])], tel, tel.now())
    with pytest.raises(RuleError, match="latency_p42"):
        evaluate_rules([_rule(metric="latency_p42")], tel, tel.now())
