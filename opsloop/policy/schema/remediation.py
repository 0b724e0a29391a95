"""remediation.yaml: what agents may do alone, what needs a human, what nobody may do."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

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


def _outcome_per_severity(value: Any) -> Any:
    # `outcome: deny` is shorthand for the same outcome at every severity. Expanding it here
    # (rather than a union type) keeps a typo down to one clear error.
    if isinstance(value, str):
        if value not in {o.value for o in DecisionOutcome}:
            raise ValueError(
                "should be auto, needs_approval or deny, or a mapping like {SEV1: deny}"
            )
        return {s.value: value for s in Severity}
    return value


OutcomeBySeverity = Annotated[
    dict[Severity, DecisionOutcome], BeforeValidator(_outcome_per_severity)
]


class ActionPolicy(StrictModel):
    # reduces: undoes or contains a change (allowed during a change freeze);
    # adds: introduces change or removes capacity (frozen when the budget is gone);
    # adds_when_increasing: adds risk only when `risk_param` goes above its current value.
    risk: Literal["reduces", "adds", "adds_when_increasing"]
    risk_param: str | None = None
    # One outcome for every severity, or one per severity; missing severities fall back to
    # `severities`. Either way it can only make the severity's outcome stricter.
    outcome: OutcomeBySeverity = Field(default_factory=dict)
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
        return self.outcome.get(severity)

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


class DiagnosisRules(StrictModel):
    """The evidence behind an action: weak or conflicting evidence raises it, at any severity.

    A model or the offline reasoner can be wrong; these rules read the diagnosis as code
    recorded it (confidences, rival hypotheses, which services alerted, triage's doubt) and
    can only tighten the decision.
    """

    # The hypothesis (or agent proposal) behind the action is less sure than this.
    min_confidence: float = Field(default=0.7, ge=0, le=1)
    below_confidence: Literal["needs_approval", "deny"] = "needs_approval"
    # Another hypothesis of a different category is within this of the chosen one's
    # confidence: the evidence does not tell them apart.
    rival_margin: float = Field(default=0.1, ge=0, le=1)
    conflicting: Literal["needs_approval", "deny"] = "needs_approval"
    # The hypothesis blames a service none of the incident's alerts named.
    blames_silent_service: Literal["needs_approval", "deny"] = "needs_approval"
    # Triage found the impact in one metric only (a possible telemetry failure).
    possible_telemetry_failure: Literal["needs_approval", "deny"] = "needs_approval"


class FreezeRules(StrictModel):
    risk_adding: Literal["needs_approval", "deny"] = "deny"


class RemediationPolicy(PolicyFile):
    default_outcome: DecisionOutcome = DecisionOutcome.DENY  # for action types not listed
    # For actions on a service outside the incident (severity was never measured there).
    outside_incident: DecisionOutcome = DecisionOutcome.NEEDS_APPROVAL
    severities: dict[Severity, SeverityBoundary]
    rate_limits: RateLimits
    change_freeze: FreezeRules = FreezeRules()
    diagnosis: DiagnosisRules = DiagnosisRules()
    actions: dict[str, ActionPolicy]

    @model_validator(mode="after")
    def _every_severity_bounded(self) -> RemediationPolicy:
        missing = [s.value for s in Severity if s not in self.severities]
        if missing:
            raise ValueError(f"`severities` has no entry for {', '.join(missing)}; add one each")
        return self
