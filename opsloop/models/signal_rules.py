"""signals.yaml: when the improvement signals fire. A schema beside the data it judges, here
rather than in `opsloop.policy` because the learn rules (agents) read it and agents sit
beside, not above, the policy engine."""

from __future__ import annotations

from pydantic import Field

from opsloop.models.policy_file import PolicyFile, StrictModel


class ApprovalRule(StrictModel):
    """When people's answers to one kind of proposal say the proposal policy is wrong."""

    # Rejections of one action type under one policy rule, within the lookback.
    rejections: int = Field(default=2, ge=1)
    # An answer slower than this (people's wall clock) counts as slow ...
    slow_minutes: float = Field(default=30.0, gt=0)
    # ... and this many slow answers of one action type under one rule make a signal.
    slow_answers: int = Field(default=2, ge=1)


class SignalsPolicy(PolicyFile):
    """Thresholds of every rule in `opsloop.agents.signals`, and what is not an incident."""

    lookback_days: int = Field(default=30, ge=1, le=366)
    # Incidents of one root cause on one service (or of one cause across services).
    repeated_incidents: int = Field(default=3, ge=2)
    # Incidents one fix (action type on a service) was needed in.
    recurring_fix: int = Field(default=3, ge=2)
    # Incidents one action type ran automatically in.
    toil: int = Field(default=5, ge=2)
    approvals: ApprovalRule = Field(default_factory=ApprovalRule)
    # Root-cause categories that are done on purpose (a planned chaos experiment): such an
    # incident is handled like any other, but never counted towards a signal.
    deliberate_causes: list[str] = Field(default_factory=lambda: ["chaos_experiment"])
