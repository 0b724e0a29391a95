"""Metrics from Prometheus: instant and range queries over its HTTP API (httpx, with
timeouts and tenacity retries), and the `Metrics` protocol on top of them.

Metric names become PromQL through policies/prometheus/promql.yaml. Prometheus holds no
logs, deploys, flags or experiments: beside another backend it supplies the metrics part of a
`Production` and that backend the change feed; alone (`watch_only`) its change feed is the
PromQL service catalog and nothing else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

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
from opsloop.tools.backend import ReadOnlyActuator, WallClock
from opsloop.tools.promql import PromQLMap
from opsloop.tools.protocols import ChangeFeed, Production

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAMES_TTL_SECONDS = 30.0  # how long the service list is trusted before asking again
MAX_POINTS_PER_QUERY = 10_000


class PrometheusError(RuntimeError):
    """Prometheus refused a query or could not be reached; the message says which and why."""


class _Transient(Exception):
    """A failure worth retrying: connection trouble, 429, 5xx."""


@dataclass(frozen=True)
class TimeScale:
    """How the environment's clock relates to the wall clock Prometheus timestamps with.

    In production one environment minute is 60 wall seconds and the clocks agree. A simulator
    served with a fast clock runs `minute_seconds` wall seconds per simulated minute, counted
    from an anchor: wall time `wall_anchor` (unix seconds) was `env_anchor` in the simulation.
    """

    minute_seconds: float = 60.0
    wall_anchor: float = 0.0
    env_anchor: datetime = EPOCH

    def to_env(self, wall: float) -> datetime:
        return self.env_anchor + timedelta(minutes=(wall - self.wall_anchor) / self.minute_seconds)

    def to_wall(self, at: datetime) -> float:
        minutes = (at - self.env_anchor).total_seconds() / 60.0
        return self.wall_anchor + minutes * self.minute_seconds


REAL_TIME = TimeScale()


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value), oldest first


class PrometheusClient:
    """Prometheus' HTTP API (`/api/v1/query`, `/api/v1/query_range`), with bounded retries."""

    def __init__(self, url: str, timeout: float = 10.0, attempts: int = 3,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.attempts = max(attempts, 1)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, form: dict[str, str]) -> Any:
        def once() -> Any:
            try:
                response = self._http.post(path, data=form)
            except httpx.TransportError as exc:
                raise _Transient(f"cannot reach Prometheus at {self.url}: "
                                 f"{type(exc).__name__}: {exc}") from exc
            if response.status_code == 429 or response.status_code >= 500:
                raise _Transient(f"Prometheus at {self.url} answered {response.status_code}: "
                                 f"{_error_text(response)}")
            return response

        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                retry=retry_if_exception_type(_Transient),
                reraise=True,
            ):
                with attempt:
                    response = once()
        except _Transient as exc:
            raise PrometheusError(
                f"{exc} (after {self.attempts} attempts); check that Prometheus runs and "
                "OPSLOOP_PROMETHEUS_URL points at it") from None
        if response.status_code != 200:
            raise PrometheusError(f"Prometheus refused {form.get('query', '')!r}: "
                                  f"{response.status_code} {_error_text(response)}")
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(f"Prometheus at {self.url} sent something that is not "
                                  "JSON; is the URL Prometheus' own?") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise PrometheusError(f"Prometheus query {form.get('query', '')!r} failed: "
                                  f"{_error_text(response)}")
        return body.get("data", {})

    def instant(self, query: str, at: float | None = None) -> list[Series]:
        """An instant query (`/api/v1/query`) at unix time `at` (default: now)."""
        form = {"query": query, **({"time": _ts(at)} if at is not None else {})}
        return _series(self._post("/api/v1/query", form))

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """A range query (`/api/v1/query_range`) from `start` to `end` every `step` seconds."""
        form = {"query": query, "start": _ts(start), "end": _ts(end), "step": _ts(step)}
        return _series(self._post("/api/v1/query_range", form))

    def ready(self) -> bool:
        try:
            return self._http.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False


def _ts(value: float) -> str:
    return f"{value:.3f}"


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("error"):
            return f"{body.get('errorType', 'error')}: {body['error']}"
    except ValueError:
        pass
    return response.text[:200] or response.reason_phrase


def _value(raw: Any) -> float:
    return float(raw[1])


def _series(data: Any) -> list[Series]:
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result", []) if isinstance(data, dict) else []
    if kind == "scalar":
        return [Series({}, [(float(result[0]), _value(result))])]
    out = []
    for item in result:
        raw = item.get("values") if kind == "matrix" else [item.get("value")]
        points = [(float(p[0]), _value(p)) for p in raw or [] if p is not None]
        out.append(Series(dict(item.get("metric", {})), points))
    return out


class PrometheusMetrics:
    """`Metrics` as PromQL against one Prometheus; `catalog` says which services exist."""

    def __init__(
        self,
        client: PrometheusClient,
        promql: PromQLMap,
        *,
        catalog: ChangeFeed | None = None,
        timescale: Callable[[], TimeScale] = lambda: REAL_TIME,
        wall_now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.promql = promql
        self.catalog = catalog if catalog is not None else PrometheusCatalog(client, promql,
                                                                              wall_now)
        self.timescale = timescale
        self.wall_now = wall_now
        self.queries: list[str] = []  # every PromQL sent, for the record and for tests
        self._names: tuple[float, list[str]] | None = None

    def _known(self, service: str) -> None:
        """KeyError for a service the catalog does not list (the protocol's contract)."""
        now = time.monotonic()
        if self._names is None or now - self._names[0] > NAMES_TTL_SECONDS:
            self._names = (now, [s.name for s in self.catalog.services()])
        names = self._names[1]
        if names and service not in names:
            raise KeyError(f"unknown service {service!r}; services: {', '.join(names)}")

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        """The last `minutes` of the metric, one point per minute of the environment's clock."""
        query = self.promql.query(metric, service)
        self._known(service)
        scale = self.timescale()
        end = self.wall_now()
        count = max(minutes, 1)
        start = end - (count - 1) * scale.minute_seconds
        self.queries.append(query)
        found: list[Series] = []
        step = scale.minute_seconds
        # Prometheus refuses more than 11,000 points per series in one range query.
        for first in range(0, count, MAX_POINTS_PER_QUERY):
            lo = start + first * step
            hi = min(lo + (MAX_POINTS_PER_QUERY - 1) * step, end)
            found += self.client.range(query, lo, hi, step)
        merged = _mean_by_time([s.points for s in found])
        points = [
            MetricPoint(at=scale.to_env(ts), value=value)
            for ts, value in merged[-count:]
            if math.isfinite(value)
        ]
        return MetricSeries(service=service, metric=metric, points=points)

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        """Mean over the last `minutes` (avg_over_time), None when Prometheus has no data."""
        if minutes < 1:
            raise ValueError(f"minutes must be at least 1, got {minutes}")
        scale = self.timescale()
        query = self.promql.average(
            metric, service, minutes * scale.minute_seconds, scale.minute_seconds
        )
        self._known(service)
        self.queries.append(query)
        found = self.client.instant(query, self.wall_now())
        values = [p[1] for s in found for p in s.points if math.isfinite(p[1])]
        return sum(values) / len(values) if values else None


class PrometheusCatalog:
    """The change feed Prometheus alone can offer: services from the PromQL `catalog` query
    (their labels: tier, dependencies, replicas, ...); it holds no logs, deploys, flags or
    experiments, so those read as none."""

    def __init__(self, client: PrometheusClient, promql: PromQLMap,
                 wall_now: Callable[[], float] = time.time) -> None:
        self.client = client
        self.promql = promql
        self.wall_now = wall_now

    def services(self) -> list[ServiceInfo]:
        if not self.promql.policy.catalog:
            return []
        found = self.client.instant(self.promql.policy.catalog, self.wall_now())
        infos = {}
        for s in found:
            labels = s.labels
            name = labels.get("service")
            if not name:
                continue
            infos[name] = ServiceInfo(
                name=name,
                tier=int(labels["tier"]) if labels.get("tier", "").isdigit() else 3,
                dependencies=[d for d in labels.get("dependencies", "").split(",") if d],
                replicas=int(float(labels.get("replicas", "0") or 0)),
                version=labels.get("version", ""),
                region=labels.get("region", "primary"),
                team=labels.get("team", ""),
            )
        return [infos[k] for k in sorted(infos)]

    def logs(self, service: str, minutes: int, pattern: str | None = None,
             limit: int = 200) -> list[LogLine]:
        return []

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]:
        return []

    def flags(self, service: str | None = None) -> list[FlagState]:
        return []

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        return []

    def variant_counts(self, service: str, flag: str,
                       minutes: int) -> dict[str, dict[str, int]]:
        raise KeyError(f"per-variant traffic of flag {flag!r} on {service!r} is not recorded "
                       "here: Prometheus alone holds no per-variant counts")

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]:
        return []

    def releases(self, service: str) -> list[str]:
        raise KeyError(f"releases of {service!r} are not known here: Prometheus holds none")

    def sbom(self, service: str, version: str | None = None) -> dict[str, Any]:
        raise KeyError(f"no SBOM of {service!r} here: Prometheus publishes none")


def watch_only(client: PrometheusClient, promql: PromQLMap,
               wall_now: Callable[[], float] = time.time) -> Production:
    """Production seen through Prometheus alone: its metrics and service catalog, the wall
    clock, and no way to change anything."""
    catalog = PrometheusCatalog(client, promql, wall_now)
    return Production(
        metrics=PrometheusMetrics(client, promql, catalog=catalog, wall_now=wall_now),
        changes=catalog,
        clock=WallClock(),
        actuator=ReadOnlyActuator("this production is watched through Prometheus only"),
        closers=[client.close],
    )


def _mean_by_time(series: Sequence[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """One value per timestamp: a query meant to return one series per service may return
    several (one per pod, or one per chunk of a long range); their mean stands for it."""
    sums: dict[float, list[float]] = {}
    for points in series:
        for ts, value in points:
            sums.setdefault(ts, []).append(value)
    return [(ts, sum(v) / len(v)) for ts, v in sorted(sums.items())]
