"""Measure an incident's impact from telemetry: the numbers severity.yaml's rules read."""

from __future__ import annotations

from opsloop.models import Impact, Severity
from opsloop.policy.health import budget_remaining, burn_rate
from opsloop.policy.schema import Policies
from opsloop.policy.series import window_mean, window_values
from opsloop.policy.severity import classify
from opsloop.tools.protocols import Telemetry


def measure_impact(services: list[str], telemetry: Telemetry, policies: Policies) -> Impact:
    """The impact of the most severely affected service, with the incident's blast radius.

    Each service is measured on its own (its tier, its errors, its SLO burn) and classified;
    the worst one is returned. Taking the tier of one service and the error ratio of
    another would call a tier-2 cache outage seen as latency on checkout a SEV1.
    """
    affected = list(dict.fromkeys(services))  # keep order, drop repeats
    radius = len(blast_radius(affected, telemetry))
    candidates = [_measure_one(s, affected, radius, telemetry, policies) for s in affected]
    if not candidates:
        return Impact(services=[], tier=policies.severity.tiers.default, blast_radius=0)

    def badness(impact: Impact) -> tuple[int, int, float]:
        severity: Severity = classify(impact, policies.severity)[0]
        return (severity.rank, impact.tier, -impact.error_ratio)

    return min(candidates, key=badness)


def _measure_one(
    service: str, affected: list[str], radius: int, telemetry: Telemetry, policies: Policies
) -> Impact:
    minutes = policies.severity.impact_window_minutes
    use_max = policies.severity.impact_statistic == "max"

    def recent(metric: str) -> float:
        if use_max:
            return max(window_values(telemetry, service, metric, minutes), default=0.0)
        value = window_mean(telemetry, service, metric, minutes)
        return 0.0 if value is None else value

    slos = policies.health.slos_for(service)
    return Impact(
        services=affected,
        tier=policies.severity.tiers.of(service),
        error_ratio=recent("error_ratio"),
        latency_p99_ms=recent("latency_p99_ms"),
        requests_per_second=recent("requests_per_second"),
        burn_rate_1h=max((burn_rate(slo, telemetry, 60) or 0.0 for slo in slos), default=0.0),
        burn_rate_5m=max((burn_rate(slo, telemetry, 5) or 0.0 for slo in slos), default=0.0),
        error_budget_remaining=min((budget_remaining(slo, telemetry) for slo in slos), default=1.0),
        saturation=recent("saturation"),
        blast_radius=radius,
    )


def blast_radius(services: list[str], telemetry: Telemetry) -> set[str]:
    """The affected services plus everything that calls them, directly or transitively."""
    callers: dict[str, set[str]] = {}
    for info in telemetry.services():
        for dependency in info.dependencies:
            callers.setdefault(dependency, set()).add(info.name)
    reached = set(services)
    frontier = list(services)
    while frontier:
        for caller in callers.get(frontier.pop(), set()):
            if caller not in reached:
                reached.add(caller)
                frontier.append(caller)
    return reached
