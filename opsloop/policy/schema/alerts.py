"""alerts.yaml: alert rules and their quality bar."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from opsloop.policy.schema.base import PolicyFile, StrictModel


class AlertQuality(StrictModel):
    # No alert without a clear action: every rule names a runbook id or an action to take.
    require_runbook_or_action: bool = True


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


class AlertsPolicy(PolicyFile):
    quality: AlertQuality = AlertQuality()
    rules: list[AlertRule] = Field(min_length=1)
