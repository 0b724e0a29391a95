"""What simulated production shows: its metrics and its change feed, read from one SimState."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opsloop.models import (
    ChaosExperiment,
    DeployEvent,
    FlagChange,
    FlagState,
    LogLine,
    MetricPoint,
    MetricSeries,
    ServiceInfo,
)
from opsloop.simulator import flags
from opsloop.simulator import sbom as sboms
from opsloop.simulator.state import LOG_LIMIT, LogEntry, SimState, tick_time
from opsloop.tools.backend import check_metric, check_service, log_pattern, within

_KEEP_POINTS = 2880  # built metric points kept per series at most


class SimMetrics:
    """`Metrics` over the simulated series, one value per simulated minute."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        # Points already built, per series: (the series list, index of the first point, the
        # points from there on, the longest window kept). Recorded minutes do not change
        # (physics only appends), so a point is built once however many reads cover it; each
        # read still compares values, and rebuilds when someone rewrote history in place.
        self._built: dict[tuple[str, str],
                          tuple[list[float], int, list[MetricPoint], int]] = {}

    def _values(self, service: str, metric: str) -> list[float]:
        check_service(service, self.state.services)
        check_metric(metric)
        return self.state.series.get(service, {}).get(metric, [])

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        """The last `minutes` one-minute points, oldest first, the newest at now()."""
        values = self._values(service, metric)
        count = min(max(minutes, 0), len(values))
        points = self._points(service, metric, values, len(values) - count)
        return MetricSeries.model_construct(service=service, metric=metric, points=points)

    def _points(self, service: str, metric: str, values: list[float],
                lo: int) -> list[MetricPoint]:
        """Points for values[lo:], the newest at now(); built only for minutes not built yet."""
        def build(a: int, b: int) -> list[MetricPoint]:
            # model_construct: these values come from our own state, and evaluators pull
            # thousands. values[-1] is the current tick.
            start = tick_time(self.state.tick - len(values) + 1 + a)
            return [MetricPoint.model_construct(at=start + timedelta(minutes=i), value=v)
                    for i, v in enumerate(values[a:b])]

        key = (service, metric)
        cached = self._built.get(key)
        if cached is None or cached[0] is not values:
            first, built, span = lo, build(lo, len(values)), 0
        else:
            _, first, built, span = cached
            end = first + len(built)
            if end < len(values):
                built = built + build(end, len(values))
            if lo < first:
                built, first = build(lo, first) + built, lo
        window = built[lo - first:]
        if [p.value for p in window] != values[lo:]:  # history rewritten in place (tests do)
            first, built = lo, build(lo, len(values))
            window = built
        # Keep the longest window read so far (reads of long and short windows alternate),
        # up to two simulated days per series, however long the simulation runs.
        span = max(span, min(len(window), _KEEP_POINTS))
        if len(built) > span:
            first, built = first + len(built) - span, built[len(built) - span:]
        self._built[key] = (values, first, built, span)
        return window

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        """Mean over the last `minutes`; for error_ratio, unrecorded minutes count at the prior.

        This answers long SLO windows (28 days) from a few hours of simulated history.
        """
        if minutes < 1:
            raise ValueError(f"minutes must be at least 1, got {minutes}")
        values = self._values(service, metric)
        if minutes <= len(values):
            return sum(values[-minutes:]) / minutes
        if metric == "error_ratio":
            prior = self.state.services[service].prior_error_ratio
            return (sum(values) + prior * (minutes - len(values))) / minutes
        return sum(values) / len(values) if values else None


class SimChangeFeed:
    """`ChangeFeed` over the simulated fleet: its catalog, logs, deploys, flags, experiments."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        # A line is its (tick, level, message) entry and its service, so each is built once.
        self._lines: dict[str, dict[LogEntry, LogLine]] = {}

    def _check(self, service: str | None) -> None:
        if service is not None:
            check_service(service, self.state.services)

    def services(self) -> list[ServiceInfo]:
        infos = []
        for svc in self.state.services.values():
            deps = [c.callee for c in svc.calls]
            if svc.external_dependency:
                deps.append(svc.external_dependency)  # external: it has no telemetry of its own
            infos.append(
                ServiceInfo(
                    name=svc.name,
                    tier=svc.tier,
                    dependencies=deps,
                    replicas=svc.replicas,
                    version=svc.version,
                    region=svc.region,
                    team=svc.team,
                )
            )
        return infos

    def logs(
        self, service: str, minutes: int, pattern: str | None = None, limit: int = 200
    ) -> list[LogLine]:
        """Lines from the last `minutes`, oldest first; `pattern` is a case-insensitive regex."""
        self._check(service)
        since = self.state.tick - minutes
        regex = log_pattern(pattern)
        picked = [entry for entry in self.state.logs.get(service, [])
                  if entry[0] > since and (regex is None or regex.search(entry[2]))]
        picked = picked[-limit:] if limit > 0 else []
        built = self._lines.setdefault(service, {})
        if len(built) > 2 * LOG_LIMIT:  # older lines were trimmed from the state
            built.clear()
        lines = []
        for entry in picked:
            line = built.get(entry)
            if line is None:
                t, lvl, msg = entry
                # model_construct: the entry comes from our own state, already typed.
                line = built[entry] = LogLine.model_construct(at=tick_time(t), service=service,
                                                              level=lvl, message=msg)
            lines.append(line)
        return lines

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]:
        self._check(service)
        return [d.model_copy() for d in within(self.state.deploys, self.state.now(), minutes,
                                               service)]

    def flags(self, service: str | None = None) -> list[FlagState]:
        self._check(service)
        return [
            FlagState(
                key=f.key,
                service=f.service,
                enabled=f.enabled,
                rollout_percent=f.rollout_percent,
                updated_at=tick_time(f.updated_tick),
                owner=f.owner,
            )
            for f in self.state.flags
            if service is None or f.service == service
        ]

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        self._check(service)
        return [c.model_copy() for c in within(self.state.flag_changes, self.state.now(),
                                               minutes, service)]

    def variant_counts(self, service: str, flag: str,
                       minutes: int) -> dict[str, dict[str, int]]:
        """Per-variant requests, errors and conversions of `flag` over the last `minutes`."""
        self._check(service)
        return flags.variant_counts(self.state, service, flag, minutes)

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]:
        self._check(service)
        return [
            r.experiment.model_copy(deep=True)
            for r in self.state.experiments
            if service is None or r.experiment.target_service == service
        ]

    def releases(self, service: str) -> list[str]:
        return sboms.releases(self.state, service)

    def sbom(self, service: str, version: str | None = None) -> dict[str, Any]:
        return sboms.sbom(self.state, service, version)
