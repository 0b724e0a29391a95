"""Guardrails read the diagnosis itself: weak, conflicting or doubtful evidence never acts
unattended, at any severity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsloop.graph.nodes.guardrails import diagnosis_facts
from opsloop.models import (
    Anomaly,
    DecisionOutcome,
    Diagnosis,
    Hypothesis,
    Impact,
    Incident,
    RemediationAction,
    RemediationProposal,
    Severity,
)
from opsloop.policy import GuardrailContext, Policies, decide
from opsloop.policy.guardrails import DiagnosisFacts

RESTART = RemediationAction(id="a1", type="restart", service="checkout")
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def decided(policies: Policies, facts: DiagnosisFacts | None,
            severity: Severity = Severity.SEV3) -> tuple[DecisionOutcome, str]:
    d = decide(RESTART, severity, policies, GuardrailContext(current_replicas=3,
                                                             diagnosis=facts))
    return d.outcome, d.rule


@pytest.mark.parametrize("severity", [Severity.SEV2, Severity.SEV3, Severity.SEV4])
def test_a_sure_uncontested_diagnosis_still_acts(shipped_policies: Policies,
                                                 severity: Severity) -> None:
    assert decided(shipped_policies, DiagnosisFacts(confidence=0.9), severity)[0] \
        is DecisionOutcome.AUTO


@pytest.mark.parametrize(("facts", "rule"), [
    (DiagnosisFacts(confidence=0.65), "diagnosis.min_confidence"),
    (DiagnosisFacts(confidence=float("nan")), "diagnosis.min_confidence"),
    (DiagnosisFacts(confidence=0.85, rival="bad_deploy on checkout (80%)",
                    rival_confidence=0.8), "diagnosis.rival_margin"),
    (DiagnosisFacts(confidence=0.9, blamed_service="payments", blamed_alerted=False),
     "diagnosis.blames_silent_service"),
    (DiagnosisFacts(confidence=0.9, uncorroborated=True),
     "diagnosis.possible_telemetry_failure"),
])
@pytest.mark.parametrize("severity", [Severity.SEV2, Severity.SEV4])
def test_weak_or_conflicting_evidence_needs_a_human_at_any_severity(
        shipped_policies: Policies, facts: DiagnosisFacts, rule: str,
        severity: Severity) -> None:
    outcome, deciding = decided(shipped_policies, facts, severity)
    assert outcome is DecisionOutcome.NEEDS_APPROVAL
    assert deciding == f"remediation.yaml:{rule}"


def test_a_rival_further_away_than_the_margin_is_no_conflict(shipped_policies: Policies
                                                             ) -> None:
    facts = DiagnosisFacts(confidence=0.9, rival="x", rival_confidence=0.7)
    assert decided(shipped_policies, facts)[0] is DecisionOutcome.AUTO


def test_policy_can_deny_instead(shipped_policies: Policies) -> None:
    rules = shipped_policies.remediation.diagnosis.model_copy(
        update={"below_confidence": "deny"})
    policies = shipped_policies.model_copy(update={"remediation": shipped_policies.remediation
                                                   .model_copy(update={"diagnosis": rules})})
    assert decided(policies, DiagnosisFacts(confidence=0.5))[0] is DecisionOutcome.DENY


def incident(hypotheses: list[Hypothesis], alerted: list[str],
             uncorroborated: bool = False) -> Incident:
    return Incident(
        id="INC-0001", title="t", environment="sim:x", group_key="g", opened_at=AT,
        anomalies=[Anomaly(fingerprint=s, labels={"alertname": "HighErrorRate", "service": s},
                           starts_at=AT) for s in alerted],
        diagnoses=[Diagnosis(specialist="incident", hypotheses=hypotheses)],
        impact=Impact(uncorroborated=uncorroborated))


def hypothesis(hid: str, category: str, service: str, confidence: float) -> Hypothesis:
    return Hypothesis(id=hid, cause="c", category=category, service=service, runbook="r",
                      confidence=confidence)


def proposal(hid: str) -> RemediationProposal:
    return RemediationProposal(action=RESTART, specialist="incident", hypothesis_id=hid,
                               confidence=0.99)


def test_facts_come_from_the_record_not_from_the_proposal() -> None:
    record = incident([hypothesis("h1", "memory_leak", "checkout", 0.72),
                       hypothesis("h2", "bad_deploy", "checkout", 0.7),
                       hypothesis("h3", "memory_leak", "web", 0.71)], alerted=["web"])
    facts = diagnosis_facts(record, proposal("h1"))
    assert facts is not None
    assert facts.confidence == 0.72  # the hypothesis', not the proposal's 0.99
    assert facts.rival_confidence == 0.7 and facts.rival is not None
    assert "bad_deploy" in facts.rival  # same-category hypotheses are no rival
    assert not facts.blamed_alerted and facts.blamed_service == "checkout"


def test_telemetry_doubt_reaches_the_guardrails() -> None:
    record = incident([hypothesis("h1", "bad_deploy", "checkout", 0.9)], ["checkout"],
                      uncorroborated=True)
    facts = diagnosis_facts(record, proposal("h1"))
    assert facts is not None and facts.uncorroborated and facts.blamed_alerted
