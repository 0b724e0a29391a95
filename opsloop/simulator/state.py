"""Everything the simulated production is, in one JSON-serialisable pydantic model."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from opsloop.models import ActionResult, ChaosExperiment, DeployEvent, FlagChange

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday; tick 0


LOG_LIMIT = 2000  # lines kept per service; older lines are dropped like a log shipper's buffer
VARIANT_LIMIT = 7 * 24 * 60  # minutes of per-variant counts kept per flag (an experiment's week)
DEFAULT_CONVERSION = 0.05  # share of successful requests that convert, for every variant
# 2: flags carry kind and per-variant conversion; per-variant counts (older saves load as is)
SCHEMA_VERSION = 2

LogEntry = tuple[int, str, str]  # (tick, level, message): compact on disk
# (tick, {variant: (requests, errors, conversions)}): one minute of a flag's traffic
VariantMinute = tuple[int, dict[str, tuple[int, int, int]]]


def tick_time(tick: int) -> datetime:
    """The simulated wall-clock time of a tick (1 tick = 1 minute after 09:00)."""
    return START + timedelta(minutes=tick)


class Call(BaseModel):
    """One caller -> callee edge: how much of the caller's traffic and failures it carries."""

    callee: str
    share: float  # fraction of the caller's requests that call the callee (latency adds by this)
    error_share: float  # fraction of the callee's failures that surface as the caller's failures


class VersionBehaviour(BaseModel):
    """What running a version does to a service: the defect lives in the version, not the pods."""

    error_ratio: float = 0.0
    latency_multiplier: float = 1.0  # applied to p99; p50/p95 get a milder share
    exception: str = ""  # the exception a defect throws, e.g. "NullPointerException in X.y"


class Autoscaler(BaseModel):
    enabled: bool = True
    min_replicas: int
    max_replicas: int
    target_cpu: float
    last_change_tick: int = -10_000


class ServiceState(BaseModel):
    """One service's static shape and its current physical condition."""

    name: str
    tier: int
    team: str
    calls: list[Call] = Field(default_factory=list)
    replicas: int
    capacity_rps: float  # per healthy replica
    base_rps: float
    traffic_multiplier: float = 1.0
    latency_p50_ms: float
    latency_p99_ms: float
    base_error_ratio: float
    prior_error_ratio: float = 0.0002  # long-run error ratio before the simulation started
    memory_limit_mb: int
    base_memory: float  # fraction of the limit a freshly started process uses
    leak_rate: float = 0.0  # fraction of the limit leaked per minute
    leaked: float = 0.0  # fraction currently leaked (average over replicas)
    disk_size_gb: float
    disk_data_gb: float
    disk_logs_gb: float
    log_growth_gb_per_min: float = 0.0  # growth above what log rotation removes
    cost_per_replica_hour: float
    version: str
    version_history: list[str]
    versions: dict[str, VersionBehaviour] = Field(default_factory=dict)
    region: str = "primary"
    outage_regions: list[str] = Field(default_factory=list)
    external_dependency: str | None = None  # e.g. payments-provider, modelled inside the service
    outage_error_ratio: float = 0.45
    has_primary: bool = False  # datastores: losing instance 0 (the primary) hurts every client
    primary_down_error: float = 0.0
    primary_down_latency_ms: float = 0.0
    down_instances: dict[str, int] = Field(default_factory=dict)  # instance -> ticks left; -1 held
    bad_instance: str | None = None
    bad_instance_error: float = 0.0
    restarting_ticks: int = 0
    warmup_ticks: int = 0  # cold caches after an instance comes back
    oom_kills: int = 0
    autoscaler: Autoscaler | None = None
    entrypoint: str = "Handler.handle"
    domain_error: str = "RequestError"

    def instances(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.replicas)]

    def behaviour(self) -> VersionBehaviour:
        return self.versions.get(self.version, VersionBehaviour())

    def memory(self) -> float:
        return self.base_memory + self.leaked


class FlagRecord(BaseModel):
    """A flagd-style flag plus what its `on` variant does to the requests that get it."""

    key: str
    service: str
    enabled: bool
    rollout_percent: float
    updated_tick: int
    owner: str = ""
    kind: str = "release"  # flagd metadata.kind: release, experiment, operational, ...
    variant_error_ratio: float = 0.0  # failure ratio of the cohort served the new variant
    # Share of a variant's successful requests that convert; a variant not named converts at
    # DEFAULT_CONVERSION, so an experiment has an effect only where a scenario sets one.
    variant_conversion: dict[str, float] = Field(default_factory=dict)

    def conversion(self, variant: str) -> float:
        return self.variant_conversion.get(variant, DEFAULT_CONVERSION)


class ExperimentRecord(BaseModel):
    experiment: ChaosExperiment
    instance: str
    ends_tick: int  # when the method's hold ends and the rollbacks run on their own
    started_tick: int


class PendingEvent(BaseModel):
    """A state change scheduled by a scenario; applied at the start of its tick."""

    tick: int
    kind: str
    service: str
    params: dict[str, Any] = Field(default_factory=dict)


class SimState(BaseModel):
    """The whole simulated production: saved and loaded as one JSON document."""

    schema_version: int = SCHEMA_VERSION
    seed: int
    scenario: str
    tick: int  # the minute last simulated; now() is tick_time(tick)
    history_start: int  # first simulated tick; series index 0 is this tick
    services: dict[str, ServiceState]
    flags: list[FlagRecord] = Field(default_factory=list)
    flag_changes: list[FlagChange] = Field(default_factory=list)
    deploys: list[DeployEvent] = Field(default_factory=list)
    experiments: list[ExperimentRecord] = Field(default_factory=list)
    pending: list[PendingEvent] = Field(default_factory=list)
    series: dict[str, dict[str, list[float]]] = Field(default_factory=dict)
    logs: dict[str, list[LogEntry]] = Field(default_factory=dict)
    executed: dict[str, ActionResult] = Field(default_factory=dict)
    reverted: dict[str, str] = Field(default_factory=dict)  # action key -> the revert's key
    # "service/flag" -> per-minute traffic by variant, for flags that split traffic
    variant_counts: dict[str, list[VariantMinute]] = Field(default_factory=dict)

    def now(self) -> datetime:
        return tick_time(self.tick)

    def flag(self, service: str, key: str) -> FlagRecord | None:
        return next((f for f in self.flags if f.service == service and f.key == key), None)

    def log(self, service: str, level: str, message: str, tick: int | None = None) -> None:
        lines = self.logs.setdefault(service, [])
        lines.append((self.tick if tick is None else tick, level, message))
        # Trim in batches so appending stays O(1) amortised.
        if len(lines) > LOG_LIMIT + 200:
            del lines[: len(lines) - LOG_LIMIT]

    def count_variants(self, service: str, key: str,
                       counts: dict[str, tuple[int, int, int]]) -> None:
        minutes = self.variant_counts.setdefault(f"{service}/{key}", [])
        minutes.append((self.tick, counts))
        if len(minutes) > VARIANT_LIMIT + 200:  # trimmed in batches, as logs are
            del minutes[: len(minutes) - VARIANT_LIMIT]

    def save(self, path: str | Path) -> None:
        """Write atomically: a temp file in the same directory, then os.replace."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.model_dump_json()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> SimState:
        text = Path(path).read_text(encoding="utf-8")
        return cls.model_validate_json(text)
