"""alerts.yaml: alert rules and their quality bar."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from opsloop.models.catalog import METRICS
from opsloop.policy.schema.base import Minutes, PolicyFile, StrictModel


class AlertQuality(StrictModel):
    # No alert without a clear action: every rule names a runbook id or an action to take.
    require_runbook_or_action: bool = True
    # The alert-quality agent (schedule.yaml) looks back this far, and calls an alert noisy
    # when it fired at least `noisy_min_firings` times and at least `noisy_share` of those
    # ended with nobody acting (resolved on their own, or closed with nothing done).
    review_window: Minutes = 7 * 24 * 60
    noisy_min_firings: int = Field(default=3, ge=1)
    noisy_share: float = Field(default=0.5, gt=0, le=1)


Aggregate = Literal["avg", "max", "min", "last"]
Op = Literal[">", ">=", "<", "<="]


class AlertRule(StrictModel):
    """One alert rule; `opsloop.observe` evaluates it against any telemetry backend."""

    name: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    aggregate: Aggregate = "avg"
    window_minutes: int = Field(default=5, ge=1)
    op: Op = ">"
    # With baseline_offset_minutes set, the threshold is a ratio: value now / value then
    # (a Prometheus `offset` comparison, used for cost anomalies).
    threshold: float
    for_minutes: int = Field(default=1, ge=0)
    services: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    baseline_offset_minutes: int | None = Field(default=None, ge=1)

    def applies_to(self, service: str) -> bool:
        return "*" in self.services or service in self.services

    @property
    def actionable(self) -> bool:
        return bool(
            self.annotations.get("runbook", "").strip()
            or self.annotations.get("action", "").strip()
        )


class DetectedMetric(StrictModel):
    """A metric the detectors watch, and where an operator starts when it turns odd."""

    metric: str
    runbook: str = ""
    action: str = ""

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"{value!r} is not a metric telemetry provides; "
                             f"metrics: {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _actionable(self) -> DetectedMetric:
        if not (self.runbook.strip() or self.action.strip()):
            raise ValueError(f"metric {self.metric!r}: name a runbook (an id) or an action "
                             "(what to do), as for every alert rule")
        return self


class AnomalyDetection(StrictModel):
    """`detectors:` — streaming anomaly detectors on every service's metrics.

    A detector's score (0..1) at or above `threshold` for `for_minutes` consecutive minutes
    raises an alert named `alertname` (source "detector"); the same service and metric may
    not raise another for `cooldown_minutes` after it fired.
    """

    alertname: str = Field(default="MetricAnomaly", min_length=1)
    metrics: list[DetectedMetric] = Field(min_length=1)
    services: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    threshold: float = Field(gt=0.0, lt=1.0)
    for_minutes: int = Field(default=3, ge=1)
    cooldown_minutes: int = Field(default=60, ge=0)
    # The detector's memory, in minutes so it reads like the rest of this file.
    history_minutes: int = Field(default=1440, ge=0)   # read when a series is first seen
    season_days: int = Field(default=7, ge=1)          # same-time-of-day history kept
    block_minutes: int = Field(default=60, ge=1)       # one "usual extreme" per block
    blocks: int = Field(default=24, ge=1)              # the usual extreme: their median
    shift_minutes: int = Field(default=5, ge=1)        # a level shift: these minutes' mean
    shift_baseline_minutes: int = Field(default=60, ge=1)  # against these before them
    distribution_minutes: int = Field(default=50, ge=0)  # the recent histogram (0: off)
    labels: dict[str, str] = Field(default_factory=dict)

    def applies_to(self, service: str) -> bool:
        return "*" in self.services or service in self.services

    @model_validator(mode="after")
    def _one_entry_per_metric(self) -> AnomalyDetection:
        names = [m.metric for m in self.metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"metrics listed twice: {', '.join(twice)}")
        return self


class AlertsPolicy(PolicyFile):
    quality: AlertQuality = AlertQuality()
    rules: list[AlertRule] = Field(min_length=1)
    detectors: AnomalyDetection | None = None
