"""Remediation: what is proposed, what policy decides, what a human says, what happened."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    # When a person was first asked, on the wall clock: people answer in real time, whatever
    # the environment's clock says (a simulation's may stand still while they think).
    asked_wall_at: datetime | None = None


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
    # Seconds from the request reaching the queue to this answer, on the wall clock.
    waited_seconds: float | None = None


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


class VerificationOutcome(StrEnum):
    """How production looks after an action compared with before it (rollback.yaml `outcomes`)."""

    RECOVERED = "recovered"  # every check within its threshold: healthy
    PARTIAL = "partial"  # not healthy, but closed the policy's share of the gap: kept, escalated
    NO_EFFECT = "no_effect"  # neither healthy nor better enough: rollback.yaml's on_failure
    WORSE = "worse"  # further from healthy than before: reverted where it can be undone


class VerificationCheck(BaseModel):
    name: str
    service: str
    observed: float
    threshold: float
    ok: bool
    # The same measure over the minutes before the action ran; None when there was no data
    # then (and on checks stored before verification compared with before).
    before: float | None = None
    # Share of the gap between `before` and `threshold` the action closed: 1 (or more) = all
    # of it, 0 = none, negative = further away. None when the check was healthy before.
    improvement: float | None = None
    outcome: VerificationOutcome | None = None  # None: not judged (the incident's alert checks)


class Verification(BaseModel):
    """Whether the fix held after the policy's window. `checks` are the incident's own (the
    alerts that opened it stopped firing); each action's checks are on its ActionCase."""

    passed: bool
    at: datetime
    window_minutes: int
    checks: list[VerificationCheck] = Field(default_factory=list)
    rolled_back: bool = False
    # Recovered only when `passed`; a record stored before outcomes reads as recovered or
    # no_effect (what its all-or-nothing verdict meant).
    outcome: VerificationOutcome | None = None
    rule: str = ""  # the policy that judged it, e.g. "rollback.yaml:outcomes"

    @model_validator(mode="after")
    def _outcome_from_passed(self) -> Verification:
        if self.outcome is None:
            self.outcome = (VerificationOutcome.RECOVERED if self.passed
                            else VerificationOutcome.NO_EFFECT)
        return self

    @property
    def mitigation_kept(self) -> bool:
        """Better but not healthy: the actions stay in place and a human takes it from here."""
        return self.outcome is VerificationOutcome.PARTIAL


class ActionCase(BaseModel):
    """One proposed action and everything that became of it: the policy decision, the
    human's answer, what ran, what was reverted, and the checks that judged it."""

    model_config = ROUND_TRIP

    proposal: RemediationProposal  # its action as it will run (a human may have modified it)
    decision: PolicyDecision | None = None
    requested_at: datetime | None = None  # when policy asked a human (needs_approval)
    approval: Approval | None = None
    proposed: RemediationAction | None = None  # the agent's own action, when a human modified it
    result: ActionResult | None = None
    revert: ActionResult | None = None  # the rollback verification ordered, if any
    checks: list[VerificationCheck] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.proposal.action.id

    @property
    def action(self) -> RemediationAction:
        return self.proposal.action

    @property
    def specialist(self) -> str:
        return self.proposal.specialist

    @property
    def awaits_human(self) -> bool:
        """Policy wants a human's answer and none has been given."""
        return (self.decision is not None and self.approval is None
                and self.decision.outcome is DecisionOutcome.NEEDS_APPROVAL)

    @property
    def cleared(self) -> bool:
        """Allowed to run: policy said auto, or a human said yes to what policy then allowed."""
        if self.decision is None or self.decision.outcome is DecisionOutcome.DENY:
            return False
        if self.decision.outcome is DecisionOutcome.AUTO:
            return True
        return self.approval is not None and self.approval.verdict is not Verdict.REJECT

    @property
    def succeeded(self) -> bool:
        return self.result is not None and self.result.status is ActionStatus.SUCCEEDED

    @property
    def approval_wait(self) -> timedelta | None:
        """From the request to the human's answer; None when either is missing."""
        if self.approval is None or self.requested_at is None:
            return None
        return self.approval.at - self.requested_at

    @property
    def human_wait(self) -> timedelta | None:
        """How long the person took to answer, on the wall clock; None when not recorded."""
        if self.approval is None or self.approval.waited_seconds is None:
            return None
        return timedelta(seconds=self.approval.waited_seconds)
