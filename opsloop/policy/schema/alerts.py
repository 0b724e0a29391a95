"""alerts.yaml: alert rules (field names match opsloop.observe.AlertRule) and their quality bar."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from opsloop.policy.schema.base import PolicyFile, StrictModel


class AlertQuality(StrictModel):
    # No alert without a clear action: every rule names a runbook id or an action to take.
    require_runbook_or_action: bool = True


class AlertRuleSpec(StrictModel):
    name: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    aggregate: Literal["avg", "max", "min", "last"]
    window_minutes: int = Field(gt=0)
    op: Literal[">", ">=", "<", "<="]
    # With baseline_offset_minutes set, the threshold is a ratio: value now / value then.
    threshold: float
    for_minutes: int = Field(default=0, ge=0)
    services: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    baseline_offset_minutes: int | None = Field(default=None, gt=0)

    @property
    def actionable(self) -> bool:
        return bool(
            self.annotations.get("runbook", "").strip()
            or self.annotations.get("action", "").strip()
        )


class AlertsPolicy(PolicyFile):
    quality: AlertQuality = AlertQuality()
    rules: list[AlertRuleSpec] = Field(min_length=1)
