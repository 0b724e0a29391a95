"""severity.yaml: customer-impact tiers, ordered rules deciding SEV1..SEV4, escalation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from opsloop.models import Impact, Severity
from opsloop.models.catalog import METRICS
from opsloop.policy.schema.base import PolicyFile, StrictModel
from opsloop.policy.schema.vulnerability import VulnerabilityPolicy


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
    # A page nobody acknowledged is sent again after this many minutes of production's
    # clock, at most `repage_max` times; None: never again.
    repage_after_minutes: int | None = Field(default=None, ge=1)
    repage_max: int = Field(default=3, ge=0, le=20)


# Independent signals that can back up an incident's impact (severity.yaml `corroboration`).
SignalKind = Literal["same_service", "other_services", "callers", "error_logs", "change"]


class CorroborationPolicy(StrictModel):
    """Impact only one metric of one service shows, with nothing else departing from its own
    baseline (the service's other metrics, its callers, its logs), is a possible telemetry
    failure: the incident opens at most at `cap` and says so."""

    cap: Severity
    require: list[SignalKind] = Field(min_length=1)  # the signals that count as corroboration
    min_signals: int = Field(default=1, ge=1)  # how many of them it takes
    # Each metric is compared with its own history: the `baseline_minutes` before the
    # impact window.
    baseline_minutes: int = Field(gt=0)
    # Departs: the impact window's mean is at least `deviation` robust standard deviations
    # (median absolute deviation x 1.4826) from the baseline median, and at least
    # `min_change` of that median away from it.
    deviation: float = Field(gt=0)
    min_change: float = Field(ge=0)
    metrics: list[str] = Field(min_length=1)  # the incident's services' metrics looked at
    caller_metrics: list[str] = Field(min_length=1)  # a caller's metrics that show the callee
    log_levels: list[str] = Field(min_length=1)  # what counts as an error-level log line
    # Error-level lines in the impact window needed for the logs to count (and more per
    # minute than in the baseline by `min_change`).
    error_logs_min: int = Field(ge=1)

    @field_validator("metrics", "caller_metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; "
                             f"metrics: {', '.join(METRICS)}")
        return names


class SeverityPolicy(PolicyFile):
    impact_window_minutes: int = Field(default=5, gt=0)
    impact_statistic: Literal["max", "avg"] = "max"
    tiers: Tiers
    rules: list[SeverityRule] = Field(min_length=1)
    default: Severity
    escalation: dict[Severity, Escalation]
    # SEV1 and SEV2 always get a postmortem draft; list lower severities that should too.
    postmortem_severities: list[Severity] = Field(default_factory=list)
    # None: impact is taken at face value, corroborated or not.
    corroboration: CorroborationPolicy | None = None
    # None: vulnerability findings are not triaged (opsloop.policy.vulnerability).
    vulnerabilities: VulnerabilityPolicy | None = None

    @model_validator(mode="after")
    def _escalation_for_every_severity(self) -> SeverityPolicy:
        missing = [s.value for s in Severity if s not in self.escalation]
        if missing:
            raise ValueError(f"`escalation` has no entry for {', '.join(missing)}; add one each")
        return self
