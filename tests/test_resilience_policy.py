"""resilience.yaml through the guardrails: each rule refuses a GameDay start on its own, and
no refusal can be loosened by anything else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from opsloop.chaos.experiments import BlastRadius
from opsloop.models import DecisionOutcome, RemediationAction, Severity
from opsloop.policy import Policies
from opsloop.policy.guardrails import GuardrailContext, decide
from opsloop.policy.resilience import RUN_EXPERIMENT, ResilienceFacts

TUESDAY_NOON = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
ACTION = RemediationAction(id="a1", type=RUN_EXPERIMENT, service="search",
                           params={"experiment": "search-replica-loss"})
SAFE = ResilienceFacts(
    experiment="search-replica-loss", now=TUESDAY_NOON,
    blast_radius=BlastRadius(("search",), instances=1, duration_minutes=20),
    replicas={"search": 6}, steady_state_met=True, budget_left={"search": 0.9})


def decided(policies: Policies, facts: ResilienceFacts | None,
            severity: Severity = Severity.SEV4) -> tuple[DecisionOutcome, str]:
    decision = decide(ACTION, severity, policies, GuardrailContext(resilience=facts))
    return decision.outcome, decision.rule


def test_a_safe_start_waits_for_a_person(shipped_policies: Policies) -> None:
    assert decided(shipped_policies, SAFE) == (
        DecisionOutcome.NEEDS_APPROVAL,
        "remediation.yaml:actions.run_chaos_experiment.outcome.SEV4")


@pytest.mark.parametrize(("facts", "rule"), [
    (replace(SAFE, open_incidents=(("inc-1", Severity.SEV2),)),
     "resilience.yaml:refuse_during_incidents_at"),
    (replace(SAFE, steady_state_met=False, steady_state_detail="search p99 read 900"),
     "resilience.yaml:steady_state"),
    (replace(SAFE, steady_state_met=None), "resilience.yaml:steady_state"),
    (replace(SAFE, budget_left={"search": 0.3}), "resilience.yaml:min_error_budget_left"),
    (replace(SAFE, now=TUESDAY_NOON.replace(hour=22)), "resilience.yaml:allowed_hours"),
    (replace(SAFE, now=TUESDAY_NOON + timedelta(days=4)), "resilience.yaml:allowed_hours"),
    (replace(SAFE, earlier_runs=(TUESDAY_NOON - timedelta(hours=3),)),
     "resilience.yaml:min_interval"),
    (replace(SAFE, runs_today=3), "resilience.yaml:max_runs_per_day"),
    (replace(SAFE, blast_radius=BlastRadius(("search",), 2, 20)),
     "resilience.yaml:blast_radius.max_instance_share"),
    (replace(SAFE, blast_radius=BlastRadius(("search",), 1, 45)),
     "resilience.yaml:blast_radius.max_duration_minutes"),
    (replace(SAFE, blast_radius=BlastRadius(("search", "web"), 1, 20),
             replicas={"search": 6, "web": 6}), "resilience.yaml:blast_radius.max_services"),
    (replace(SAFE, blast_radius=BlastRadius(("payments",), 1, 20), replicas={"payments": 4}),
     "resilience.yaml:services.payments.allowed"),
    (replace(SAFE, replicas={}), "resilience.yaml:blast_radius.max_instance_share"),
    (replace(SAFE, blast_radius=None, problem="no such experiment"),
     "resilience.yaml:experiment"),
])
def test_each_rule_refuses_on_its_own(shipped_policies: Policies, facts: ResilienceFacts,
                                      rule: str) -> None:
    assert decided(shipped_policies, facts) == (DecisionOutcome.DENY, rule)


def test_an_incident_below_the_line_does_not_refuse(shipped_policies: Policies) -> None:
    facts = replace(SAFE, open_incidents=(("inc-3", Severity.SEV3),))
    assert decided(shipped_policies, facts)[0] is DecisionOutcome.NEEDS_APPROVAL


def test_without_facts_a_start_is_denied(shipped_policies: Policies) -> None:
    assert decided(shipped_policies, None) == (DecisionOutcome.DENY, "resilience.yaml")


def test_a_more_permissive_severity_never_loosens_a_refusal(shipped_policies: Policies
                                                            ) -> None:
    facts = replace(SAFE, open_incidents=(("inc-1", Severity.SEV1),))
    for severity in Severity:
        assert decided(shipped_policies, facts, severity)[0] is DecisionOutcome.DENY


def test_redis_has_its_own_share(shipped_policies: Policies) -> None:
    facts = replace(SAFE, blast_radius=BlastRadius(("redis",), 1, 20), replicas={"redis": 3},
                    budget_left={})
    assert decided(shipped_policies, facts)[0] is DecisionOutcome.NEEDS_APPROVAL  # 33% <= 34%
    facts = replace(facts, blast_radius=BlastRadius(("redis",), 2, 20))
    assert decided(shipped_policies, facts) == (
        DecisionOutcome.DENY, "resilience.yaml:services.redis.max_instance_share")
