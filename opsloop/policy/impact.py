"""Measure an incident's impact from telemetry: the numbers severity.yaml's rules read, and
what corroborates them."""

from __future__ import annotations

import math
import statistics

from pydantic import BaseModel, Field

from opsloop.models import Impact, Severity
from opsloop.policy.health import budget_remaining, burn_rate
from opsloop.policy.schema import Policies
from opsloop.policy.schema.severity import CorroborationPolicy, SignalKind
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


# The median absolute deviation of normally distributed values times this is their
# standard deviation: the robust z-score's scale.
_MAD_TO_SIGMA = 1.4826
_LOG_READ_LIMIT = 100_000  # count every line in the windows, not the newest 200


class Corroboration(BaseModel):
    """What backs up an incident's impact: its strongest departure from baseline, and the
    independent signals beside it that policy counts."""

    spike: str | None = None  # e.g. "error_ratio on checkout"; None when nothing departs
    service: str | None = None  # where the spike is
    signals: list[str] = Field(default_factory=list)  # e.g. "caller web: error_ratio"
    required: int = 1

    @property
    def uncorroborated(self) -> bool:
        """One metric of one service departs and too little else does: the impact may be a
        telemetry failure rather than an outage."""
        return self.spike is not None and len(self.signals) < self.required


def departure(telemetry: Telemetry, service: str, metric: str, window: int,
              rule: CorroborationPolicy) -> float:
    """How far the metric's last `window` minutes sit from its own baseline, in robust
    standard deviations; 0 when they do not depart as the policy defines it, or lack data."""
    recent = window_values(telemetry, service, metric, window)
    span = window_values(telemetry, service, metric, window + rule.baseline_minutes)
    base = span[: len(span) - len(recent)]
    if not recent or not base:
        return 0.0
    median = statistics.median(base)
    change = abs(statistics.fmean(recent) - median)
    if change == 0 or change < rule.min_change * abs(median):
        return 0.0
    scale = _MAD_TO_SIGMA * statistics.median(abs(v - median) for v in base)
    z = math.inf if scale == 0 else change / scale
    return z if z >= rule.deviation else 0.0


def _error_lines(telemetry: Telemetry, service: str, window: int,
                 rule: CorroborationPolicy) -> tuple[int, int]:
    """Error-level log lines on the service: in the impact window, and in the baseline."""
    levels = {level.upper() for level in rule.log_levels}

    def count(minutes: int) -> int:
        try:
            lines = telemetry.logs(service, minutes, None, _LOG_READ_LIMIT)
        except KeyError:
            return 0
        return sum(1 for line in lines if line.level.upper() in levels)

    recent = count(window)
    return recent, count(window + rule.baseline_minutes) - recent


def corroborate(services: list[str], telemetry: Telemetry, policies: Policies
                ) -> Corroboration | None:
    """The incident's strongest departure from baseline and what else corroborates it, by
    severity.yaml's `corroboration`; None when the policy has none."""
    rule = policies.severity.corroboration
    if rule is None:
        return None
    window = policies.severity.impact_window_minutes
    affected = list(dict.fromkeys(services))
    departs = {(s, m): z for s in affected for m in rule.metrics
               if (z := departure(telemetry, s, m, window, rule)) > 0}
    if not departs:
        return Corroboration(required=rule.min_signals)
    service, metric = max(departs, key=lambda key: departs[key])  # the first of equals
    found: list[tuple[SignalKind, str]] = []
    callers = sorted(
        info.name for info in telemetry.services() if service in info.dependencies
    )
    for s, m in departs:
        if (s, m) == (service, metric) or s in callers:
            continue  # a caller counts once, as a caller
        kind: SignalKind = "same_service" if s == service else "other_services"
        found.append((kind, f"{m} on {s}"))
    for caller in callers:
        shown = [m for m in rule.caller_metrics
                 if departure(telemetry, caller, m, window, rule) > 0]
        if shown:
            found.append(("callers", f"caller {caller}: {', '.join(shown)}"))
    recent, before = _error_lines(telemetry, service, window, rule)
    if (recent >= rule.error_logs_min
            and recent / window > (1 + rule.min_change) * before / rule.baseline_minutes):
        found.append(("error_logs", f"{recent} error-level log lines on {service}"))
    # A change to the service just before (a deploy, a flag change) is an event of its own,
    # not a reading of the suspect metric: it backs the impact as much as a second metric.
    lookback = window + rule.baseline_minutes
    deploys = [d for d in telemetry.deploys(service, lookback) if d.kind != "rollback"]
    flags = telemetry.flag_changes(service, lookback)
    if deploys or flags:
        what = [*(f"deploy {d.version}" for d in deploys[-1:]),
                *(f"flag {f.key} changed" for f in flags[-1:])]
        found.append(("change", f"{' and '.join(what)} on {service} shortly before"))
    return Corroboration(
        spike=f"{metric} on {service}", service=service, required=rule.min_signals,
        signals=[text for kind, text in found if kind in rule.require],
    )
