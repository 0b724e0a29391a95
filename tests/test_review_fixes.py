"""Regressions found in review: each test fails without its fix."""

from __future__ import annotations

import math

import pytest

from opsloop.graph.runner import OperateLoop, StoreError
from opsloop.models import (
    ActionResult,
    DecisionOutcome,
    IncidentStatus,
    RemediationAction,
    Severity,
    Verdict,
)
from opsloop.policy import load_policies
from opsloop.policy.guardrails import GuardrailContext, decide
from opsloop.settings import REPO_ROOT
from opsloop.simulator import SimEnvironment
from opsloop.store import IncidentStore
from opsloop.watch import run_scenario


def test_two_stores_on_one_database_never_hand_out_the_same_id(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = IncidentStore(tmp_path / "s.db"), IncidentStore(tmp_path / "s.db")
    ids = [a.next_incident_id(), b.next_incident_id(), a.next_incident_id()]
    assert len(set(ids)) == 3


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_parameter_is_denied(value: float) -> None:
    policies = load_policies(REPO_ROOT / "policies")
    action = RemediationAction(id="a1", type="set_flag_rollout", service="checkout",
                               params={"flag": "f", "percent": value})
    decision = decide(action, Severity.SEV3, policies,
                      GuardrailContext(budget_exhausted=True, flag_percent=10.0))
    assert decision.outcome is DecisionOutcome.DENY


def test_an_action_outside_the_incident_needs_a_human() -> None:
    policies = load_policies(REPO_ROOT / "policies")
    action = RemediationAction(id="a1", type="restart", service="checkout")
    inside = decide(action, Severity.SEV3, policies, GuardrailContext())
    outside = decide(action, Severity.SEV3, policies,
                     GuardrailContext(target_in_incident=False))
    assert inside.outcome is DecisionOutcome.AUTO
    assert outside.outcome is DecisionOutcome.NEEDS_APPROVAL
    assert outside.rule == "remediation.yaml:outside_incident"


def test_rate_limits_count_only_the_same_production(loop: OperateLoop) -> None:
    # Four separate simulated productions each restart inventory once: no rate limit.
    for seed in (1, 2, 3, 4):
        incident = run_scenario(loop, "memory_leak", seed, lambda _m: None).incidents[0]
        decision = incident.actions[0].decision
        assert decision is not None and decision.outcome is DecisionOutcome.AUTO, seed


def test_a_run_that_dies_after_acting_is_resumed_without_acting_twice(
    loop: OperateLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = run_scenario(loop, "bad_deploy", 7, lambda _m: None).incidents[0]
    [request] = loop.pending()
    original = SimEnvironment.execute

    def execute_then_die(self: SimEnvironment, action: RemediationAction,
                         key: str) -> ActionResult:
        original(self, action, key)  # the change reaches production...
        raise RuntimeError("process died before the checkpoint")  # ...the record does not

    monkeypatch.setattr(SimEnvironment, "execute", execute_then_die)
    with pytest.raises(RuntimeError):
        loop.decide(request.id, Verdict.APPROVE, "alice", "go")
    monkeypatch.setattr(SimEnvironment, "execute", original)

    # The decision stands: it cannot be flipped to a rejection after the action ran.
    with pytest.raises(StoreError, match="resume"):
        loop.decide(request.id, Verdict.REJECT, "bob", "too late")
    assert loop.pending() == []

    final = loop.resume(incident.id, "alice")
    assert final.status is IncidentStatus.MITIGATED
    [case] = final.actions
    assert case.result is not None and case.result.replayed  # the actuator had done it once
    env = SimEnvironment.load(loop.settings.environments_dir
                              / f"{incident.environment.removeprefix('sim:')}.json")
    assert len(env.state.executed) == 1
    with pytest.raises(StoreError, match="nothing left to run"):
        loop.resume(incident.id, "alice")


def test_a_failed_start_leaves_a_record_of_why(loop: OperateLoop,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from opsloop.graph.nodes import triage

    def broken(*_args: object) -> object:
        raise RuntimeError("telemetry backend exploded")

    monkeypatch.setattr(triage, "measure_impact", broken)
    with pytest.raises(RuntimeError):
        run_scenario(loop, "disk_filling", 7, lambda _m: None)
    [incident] = loop.store.incidents()
    assert incident.status is IncidentStatus.ESCALATED
    assert "run_failed" in [r.kind for r in loop.store.audit_log(incident.id)]
