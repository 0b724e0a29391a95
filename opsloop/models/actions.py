"""Remediation: what is proposed, what policy decides, what a human says, what happened."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ParamValue = str | int | float | bool

# A stored record must read back as it was written: a NaN or infinite parameter (which the
# guardrails deny, naming it) is written as NaN/Infinity, not as a null that fails on read.
ROUND_TRIP = ConfigDict(ser_json_inf_nan="constants")


class RemediationAction(BaseModel):
    """One concrete change to production: a type from policy, a target, parameters."""

    id: str
    type: str  # e.g. rollback_deploy, restart, scale_out, disable_flag, failover
    service: str
    params: dict[str, ParamValue] = Field(default_factory=dict)
    reason: str = ""

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.type}({self.service}{', ' + params if params else ''})"


class RemediationProposal(BaseModel):
    action: RemediationAction
    specialist: str
    hypothesis_id: str
    confidence: float
    rationale: str = ""


class DecisionOutcome(StrEnum):
    AUTO = "auto"
    NEEDS_APPROVAL = "needs_approval"
    DENY = "deny"


class PolicyDecision(BaseModel):
    """What the guardrails decided for one action, and which rule decided it."""

    action_id: str
    outcome: DecisionOutcome
    rule: str  # e.g. "remediation.yaml:actions.rollback_deploy.SEV1"
    reasons: list[str] = Field(default_factory=list)
    notify: bool = False


class ApprovalRequest(BaseModel):
    """The typed payload of an approval interrupt."""

    model_config = ROUND_TRIP

    id: str
    incident_id: str
    action: RemediationAction
    decision: PolicyDecision
    severity: str
    summary: str
    requested_at: datetime


class Verdict(StrEnum):
    APPROVE = "approve"
    MODIFY = "modify"
    REJECT = "reject"

    @property
    def past(self) -> str:
        return {"approve": "approved", "modify": "modified", "reject": "rejected"}[self.value]


class Approval(BaseModel):
    """A human's answer to an ApprovalRequest: who, when, why."""

    model_config = ROUND_TRIP

    request_id: str
    verdict: Verdict
    by: str
    at: datetime  # the environment's clock, like the rest of the incident record
    reason: str = ""
    changes: dict[str, ParamValue] = Field(default_factory=dict)


class ActionStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class ActionResult(BaseModel):
    action_id: str
    action: str  # human-readable description of what ran
    idempotency_key: str
    status: ActionStatus
    detail: str = ""
    at: datetime
    replayed: bool = False  # True when the key had already run and the stored result came back
    undo: dict[str, Any] = Field(default_factory=dict)  # what the actuator needs to revert


class VerificationCheck(BaseModel):
    name: str
    service: str
    observed: float
    threshold: float
    ok: bool


class Verification(BaseModel):
    passed: bool
    at: datetime
    window_minutes: int
    checks: list[VerificationCheck] = Field(default_factory=list)
    rolled_back: bool = False
    rollback_results: list[ActionResult] = Field(default_factory=list)
