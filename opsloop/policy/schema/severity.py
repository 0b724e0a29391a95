"""severity.yaml: customer-impact tiers, ordered rules deciding SEV1..SEV4, escalation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from opsloop.models import Impact, Severity
from opsloop.policy.schema.base import PolicyFile, StrictModel


class Condition(StrictModel):
    """All given bounds must hold (AND). Each key is an `Impact` field plus `_gte` or `_lte`.

    Spelled out rather than parsed from strings so an unknown key (`error_rate_gte`) is
    rejected by the schema with its exact path.
    """

    tier_gte: int | None = None
    tier_lte: int | None = None
    error_ratio_gte: float | None = None
    error_ratio_lte: float | None = None
    latency_p99_ms_gte: float | None = None
    latency_p99_ms_lte: float | None = None
    requests_per_second_gte: float | None = None
    requests_per_second_lte: float | None = None
    burn_rate_1h_gte: float | None = None
    burn_rate_1h_lte: float | None = None
    burn_rate_5m_gte: float | None = None
    burn_rate_5m_lte: float | None = None
    error_budget_remaining_gte: float | None = None
    error_budget_remaining_lte: float | None = None
    saturation_gte: float | None = None
    saturation_lte: float | None = None
    blast_radius_gte: int | None = None
    blast_radius_lte: int | None = None
    services_any: list[str] | None = None  # at least one of these services is affected

    def bounds(self) -> list[tuple[str, str, float]]:
        """(impact field, 'gte'|'lte', bound) for every bound that is set."""
        out: list[tuple[str, str, float]] = []
        for key, bound in self.model_dump(exclude_none=True).items():
            if key == "services_any":
                continue
            field, _, op = key.rpartition("_")
            out.append((field, op, float(bound)))
        return out

    def matches(self, impact: Impact) -> bool:
        for field, op, bound in self.bounds():
            value = float(getattr(impact, field))
            if (op == "gte" and value < bound) or (op == "lte" and value > bound):
                return False
        return not (
            self.services_any is not None
            and not set(self.services_any).intersection(impact.services)
        )


class SeverityRule(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    when: Condition
    severity: Severity

    @model_validator(mode="after")
    def _has_a_condition(self) -> SeverityRule:
        # An empty `when` matches everything and silently shadows every later rule.
        if not self.when.model_dump(exclude_none=True):
            raise ValueError("`when` is empty, so it matches every incident; use `default`")
        return self


class Tiers(StrictModel):
    """Customer-impact tier per service: 1 = customer-facing revenue path."""

    default: int = Field(ge=1)
    services: dict[str, int] = Field(default_factory=dict)

    def of(self, service: str) -> int:
        return self.services.get(service, self.default)


class Escalation(StrictModel):
    page: bool = False  # page the on-call engineer
    war_room: bool = False  # open a war-room record for the incident
    channels: list[str] = Field(default_factory=list)  # where notifications go


class SeverityPolicy(PolicyFile):
    impact_window_minutes: int = Field(default=5, gt=0)
    impact_statistic: Literal["max", "avg"] = "max"
    tiers: Tiers
    rules: list[SeverityRule] = Field(min_length=1)
    default: Severity
    escalation: dict[Severity, Escalation]
    # SEV1 and SEV2 always get a postmortem draft; list lower severities that should too.
    postmortem_severities: list[Severity] = Field(default_factory=list)

    @model_validator(mode="after")
    def _escalation_for_every_severity(self) -> SeverityPolicy:
        missing = [s.value for s in Severity if s not in self.escalation]
        if missing:
            raise ValueError(f"`escalation` has no entry for {', '.join(missing)}; add one each")
        return self
