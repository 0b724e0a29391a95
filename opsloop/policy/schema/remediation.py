"""remediation.yaml: what agents may do alone, what needs a human, what nobody may do."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from opsloop.policy.schema.base import DecisionOutcome, PolicyFile, Severity, StrictModel


class ParamSpec(StrictModel):
    """Bounds on one action parameter; a value outside them is denied, naming the bound."""

    type: Literal["int", "number", "string", "bool"]
    required: bool = False
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _min_below_max(self) -> ParamSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class AutoLimits(StrictModel):
    """Beyond these a replica change is no longer routine: it needs a human."""

    max_replicas: int | None = Field(default=None, gt=0)
    max_factor: float | None = Field(default=None, gt=1)


class ActionPolicy(StrictModel):
    # reduces: undoes or contains a change (allowed during a change freeze);
    # adds: introduces change or removes capacity (frozen when the budget is gone);
    # adds_when_increasing: adds risk only when `risk_param` goes above its current value.
    risk: Literal["reduces", "adds", "adds_when_increasing"]
    risk_param: str | None = None
    # One outcome for every severity, or one per severity; missing severities fall back to
    # `severities`. Either way it can only make the severity's outcome stricter.
    outcome: DecisionOutcome | dict[Severity, DecisionOutcome] | None = None
    notify: bool = False
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    auto_limits: AutoLimits | None = None
    description: str = ""

    @model_validator(mode="after")
    def _risk_param_named(self) -> ActionPolicy:
        if self.risk == "adds_when_increasing":
            if not self.risk_param:
                raise ValueError("risk `adds_when_increasing` needs `risk_param` (e.g. percent)")
            if self.risk_param not in self.params:
                raise ValueError(f"risk_param {self.risk_param!r} is not one of `params`")
        return self

    def outcome_for(self, severity: Severity) -> DecisionOutcome | None:
        if isinstance(self.outcome, dict):
            return self.outcome.get(severity)
        return self.outcome

    def denied_everywhere(self) -> bool:
        return all(self.outcome_for(s) is DecisionOutcome.DENY for s in Severity)


class SeverityBoundary(StrictModel):
    outcome: DecisionOutcome
    notify: bool = False


class RateLimits(StrictModel):
    max_auto_per_service_per_hour: int = Field(ge=0)
    max_auto_per_incident: int = Field(ge=0)
    # Once a limit is reached, further actions are not silently dropped: a human decides.
    when_exceeded: Literal["needs_approval", "deny"] = "needs_approval"


class FreezeRules(StrictModel):
    risk_adding: Literal["needs_approval", "deny"] = "deny"


class RemediationPolicy(PolicyFile):
    default_outcome: DecisionOutcome = DecisionOutcome.DENY  # for action types not listed
    severities: dict[Severity, SeverityBoundary]
    rate_limits: RateLimits
    change_freeze: FreezeRules = FreezeRules()
    actions: dict[str, ActionPolicy]

    @model_validator(mode="after")
    def _every_severity_bounded(self) -> RemediationPolicy:
        missing = [s.value for s in Severity if s not in self.severities]
        if missing:
            raise ValueError(f"`severities` has no entry for {', '.join(missing)}; add one each")
        return self
