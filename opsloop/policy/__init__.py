"""Policies as data: load and validate policies/*.yaml, and the deterministic engine on them."""

from opsloop.policy.guardrails import GuardrailContext, decide
from opsloop.policy.health import (
    SloStatus,
    budget_exhausted,
    budget_remaining,
    burn_rate,
    burn_rate_anomalies,
    slo_status,
)
from opsloop.policy.impact import blast_radius, measure_impact
from opsloop.policy.loader import check_policies, load_policies
from opsloop.policy.problems import PolicyError, PolicyProblem, ProblemLevel
from opsloop.policy.rollback import (
    ResolvedCriteria,
    VerificationCriteria,
    check_health,
    criteria_for,
    kill_switch_tripped,
    verification_for,
)
from opsloop.policy.schema import Policies
from opsloop.policy.severity import classify, escalation_for

__all__ = [
    "GuardrailContext",
    "Policies",
    "PolicyError",
    "PolicyProblem",
    "ProblemLevel",
    "ResolvedCriteria",
    "SloStatus",
    "VerificationCriteria",
    "blast_radius",
    "budget_exhausted",
    "budget_remaining",
    "burn_rate",
    "burn_rate_anomalies",
    "check_health",
    "check_policies",
    "classify",
    "criteria_for",
    "decide",
    "escalation_for",
    "kill_switch_tripped",
    "load_policies",
    "measure_impact",
    "slo_status",
    "verification_for",
]
