"""Alert rules over telemetry: a stateless evaluator that turns metric series into Anomalies.

Semantics follow Prometheus alerting rules: each minute a rule's expression is evaluated
(an `*_over_time` aggregate over `window_minutes`, optionally divided by the same aggregate
`baseline_offset_minutes` earlier, like `offset`); an alert fires once the condition has held
for `for_minutes` consecutive evaluations, and its `starts_at` is the first minute of that run.
"""

from __future__ import annotations

import operator
import string
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from opsloop.fingerprint import label_fingerprint
from opsloop.models import Anomaly, MetricSeries, ServiceInfo
from opsloop.policy.schema.alerts import Aggregate, AlertRule

__all__ = ["AlertRule", "RuleError", "evaluate_rules"]

MAX_LOOKBACK_MINUTES = 24 * 60  # how far back starts_at is searched once a rule fires
ENVIRONMENT = "prod"

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class RuleTelemetry(Protocol):
    """The part of `opsloop.tools.protocols.Telemetry` rule evaluation reads."""

    def services(self) -> list[ServiceInfo]: ...

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries: ...


class RuleError(ValueError):
    """A rule that cannot be evaluated against this telemetry (unknown metric or service)."""


def _aggregates(values: Sequence[float], window: int, aggregate: Aggregate) -> list[float]:
    """The aggregate of the window ending at each index (shorter windows at the start)."""
    if aggregate == "last":
        return list(values)
    if aggregate == "avg":
        out: list[float] = []
        total = 0.0
        for i, v in enumerate(values):
            total += v
            if i >= window:
                total -= values[i - window]
            out.append(total / min(i + 1, window))
        return out
    pick = max if aggregate == "max" else min
    return [pick(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]


def rule_values(rule: AlertRule, values: Sequence[float]) -> list[float | None]:
    """The rule's expression value at each minute of `values` (None where it has no data)."""
    current = _aggregates(values, rule.window_minutes, rule.aggregate)
    offset = rule.baseline_offset_minutes
    if offset is None:
        return list(current)
    out: list[float | None] = []
    for i, value in enumerate(current):
        base = current[i - offset] if i >= offset else 0.0
        out.append(value / base if base > 0 else None)
    return out


def condition_series(rule: AlertRule, values: Sequence[float]) -> list[bool]:
    """Whether the rule's condition held at each minute of `values`."""
    compare = _OPS[rule.op]
    return [v is not None and compare(v, rule.threshold) for v in rule_values(rule, values)]


def _history(
    telemetry: RuleTelemetry, service: str, metric: str, minutes: int, now: datetime
) -> tuple[list[datetime], list[float]]:
    """Up to `minutes` points ending at `now`, even when the telemetry has moved past it."""
    try:
        points = telemetry.metric(service, metric, minutes).points
        if points and points[-1].at > now:
            lag = int((points[-1].at - now).total_seconds() // 60) + 1
            points = [
                p for p in telemetry.metric(service, metric, minutes + lag).points if p.at <= now
            ][-minutes:]
    except KeyError as exc:
        raise RuleError(f"cannot read {metric!r} for service {service!r}: {exc}") from None
    return [p.at for p in points], [p.value for p in points]


class _Format(string.Formatter):
    """str.format that leaves a template alone instead of raising on a bad placeholder."""

    def render(self, template: str, fields: Mapping[str, Any]) -> str:
        try:
            return self.vformat(template, (), dict(fields))
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            return template


def _run_start(rule: AlertRule, times: list[datetime], held: list[bool]) -> datetime | None:
    """The first minute of the run of held conditions that ends at the last point."""
    needed = max(rule.for_minutes, 1)
    if len(held) < needed or not all(held[-needed:]):
        return None
    start = len(held) - 1
    while start > 0 and held[start - 1]:
        start -= 1
    return times[start]


def _evaluate(
    rule: AlertRule, service: str, team: str, telemetry: RuleTelemetry, now: datetime
) -> Anomaly | None:
    span = rule.window_minutes + max(rule.for_minutes, 1) - 1 + (rule.baseline_offset_minutes or 0)
    times, values = _history(telemetry, service, rule.metric, span, now)
    if _run_start(rule, times, condition_series(rule, values)) is None:
        return None
    # It fires: look further back only now, to find where the run began.
    times, values = _history(telemetry, service, rule.metric, span + MAX_LOOKBACK_MINUTES, now)
    held = condition_series(rule, values)
    starts_at = _run_start(rule, times, held)
    if starts_at is None:  # cannot happen with more data, but never report a half-truth
        return None
    value = rule_values(rule, values)[-1]
    labels = {
        "env": ENVIRONMENT,
        **({"team": team} if team else {}),
        **rule.labels,
        "alertname": rule.name,
        "service": service,
    }
    fields = {
        "service": service,
        "value": value,
        "threshold": rule.threshold,
        "metric": rule.metric,
    }
    fmt = _Format()
    return Anomaly(
        fingerprint=label_fingerprint(labels),
        labels=labels,
        annotations={k: fmt.render(v, fields) for k, v in rule.annotations.items()},
        starts_at=starts_at,
        source="rules",
        generator_url=f"opsloop://rules/{rule.name}?service={service}",
    )


def evaluate_rules(
    rules: list[AlertRule], telemetry: RuleTelemetry, now: datetime
) -> list[Anomaly]:
    """Every (rule, service) whose condition has held for `for_minutes` up to `now`."""
    teams = {s.name: s.team for s in telemetry.services()}
    anomalies: list[Anomaly] = []
    for rule in rules:
        unknown = [s for s in rule.services if s != "*" and s not in teams]
        if unknown:
            raise RuleError(
                f"rule {rule.name}: unknown service(s) {', '.join(unknown)}; "
                f"services: {', '.join(teams)}"
            )
        for service, team in teams.items():
            if rule.applies_to(service):
                found = _evaluate(rule, service, team, telemetry, now)
                if found is not None:
                    anomalies.append(found)
    return anomalies


def firing_minutes(rule: AlertRule, values: Sequence[float], start: datetime) -> list[datetime]:
    """Minutes (for a series starting at `start`) at which the rule would be firing."""
    held = condition_series(rule, values)
    needed = max(rule.for_minutes, 1)
    run = 0
    out: list[datetime] = []
    for i, ok in enumerate(held):
        run = run + 1 if ok else 0
        if run >= needed:
            out.append(start + timedelta(minutes=i))
    return out
