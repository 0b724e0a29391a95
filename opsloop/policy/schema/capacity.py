"""capacity.yaml: when to scale, alert and escalate per resource; replica bounds per service;
how far the capacity agent forecasts and how much warning a person needs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from opsloop.policy.schema.base import Minutes, PolicyFile, StrictModel

Resource = Literal["cpu_utilization", "memory_utilization", "disk_utilization", "saturation"]


class ResourceThresholds(StrictModel):
    scale_at: float = Field(gt=0)
    alert_at: float = Field(gt=0)
    escalate_at: float = Field(gt=0)
    # Exhaustion: the level at which the resource has run out (a full disk, every replica
    # busy). Time to exhaustion is measured against it.
    limit: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ResourceThresholds:
        # Escalating before alerting (or alerting before trying to scale) is always a typo.
        if not self.scale_at <= self.alert_at <= self.escalate_at:
            raise ValueError(
                f"need scale_at <= alert_at <= escalate_at, got {self.scale_at}, "
                f"{self.alert_at}, {self.escalate_at}"
            )
        return self


class ReplicaBounds(StrictModel):
    min: int = Field(ge=0)
    max: int = Field(gt=0)

    @model_validator(mode="after")
    def _min_below_max(self) -> ReplicaBounds:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class PartialReplicaBounds(StrictModel):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, gt=0)


class Replicas(StrictModel):
    defaults: ReplicaBounds
    services: dict[str, PartialReplicaBounds] = Field(default_factory=dict)
    max_scale_step: int = Field(gt=0)  # most replicas one action may add or remove

    @model_validator(mode="after")
    def _overrides_consistent(self) -> Replicas:
        for service, override in self.services.items():
            low = self.defaults.min if override.min is None else override.min
            high = self.defaults.max if override.max is None else override.max
            if low > high:
                raise ValueError(f"{service}: min {low} is above max {high}")
        return self

    def bounds_for(self, service: str) -> ReplicaBounds:
        override = self.services.get(service)
        if override is None:
            return self.defaults
        return ReplicaBounds(
            min=self.defaults.min if override.min is None else override.min,
            max=self.defaults.max if override.max is None else override.max,
        )


class Forecasting(StrictModel):
    """What the capacity agent reads and how far ahead it looks."""

    history: Minutes = 28 * 24 * 60  # telemetry read per series (less if less is held)
    horizon: Minutes = 48 * 60  # how far ahead thresholds and exhaustion are looked for
    # The time a person needs to act on a warning: exhaustion (or escalate_at) forecast
    # sooner than this is escalated now, since by the time anyone acted it would be there.
    lead_time: Minutes = 8 * 60

    @model_validator(mode="after")
    def _lead_inside_horizon(self) -> Forecasting:
        if self.lead_time > self.horizon:
            raise ValueError(f"lead_time ({self.lead_time} min) is beyond the horizon "
                             f"({self.horizon} min): it could never be seen coming")
        return self


class CapacityPolicy(PolicyFile):
    resources: dict[Resource, ResourceThresholds]
    replicas: Replicas
    forecast: Forecasting = Field(default_factory=Forecasting)
