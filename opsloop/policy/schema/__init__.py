"""Pydantic models for every policy file, and `Policies`, the loaded set."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from opsloop.policy.schema.alerts import AlertQuality, AlertRule, AlertsPolicy
from opsloop.policy.schema.base import PolicyFile, StrictModel, format_minutes, strictest
from opsloop.policy.schema.capacity import CapacityPolicy, ReplicaBounds, ResourceThresholds
from opsloop.policy.schema.health import BurnWindow, HealthPolicy, Indicator, Slo
from opsloop.policy.schema.intake import InhibitRule, IntakePolicy, Matcher, Silence
from opsloop.policy.schema.notifications import NotificationsPolicy
from opsloop.policy.schema.remediation import (
    ActionPolicy,
    AutoLimits,
    ParamSpec,
    RateLimits,
    RemediationPolicy,
    SeverityBoundary,
)
from opsloop.policy.schema.resilience import ResiliencePolicy
from opsloop.policy.schema.rollback import Criteria, KillSwitch, RollbackPolicy, Thresholds
from opsloop.policy.schema.rollouts import FlagPlan, RolloutPlan, RolloutsPolicy
from opsloop.policy.schema.schedule import AgentSchedule, SchedulePolicy
from opsloop.policy.schema.severity import (
    Condition,
    Escalation,
    SeverityPolicy,
    SeverityRule,
    Tiers,
)
from opsloop.policy.schema.signals import SignalsPolicy


class Policies(BaseModel):
    """Every policy file, validated, plus where they were read from (for rule names in logs)."""

    model_config = ConfigDict(frozen=True)

    source_dir: Path
    health: HealthPolicy
    severity: SeverityPolicy
    remediation: RemediationPolicy
    rollback: RollbackPolicy
    alerts: AlertsPolicy
    capacity: CapacityPolicy
    intake: IntakePolicy
    schedule: SchedulePolicy
    rollouts: RolloutsPolicy
    notifications: NotificationsPolicy
    resilience: ResiliencePolicy
    signals: SignalsPolicy
    warnings: list[str] = Field(default_factory=list)  # from the loader, for the operator


# File name -> (attribute on Policies, schema). The loader reads exactly these.
POLICY_FILES: dict[str, tuple[str, type[PolicyFile]]] = {
    "health.yaml": ("health", HealthPolicy),
    "severity.yaml": ("severity", SeverityPolicy),
    "remediation.yaml": ("remediation", RemediationPolicy),
    "rollback.yaml": ("rollback", RollbackPolicy),
    "alerts.yaml": ("alerts", AlertsPolicy),
    "capacity.yaml": ("capacity", CapacityPolicy),
    "intake.yaml": ("intake", IntakePolicy),
    "schedule.yaml": ("schedule", SchedulePolicy),
    "rollouts.yaml": ("rollouts", RolloutsPolicy),
    "notifications.yaml": ("notifications", NotificationsPolicy),
    "resilience.yaml": ("resilience", ResiliencePolicy),
    "signals.yaml": ("signals", SignalsPolicy),
}

__all__ = [
    "POLICY_FILES",
    "ActionPolicy",
    "AgentSchedule",
    "AlertQuality",
    "AlertRule",
    "AlertsPolicy",
    "AutoLimits",
    "BurnWindow",
    "CapacityPolicy",
    "Condition",
    "Criteria",
    "Escalation",
    "FlagPlan",
    "HealthPolicy",
    "Indicator",
    "InhibitRule",
    "IntakePolicy",
    "KillSwitch",
    "Matcher",
    "NotificationsPolicy",
    "ParamSpec",
    "Policies",
    "PolicyFile",
    "RateLimits",
    "RemediationPolicy",
    "ReplicaBounds",
    "ResiliencePolicy",
    "ResourceThresholds",
    "RollbackPolicy",
    "RolloutPlan",
    "RolloutsPolicy",
    "SchedulePolicy",
    "SeverityBoundary",
    "SeverityPolicy",
    "SeverityRule",
    "SignalsPolicy",
    "Silence",
    "Slo",
    "StrictModel",
    "Thresholds",
    "Tiers",
    "format_minutes",
    "strictest",
]
