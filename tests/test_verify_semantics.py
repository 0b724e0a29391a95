"""Verification compares production after an action with before it: recovered, partial (kept,
escalated), no effect or worse (reverted where it should be), and never re-deploys a release
the diagnosis blamed. Real simulated incidents, with a second fault planted where a test
needs the fix to fall short."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from langgraph.runtime import Runtime

from opsloop import watch
from opsloop.graph.build import build_diagnosis
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.act import act
from opsloop.graph.nodes.learn import learn
from opsloop.graph.nodes.triage import triage
from opsloop.graph.nodes.verify import verify
from opsloop.graph.runner import OperateLoop
from opsloop.models import (
    ActionCase,
    ActionResult,
    ActionStatus,
    DecisionOutcome,
    EventKind,
    Hypothesis,
    Incident,
    IncidentStatus,
    PolicyDecision,
    RemediationAction,
    RemediationProposal,
    Verification,
    VerificationCheck,
)
from opsloop.models.actions import VerificationOutcome
from opsloop.policy import criteria_for
from opsloop.policy.rollback import judge, redeploys_blamed_version
from opsloop.policy.schema.rollback import Outcomes
from opsloop.simulator import SimEnvironment
from opsloop.simulator.events import schedule
from opsloop.simulator.state import SimState

Plant = Callable[[SimState], None]


def diagnosed(loop: OperateLoop, scenario: str
              ) -> tuple[Incident, SimEnvironment, Runtime[LoopContext]]:
    """The scenario's incident, triaged and diagnosed: what the change path receives."""
    run, env = watch.detect(loop, scenario, seed=7)
    [incident] = run.incidents
    rt = Runtime(context=loop.context(env))
    incident = triage({"incident": incident}, rt)["incident"]
    incident = build_diagnosis().invoke({"incident": incident}, context=rt.context)["incident"]
    return incident, env, rt


def acted_on(incident: Incident, rt: Runtime[LoopContext], env: SimEnvironment,
             actions: list[RemediationAction], plant: Plant | None = None) -> Incident:
    """Run `actions` (cleared by policy), plant a second fault a minute after them if asked,
    then verify and learn."""
    cases = [
        ActionCase(
            proposal=RemediationProposal(action=a, specialist="test", hypothesis_id="h",
                                         confidence=0.9),
            decision=PolicyDecision(action_id=a.id, outcome=DecisionOutcome.AUTO, rule="test"),
        )
        for a in actions
    ]
    incident = incident.model_copy(update={"actions": cases})
    incident = act({"incident": incident}, rt)["incident"]
    if plant is not None:
        plant(env.state)
    incident = verify({"incident": incident}, rt)["incident"]
    out: Incident = learn({"incident": incident}, rt)["incident"]
    return out


def flag_fails(error_ratio: float) -> Plant:
    """checkout's new-checkout-flow goes to 100% a minute later and its cohort fails."""
    def plant(state: SimState) -> None:
        schedule(state, state.tick + 1, "flag", "checkout", key="new-checkout-flow",
                 enabled=True, percent=100, variant_error_ratio=error_ratio, author="release-bot")
    return plant


def version_of(env: SimEnvironment, service: str) -> str:
    return next(s.version for s in env.services() if s.name == service)


def rollbacks(incident: Incident) -> list[str]:
    return [e.message for e in incident.timeline if e.kind is EventKind.ROLLBACK]


def test_a_failed_rollback_never_redeploys_the_blamed_version(loop: OperateLoop) -> None:
    incident, env, rt = diagnosed(loop, "bad_deploy")
    assert incident.root_cause is not None and incident.root_cause.service == "checkout"
    blamed = version_of(env, "checkout")
    rollback = RemediationAction(id=f"{incident.id}-a1", type="rollback_deploy",
                                 service="checkout")
    # A second fault keeps checkout failing after the rollback: verification fails.
    final = acted_on(incident, rt, env, [rollback], plant=flag_fails(0.3))
    verification = final.verification
    assert verification is not None and not verification.passed
    assert verification.outcome is VerificationOutcome.NO_EFFECT
    # rollback.yaml would revert a rollback_deploy that had no effect; verify does not.
    assert "revert" in criteria_for(loop.policies, "rollback_deploy").failure_steps()
    [case] = final.actions
    assert case.result is not None and case.revert is None and not verification.rolled_back
    assert version_of(env, "checkout") != blamed
    assert [d.kind for d in env.deploys("checkout", 60) if d.at >= case.result.at] == ["rollback"]
    [kept] = rollbacks(final)
    assert kept.startswith("kept rollback_deploy(checkout)") and blamed in kept
    assert final.status is IncidentStatus.ESCALATED


def test_a_wrong_fix_with_no_effect_is_still_reverted_as_policy_says(
        loop: OperateLoop) -> None:
    # Counterfactual to the rollback above: the same failed verification on an action whose
    # undo re-deploys nothing is reverted, because rollback.yaml says so.
    incident, env, rt = diagnosed(loop, "bad_deploy")
    before = next(s.replicas for s in env.services() if s.name == "checkout")
    wrong = RemediationAction(id=f"{incident.id}-w1", type="scale_out", service="checkout",
                              params={"replicas": 12})
    final = acted_on(incident, rt, env, [wrong])
    assert final.verification is not None
    assert final.verification.outcome is VerificationOutcome.NO_EFFECT
    [case] = final.actions
    assert case.revert is not None and final.verification.rolled_back
    assert next(s.replicas for s in env.services() if s.name == "checkout") == before


def test_a_partial_recovery_keeps_the_action_and_escalates(loop: OperateLoop) -> None:
    incident, env, rt = diagnosed(loop, "dependency_outage")
    failover = RemediationAction(id=f"{incident.id}-a1", type="failover", service="payments",
                                 params={"to_region": "secondary"})

    def one_bad_replica(state: SimState) -> None:  # a second fault failover cannot fix
        schedule(state, state.tick + 1, "bad_instance", "payments", instance="payments-1",
                 error_ratio=0.3)

    final = acted_on(incident, rt, env, [failover], plant=one_bad_replica)
    verification = final.verification
    assert verification is not None and not verification.passed
    assert verification.outcome is VerificationOutcome.PARTIAL and verification.mitigation_kept
    [case] = final.actions
    errors = next(c for c in case.checks if c.name == "error_ratio_max")
    assert not errors.ok and errors.before is not None and errors.observed < errors.before
    assert errors.improvement is not None and errors.improvement >= 0.5
    # Kept: failover is reversible and rollback.yaml reverts it on failure, yet it stays.
    assert "revert" in criteria_for(loop.policies, "failover").failure_steps()
    assert case.revert is None and not verification.rolled_back
    assert next(s.region for s in env.services() if s.name == "payments") == "secondary"
    said = next(e for e in final.timeline if e.kind is EventKind.VERIFICATION_FAILED)
    assert "partial recovery" in said.message and "Mitigation kept" in said.message
    assert said.data["outcome"] == "partial"
    assert final.status is IncidentStatus.ESCALATED
    handed_over = [e for e in final.timeline if e.kind is EventKind.ESCALATED]
    assert handed_over and handed_over[-1].at >= said.at  # learn hands it over after verify


def test_a_full_recovery_is_recovered_and_mitigated(loop: OperateLoop) -> None:
    incident, env, rt = diagnosed(loop, "dependency_outage")
    failover = RemediationAction(id=f"{incident.id}-a1", type="failover", service="payments",
                                 params={"to_region": "secondary"})
    final = acted_on(incident, rt, env, [failover])
    assert final.verification is not None and final.verification.passed
    assert final.verification.outcome is VerificationOutcome.RECOVERED
    assert final.status is IncidentStatus.MITIGATED


def test_only_the_harmful_action_is_reverted(loop: OperateLoop) -> None:
    incident, env, rt = diagnosed(loop, "bad_deploy")
    blamed = version_of(env, "checkout")
    rollback = RemediationAction(id=f"{incident.id}-a1", type="rollback_deploy",
                                 service="checkout")
    # Cutting checkout to 3 replicas overloads it: saturation and latency, healthy before,
    # fail after.
    harmful = RemediationAction(id=f"{incident.id}-a2", type="scale_in", service="checkout",
                                params={"replicas": 3})
    final = acted_on(incident, rt, env, [rollback, harmful])
    assert final.verification is not None
    assert final.verification.outcome is VerificationOutcome.WORSE
    kept, cut = final.actions
    assert cut.revert is not None and final.verification.rolled_back
    assert next(s.replicas for s in env.services() if s.name == "checkout") == 8
    assert kept.revert is None and version_of(env, "checkout") != blamed
    assert any(c.outcome is VerificationOutcome.WORSE and c.name == "saturation_max"
               for c in cut.checks)


def test_a_harmful_action_is_reverted_even_where_on_failure_only_escalates(
        loop: OperateLoop) -> None:
    incident, env, rt = diagnosed(loop, "bad_deploy")
    policies = loop.policies
    rollback = policies.rollback
    escalate_only = rollback.actions["scale_in"].model_copy(update={"on_failure": ["escalate"]})
    policies = policies.model_copy(update={"rollback": rollback.model_copy(
        update={"actions": {**rollback.actions, "scale_in": escalate_only}})})
    rt = Runtime(context=dataclasses.replace(rt.context, policies=policies))
    assert "revert" not in criteria_for(policies, "scale_in").failure_steps()
    harmful = RemediationAction(id=f"{incident.id}-a1", type="scale_in", service="checkout",
                                params={"replicas": 3})
    final = acted_on(incident, rt, env, [harmful])
    assert final.verification is not None
    assert final.verification.outcome is VerificationOutcome.WORSE
    [case] = final.actions
    assert case.revert is not None and final.verification.rolled_back
    assert next(s.replicas for s in env.services() if s.name == "checkout") == 8
    assert "made its checks worse" in rollbacks(final)[0]


RULES = Outcomes(partial_min_improvement=0.5, worse_margin=0.2)


def check(observed: float, threshold: float = 0.01) -> VerificationCheck:
    return VerificationCheck(name="error_ratio_max", service="checkout", observed=observed,
                             threshold=threshold, ok=observed <= threshold)


@pytest.mark.parametrize(("before", "after", "outcome"), [
    (0.30, 0.005, VerificationOutcome.RECOVERED),
    (0.30, 0.10, VerificationOutcome.PARTIAL),  # 69% of the gap closed
    (0.30, 0.20, VerificationOutcome.NO_EFFECT),  # 34%: below the policy's half
    (0.30, 0.29, VerificationOutcome.NO_EFFECT),
    (0.30, 0.40, VerificationOutcome.WORSE),  # 34% further away than the 20% margin
    (0.005, 0.02, VerificationOutcome.WORSE),  # healthy before, failing after
    (None, 0.02, VerificationOutcome.NO_EFFECT),  # no data before: never called better
])
def test_each_check_is_judged_against_before(before: float | None, after: float,
                                             outcome: VerificationOutcome) -> None:
    assert judge(check(after), before, RULES).outcome is outcome


def test_the_policy_decides_how_much_better_is_partial() -> None:
    demanding = Outcomes(partial_min_improvement=0.8, worse_margin=0.2)
    assert judge(check(0.10), 0.30, RULES).outcome is VerificationOutcome.PARTIAL
    assert judge(check(0.10), 0.30, demanding).outcome is VerificationOutcome.NO_EFFECT


def test_no_undo_that_redeploys_the_blamed_service_runs() -> None:
    def case(kind: str, undo: dict[str, object]) -> ActionCase:
        action = RemediationAction(id="a1", type=kind, service="checkout")
        ran = ActionResult(action_id="a1", action=action.describe(), idempotency_key="k",
                           status=ActionStatus.SUCCEEDED, at=datetime(2026, 11, 2, tzinfo=UTC),
                           undo=undo)
        return ActionCase(proposal=RemediationProposal(action=action, specialist="t",
                                                       hypothesis_id="h", confidence=1.0),
                          result=ran)

    blamed = Hypothesis(id="h", cause="checkout 2.14.0 throws", category="bad_deploy",
                        service="checkout", runbook="bad-deploy", confidence=0.9)
    redeploy: dict[str, object] = {"kind": "redeploy", "service": "checkout", "version": "2.14.0"}
    assert redeploys_blamed_version(case("rollback_deploy", {"kind": "recorded"}), None)
    assert redeploys_blamed_version(case("some_new_action", redeploy), blamed)
    # Re-deploying a service the diagnosis did not blame, or undoing a scale, is no such risk.
    elsewhere = blamed.model_copy(update={"service": "payments"})
    assert redeploys_blamed_version(case("some_new_action", redeploy), elsewhere) is None
    assert redeploys_blamed_version(case("scale_out", {"kind": "scale", "replicas": 8}),
                                    blamed) is None


def test_a_verification_stored_before_outcomes_reads_back() -> None:
    at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).isoformat()
    old = Verification.model_validate_json(
        f'{{"passed": false, "at": "{at}", "window_minutes": 10, "rolled_back": true,'
        f' "checks": [{{"name": "x", "service": "s", "observed": 1, "threshold": 0,'
        f' "ok": false}}]}}')
    assert old.outcome is VerificationOutcome.NO_EFFECT and old.checks[0].before is None
    passed = Verification.model_validate_json(
        f'{{"passed": true, "at": "{at}", "window_minutes": 10}}')
    assert passed.outcome is VerificationOutcome.RECOVERED
