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


class AutoscalerSpec(StrictModel):
    """A service's autoscaler as declared (what its HorizontalPodAutoscaler says)."""

    max_replicas: int = Field(gt=0)
    target_cpu: float = Field(gt=0, le=1)  # the CPU utilisation per replica it scales towards


class Autoscaling(StrictModel):
    """Replicas as a capacity resource: the replicas the autoscaler will need against its
    maximum. At the maximum, scaling is not the answer: raising it is a person's decision."""

    # Needed replicas forecast to reach this fraction of the maximum within the horizon: alert.
    # Reaching the maximum itself sooner than forecast.lead_time (or now): escalate.
    alert_at: float = Field(default=0.9, gt=0, le=1)
    # Autoscalers the change feed may not have reported within the history read; an
    # autoscaler update in the feed (HorizontalPodAutoscaler ... updated) overrides these.
    services: dict[str, AutoscalerSpec] = Field(default_factory=dict)


class ImpactThresholds(StrictModel):
    """A cost anomaly's impact: dollars over expected and that as a share of expected."""

    impact_usd: float = Field(ge=0)
    impact_pct: float = Field(ge=0)


class Rightsizing(StrictModel):
    """When replicas requested are far above what CPU says is used."""

    window: Minutes = 6 * 60  # CPU and replicas judged over this much recent history
    cpu_below: float = Field(default=0.15, gt=0, le=1)  # p95 CPU under this: oversized
    target_cpu: float = Field(default=0.5, gt=0, le=1)  # size so p95 CPU lands here


class OpenCostSource(StrictModel):
    """OpenCost's /allocation API as a spend source (files in work/opencost/, and a URL)."""

    url: str | None = None  # queried only when set: offline by default
    # The allocation property a service is named by: namespace, controller or label:<name>.
    service_from: str = "controller"
    services: dict[str, str] = Field(default_factory=dict)  # that value -> service name
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _known_property(self) -> OpenCostSource:
        if self.service_from not in ("namespace", "controller") and not (
                self.service_from.startswith("label:") and len(self.service_from) > 6):
            raise ValueError(f"cost.opencost.service_from {self.service_from!r}: use "
                             f"namespace, controller or label:<name>")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"cost.opencost.url {self.url!r}: not an http(s) URL")
        return self


class CostPolicy(StrictModel):
    """What the cost agent reads, what counts as a cost anomaly, and when a person is told."""

    history: Minutes = 21 * 24 * 60  # hourly spend the expected spend is forecast from
    window: Minutes = 72 * 60  # recent spend judged against expected (up to the run)
    # An episode above expected is raised only past both of these (noise floor)...
    raise_at: ImpactThresholds = Field(
        default_factory=lambda: ImpactThresholds(impact_usd=1.0, impact_pct=10.0))
    # ...and escalated to a person only when both of these are crossed.
    escalate_at: ImpactThresholds = Field(
        default_factory=lambda: ImpactThresholds(impact_usd=50.0, impact_pct=100.0))
    # A "planned activity" mark covers its service/region/usage type this long from its start.
    planned_activity_for: Minutes = 14 * 24 * 60
    rightsizing: Rightsizing = Field(default_factory=Rightsizing)
    opencost: OpenCostSource = Field(default_factory=OpenCostSource)

    @model_validator(mode="after")
    def _escalate_above_raise(self) -> CostPolicy:
        if (self.escalate_at.impact_usd < self.raise_at.impact_usd
                or self.escalate_at.impact_pct < self.raise_at.impact_pct):
            raise ValueError("cost.escalate_at must be at or above cost.raise_at in both "
                             "impact_usd and impact_pct")
        if self.window >= self.history:
            raise ValueError(f"cost.window ({self.window} min) must be shorter than "
                             f"cost.history ({self.history} min)")
        return self


class CapacityPolicy(PolicyFile):
    resources: dict[Resource, ResourceThresholds]
    replicas: Replicas
    forecast: Forecasting = Field(default_factory=Forecasting)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    cost: CostPolicy = Field(default_factory=CostPolicy)
