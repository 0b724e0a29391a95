"""Each node of the graph on its own, against a real simulated incident."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from opsloop import watch
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.act import act, idempotency_key
from opsloop.graph.nodes.guardrails import guardrails
from opsloop.graph.nodes.intake import intake
from opsloop.graph.nodes.learn import learn
from opsloop.graph.nodes.specialist import make_specialist
from opsloop.graph.nodes.supervisor import supervisor
from opsloop.graph.nodes.triage import triage
from opsloop.graph.nodes.verify import verify
from opsloop.graph.runner import OperateLoop
from opsloop.graph.state import LoopState
from opsloop.models import (
    DecisionOutcome,
    Incident,
    IncidentStatus,
    RemediationAction,
    RemediationProposal,
    Severity,
)
from opsloop.simulator import SimEnvironment


def opened(
    loop: OperateLoop, scenario: str
) -> tuple[Incident, SimEnvironment, Runtime[LoopContext]]:
    run, env = watch.detect(loop, scenario, seed=7)
    [incident] = run.incidents
    return incident, env, Runtime(context=loop.context(env))


def through_triage(incident: Incident, rt: Runtime[LoopContext]) -> LoopState:
    state: LoopState = {"incident": incident}
    state["incident"] = triage(state, rt)["incident"]
    return state


def diagnosed(incident: Incident, rt: Runtime[LoopContext]) -> LoopState:
    """Route, run the chosen specialists, merge: the state guardrails receives."""
    state = through_triage(incident, rt)
    routed = supervisor(state, rt)
    state["incident"] = routed.update["incident"]  # type: ignore[index]
    findings = []
    for send in routed.goto:  # type: ignore[union-attr]
        findings += make_specialist(send.node)(send.arg, rt)["findings"]
    state["findings"] = findings
    merged = supervisor(state, rt)
    state["incident"] = merged.update["incident"]  # type: ignore[index]
    return state


def test_intake_records_first_signal_alerts_and_alert_quality(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "memory_leak")
    no_runbook = incident.anomalies[0].model_copy(update={"annotations": {"summary": "x"}})
    incident = incident.model_copy(update={"anomalies": [*incident.anomalies, no_runbook]})
    events = intake({"incident": incident}, rt)["events"]
    kinds = [e.kind for e in events]
    assert kinds[0] == "first_signal"
    assert events[0].at == min(a.starts_at for a in incident.anomalies)
    assert kinds.count("alert") == len(incident.anomalies)
    assert kinds.count("alert_quality") == 1
    assert kinds[-1] == "opened"


@pytest.mark.parametrize(("scenario", "severity"), [
    ("bad_deploy", Severity.SEV1), ("flag_rollout_errors", Severity.SEV2),
    ("disk_filling", Severity.SEV3), ("cost_runaway", Severity.SEV4),
])
def test_triage_decides_severity_from_policy(loop: OperateLoop, scenario: str,
                                             severity: Severity) -> None:
    incident, _, rt = opened(loop, scenario)
    out = triage({"incident": incident}, rt)
    assert out["incident"].severity is severity
    assert out["incident"].severity_rule.startswith("severity.yaml")
    assert out["incident"].impact.services == incident.services
    assert incident.severity is None  # the input state was not mutated


def test_supervisor_routes_with_send_then_merges(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "flag_rollout_errors")
    state = through_triage(incident, rt)
    routed = supervisor(state, rt)
    assert isinstance(routed, Command)
    sends = routed.goto
    assert isinstance(sends, list) and all(isinstance(s, Send) for s in sends)
    assert "rollout" in [s.node for s in sends]
    assert len(sends) <= loop.settings.max_specialists
    state = diagnosed(incident, rt)
    assert state["incident"].root_cause is not None
    assert state["incident"].root_cause.category == "flag_rollout"
    assert state["incident"].proposals[0].action.type == "disable_flag"


def test_supervisor_calls_it_novel_when_no_hypothesis_is_confident(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "memory_leak")
    state = through_triage(incident, rt)
    state["incident"] = state["incident"].model_copy(update={"specialists": ["cost"]})
    state["findings"] = make_specialist("cost")({"incident": state["incident"]}, rt)["findings"]
    merged = supervisor(state, rt)
    assert merged.goto == "guardrails"
    result = merged.update["incident"]  # type: ignore[index]
    assert result.novel and result.proposals == []


def test_specialist_uses_only_its_own_tools(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "chaos_experiment")
    # capacity has no running_experiments tool, so it cannot see the chaos experiment
    capacity = make_specialist("capacity")({"incident": incident}, rt)["findings"][0]
    assert all(h.category != "chaos_experiment" or h.confidence == 0
               for h in capacity.hypotheses)
    resilience = make_specialist("resilience")({"incident": incident}, rt)["findings"][0]
    assert resilience.top is not None and resilience.top.category == "chaos_experiment"


def test_guardrails_send_sev1_to_approval_and_sev3_to_act(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "bad_deploy")
    out = guardrails(diagnosed(incident, rt), rt)
    assert out.goto == "approval"
    assert out.update["cleared"] == []  # type: ignore[index]
    incident, _, rt = opened(loop, "disk_filling")
    out = guardrails(diagnosed(incident, rt), rt)
    assert out.goto == "act"
    decision = out.update["incident"].decisions[0]  # type: ignore[index]
    assert decision.outcome is DecisionOutcome.AUTO
    assert out.update["cleared"] == [decision.action_id]  # type: ignore[index]


def test_guardrails_deny_what_a_proposal_cannot_widen(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "disk_filling")
    state = diagnosed(incident, rt)
    evil = RemediationAction(id="x1", type="delete_database", service="postgres",
                             reason="the alert text said so")
    state["incident"] = state["incident"].model_copy(update={"proposals": [
        RemediationProposal(action=evil, specialist="remediation", hypothesis_id="h",
                            confidence=1.0)]})
    out = guardrails(state, rt)
    assert out.goto == "learn"
    assert out.update["incident"].decisions[0].outcome is DecisionOutcome.DENY  # type: ignore[index]


def test_act_runs_each_cleared_action_once_under_its_key(loop: OperateLoop) -> None:
    incident, env, rt = opened(loop, "disk_filling")
    state = diagnosed(incident, rt)
    state = {**state, **guardrails(state, rt).update}  # type: ignore[dict-item]
    first = act(state, rt)
    assert first.goto == "verify"
    [result] = first.update["incident"].results  # type: ignore[index]
    assert not result.replayed
    again = act(state, rt)  # a replayed node (e.g. after a crash) must not act twice
    [replay] = again.update["incident"].results  # type: ignore[index]
    assert replay.replayed and replay.idempotency_key == result.idempotency_key
    action = state["incident"].proposals[0].action
    assert list(env.state.executed) == [idempotency_key(state["incident"].id, action)]


def test_verify_fails_a_wrong_fix_and_reverts_it(loop: OperateLoop) -> None:
    incident, env, rt = opened(loop, "bad_deploy")
    state = through_triage(incident, rt)
    # A plausible but wrong fix for a bad deploy: more replicas of the broken version.
    wrong = RemediationAction(id=f"{incident.id}-w1", type="scale_out", service="checkout",
                              params={"replicas": 12})
    state["incident"] = state["incident"].model_copy(update={"proposals": [
        RemediationProposal(action=wrong, specialist="capacity", hypothesis_id="h",
                            confidence=0.9)]})
    before = next(s.replicas for s in env.services() if s.name == "checkout")
    state = {**state, **guardrails(state, rt).update}  # type: ignore[dict-item]
    state["cleared"] = [wrong.id]  # as if a human had approved it
    state = {**state, **act(state, rt).update}  # type: ignore[dict-item]
    assert next(s.replicas for s in env.services() if s.name == "checkout") == 12
    out = verify(state, rt)
    verification = out["incident"].verification
    assert not verification.passed
    assert any(c.name == "error_ratio_max" and not c.ok for c in verification.checks)
    assert verification.rolled_back
    assert next(s.replicas for s in env.services() if s.name == "checkout") == before
    final = learn({**state, **out}, rt)["incident"]
    assert final.status is IncidentStatus.ESCALATED
    assert final.postmortem_path and Path(final.postmortem_path).exists()


def test_verify_passes_the_right_fix(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "memory_leak")
    state = diagnosed(incident, rt)
    state = {**state, **guardrails(state, rt).update}  # type: ignore[dict-item]
    state = {**state, **act(state, rt).update}  # type: ignore[dict-item]
    verification = verify(state, rt)["incident"].verification
    assert verification.passed and not verification.rolled_back
    assert any(c.name == "alert MemoryHigh cleared" and c.ok for c in verification.checks)


def test_learn_files_a_novel_failure_signal_and_escalates(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "memory_leak")
    state = through_triage(incident, rt)
    state["incident"] = state["incident"].model_copy(update={"novel": True})
    final = learn(state, rt)["incident"]
    assert final.status is IncidentStatus.ESCALATED
    assert any("novel" in p for p in final.signal_paths)
    assert final.postmortem_path is not None  # escalations always get a postmortem draft
