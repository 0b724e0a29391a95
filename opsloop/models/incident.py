"""Anomalies, incidents, the evidence behind a diagnosis, and the timeline."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, model_validator

from opsloop.models.actions import (
    ROUND_TRIP,
    ActionCase,
    ActionResult,
    RemediationAction,
    RemediationProposal,
    Verification,
    VerificationCheck,
)
from opsloop.models.legacy import fold_parallel_lists
from opsloop.models.timeline import TimelineEvent
from opsloop.models.usage import ModelCall, ModelUsage


class Severity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"

    @property
    def rank(self) -> int:
        """1 is the worst."""
        return int(self.value[-1])


class AnomalyStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Anomaly(BaseModel):
    """One alert or detected anomaly, whatever its source (Alertmanager, SLO burn, detector)."""

    fingerprint: str
    status: AnomalyStatus = AnomalyStatus.FIRING
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    source: str = "alertmanager"
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "anomaly")

    @property
    def service(self) -> str | None:
        return self.labels.get("service")


class ToolStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    NO_DATA = "no_data"
    APPROVAL_REQUIRED = "approval_required"


class ToolResult(BaseModel):
    """What a tool call returns to an agent: never a bare string."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    status: ToolStatus
    data: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""
    error: str = ""


class Evidence(BaseModel):
    """One diagnostic check, what the tool said, and whether it supports the hypothesis."""

    check: str
    description: str = ""
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    status: ToolStatus
    observed: str
    expectation: str
    holds: bool | None  # None when the tool could not answer
    weight: float = 1.0


class Hypothesis(BaseModel):
    id: str
    cause: str
    category: str
    service: str
    runbook: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[Evidence] = Field(default_factory=list)
    remediation: list[RemediationAction] = Field(default_factory=list)


class Diagnosis(BaseModel):
    specialist: str
    hypotheses: list[Hypothesis] = Field(default_factory=list)  # best first
    runbooks: list[str] = Field(default_factory=list)
    proposals: list[RemediationProposal] = Field(default_factory=list)
    summary: str = ""
    reasoner: str = "offline"  # offline | model | fallback (the model failed; offline answered)
    model_calls: list[ModelCall] = Field(default_factory=list)

    @property
    def top(self) -> Hypothesis | None:
        return self.hypotheses[0] if self.hypotheses else None


class IncidentStatus(StrEnum):
    OPEN = "open"
    AWAITING_APPROVAL = "awaiting_approval"
    MITIGATED = "mitigated"  # acted, verification passed
    ESCALATED = "escalated"  # handed to a human, no automated fix left
    REJECTED = "rejected"  # the human said no to every proposed action
    RESOLVED = "resolved"  # closed with nothing to do


class Impact(BaseModel):
    """The numbers triage decided on, measured from telemetry when the incident opened."""

    services: list[str] = Field(default_factory=list)
    tier: int = 3
    error_ratio: float = 0.0
    latency_p99_ms: float = 0.0
    requests_per_second: float = 0.0
    burn_rate_1h: float = 0.0
    burn_rate_5m: float = 0.0
    error_budget_remaining: float = 1.0
    saturation: float = 0.0
    blast_radius: int = 0  # services affected, including callers of the failing ones
    # Triage found the impact in one metric of one service only, nothing backing it: a
    # possible telemetry failure (severity.yaml corroboration).
    uncorroborated: bool = False


class Incident(BaseModel):
    """The one record of an incident: what fired, what was decided, what was done."""

    model_config = ROUND_TRIP

    id: str
    title: str
    environment: str
    group_key: str
    group_labels: dict[str, str] = Field(default_factory=dict)
    anomalies: list[Anomaly] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    opened_at: datetime
    status: IncidentStatus = IncidentStatus.OPEN
    severity: Severity | None = None
    severity_rule: str = ""
    impact: Impact | None = None
    specialists: list[str] = Field(default_factory=list)
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    root_cause: Hypothesis | None = None
    novel: bool = False
    actions: list[ActionCase] = Field(default_factory=list)  # one per proposed action, in order
    verification: Verification | None = None
    timeline: list[TimelineEvent] = Field(default_factory=list)  # the one timeline: steps append
    postmortem_path: str | None = None
    signal_paths: list[str] = Field(default_factory=list)
    notifications: list[str] = Field(default_factory=list)
    usage: ModelUsage = Field(default_factory=ModelUsage)  # model calls, when a model reasoned

    @model_validator(mode="before")
    @classmethod
    def _fold_old_lists(cls, data: Any) -> Any:
        """Records stored before ActionCase stay readable."""
        return fold_parallel_lists(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _one_case_per_action(self) -> Incident:
        ids = [case.id for case in self.actions]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"actions: more than one case for action id {', '.join(twice)}; "
                             f"each proposed action has exactly one")
        return self

    def case(self, action_id: str) -> ActionCase | None:
        return next((case for case in self.actions if case.id == action_id), None)

    @property
    def verification_checks(self) -> list[VerificationCheck]:
        """Every check verification made: the incident's own, then each action's."""
        if self.verification is None:
            return []
        return [*self.verification.checks, *(c for case in self.actions for c in case.checks)]

    @property
    def reverts(self) -> list[ActionResult]:
        """What verification rolled back, in the order it did (the last action first)."""
        return [case.revert for case in reversed(self.actions) if case.revert is not None]
