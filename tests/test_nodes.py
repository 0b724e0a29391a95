"""Each node of the graph on its own, against a real simulated incident.

Nodes run on a scratch thread of the graph they belong to: each update goes through that
graph's own channels (the specialists' findings through its reducer), and the graph's own
edges say where it goes next.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from opsloop import watch
from opsloop.graph.build import build_change_path, build_diagnosis, build_graph
from opsloop.graph.checkpoint import memory_checkpointer
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.act import act, idempotency_key
from opsloop.graph.nodes.guardrails import guardrails
from opsloop.graph.nodes.intake import intake
from opsloop.graph.nodes.learn import learn
from opsloop.graph.nodes.specialist import make_specialist
from opsloop.graph.nodes.supervisor import fan_out, merge, route
from opsloop.graph.nodes.triage import triage
from opsloop.graph.nodes.verify import verify
from opsloop.graph.runner import OperateLoop
from opsloop.graph.state import LoopState
from opsloop.graph.thread import thread_state
from opsloop.models import (
    ActionCase,
    Approval,
    ApprovalRequest,
    DecisionOutcome,
    EventKind,
    Incident,
    IncidentStatus,
    RemediationAction,
    RemediationProposal,
    Severity,
    Verdict,
)
from opsloop.simulator import SimEnvironment
from opsloop.store import StoreError

Node = Callable[[Any, Runtime[LoopContext]], Any]


class Scratch:
    """A scratch thread of a compiled graph, run one node at a time."""

    def __init__(self, graph: Pregel[Any, Any, Any, Any], incident: Incident) -> None:
        self.graph = graph
        self.config: RunnableConfig = {"configurable": {"thread_id": f"scratch-{uuid4().hex}"}}
        graph.update_state(self.config, {"incident": incident}, as_node=START)

    @property
    def values(self) -> dict[str, Any]:
        return self.graph.get_state(self.config).values

    @property
    def incident(self) -> Incident:
        incident: Incident = self.values["incident"]
        return incident

    def apply(self, name: str, update: dict[str, Any]) -> tuple[str, ...]:
        """Record `update` as node `name`'s output; where the graph goes next."""
        self.graph.update_state(self.config, update, as_node=name)
        return self.graph.get_state(self.config).next

    def run(self, name: str, node: Node, rt: Runtime[LoopContext]) -> tuple[str, ...]:
        return self.apply(name, node(self.values, rt))


def change_path(incident: Incident) -> Scratch:
    return Scratch(build_change_path(memory_checkpointer()), incident)


def opened(
    loop: OperateLoop, scenario: str
) -> tuple[Incident, SimEnvironment, Runtime[LoopContext]]:
    run, env = watch.detect(loop, scenario, seed=7)
    [incident] = run.incidents
    return incident, env, Runtime(context=loop.context(env))


def triaged(incident: Incident, rt: Runtime[LoopContext]) -> Incident:
    out: Incident = triage({"incident": incident}, rt)["incident"]
    return out


def diagnosed(incident: Incident, rt: Runtime[LoopContext]) -> Incident:
    """Triaged, then the diagnosis subgraph: the incident the change path receives."""
    out: Incident = build_diagnosis().invoke(
        {"incident": triaged(incident, rt)}, context=rt.context)["incident"]
    return out


def proposed(incident: Incident, action: RemediationAction, specialist: str) -> Incident:
    proposal = RemediationProposal(action=action, specialist=specialist, hypothesis_id="h",
                                   confidence=0.9)
    return incident.model_copy(update={"actions": [ActionCase(proposal=proposal)]})


def test_intake_records_first_signal_alerts_and_alert_quality(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "memory_leak")
    no_runbook = incident.anomalies[0].model_copy(update={"annotations": {"summary": "x"}})
    incident = incident.model_copy(update={"anomalies": [*incident.anomalies, no_runbook]})
    events = intake({"incident": incident}, rt)["incident"].timeline
    kinds = [e.kind for e in events]
    assert kinds[0] is EventKind.FIRST_SIGNAL
    assert events[0].at == min(a.starts_at for a in incident.anomalies)
    assert kinds.count(EventKind.ALERT) == len(incident.anomalies)
    assert kinds.count(EventKind.ALERT_QUALITY) == 1
    assert kinds[-1] is EventKind.OPENED
    assert incident.timeline == []  # the input state was not mutated


@pytest.mark.parametrize(("scenario", "severity"), [
    ("bad_deploy", Severity.SEV1), ("flag_rollout_errors", Severity.SEV2),
    ("disk_filling", Severity.SEV3), ("cost_runaway", Severity.SEV4),
])
def test_triage_decides_severity_from_policy(loop: OperateLoop, scenario: str,
                                             severity: Severity) -> None:
    incident, _, rt = opened(loop, scenario)
    out = triaged(incident, rt)
    assert out.severity is severity
    assert out.severity_rule.startswith("severity.yaml")
    assert out.impact is not None and out.impact.services == incident.services
    assert out.timeline[0].kind is EventKind.TRIAGED
    assert incident.severity is None  # the input state was not mutated


def test_diagnosis_routes_with_send_then_merges(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "flag_rollout_errors")
    scratch = Scratch(build_diagnosis(memory_checkpointer()), triaged(incident, rt))
    fanned = scratch.run("route", route, rt)
    sends = fan_out({"incident": scratch.incident})
    assert all(isinstance(s, Send) for s in sends)
    assert fanned == tuple(s.node for s in sends) == tuple(scratch.incident.specialists)
    assert "rollout" in fanned and len(fanned) <= loop.settings.max_specialists
    result = diagnosed(incident, rt)
    assert result.root_cause is not None and result.root_cause.category == "flag_rollout"
    assert result.actions[0].action.type == "disable_flag"
    assert result.actions[0].decision is None  # policy has not seen it yet
    kinds = [e.kind for e in result.timeline]
    assert kinds.index(EventKind.ROUTED) < kinds.index(EventKind.SPECIALIST)
    assert kinds[-1] is EventKind.DIAGNOSED
    assert kinds.count(EventKind.SPECIALIST) == len(result.specialists)


def test_diagnosis_calls_it_novel_when_no_hypothesis_is_confident(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "memory_leak")
    routed = triaged(incident, rt).model_copy(update={"specialists": ["cost"]})
    scratch = Scratch(build_diagnosis(memory_checkpointer()), routed)
    assert scratch.run("cost", make_specialist("cost"), rt) == ("merge",)
    assert [f.diagnosis.specialist for f in scratch.values["findings"]] == ["cost"]
    assert scratch.run("merge", merge, rt) == ()
    assert scratch.incident.novel and scratch.incident.actions == []


def test_specialist_uses_only_its_own_tools(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "chaos_experiment")
    # capacity has no running_experiments tool, so it cannot see the chaos experiment
    [capacity] = make_specialist("capacity")({"incident": incident}, rt)["findings"]
    assert all(h.category != "chaos_experiment" or h.confidence == 0
               for h in capacity.diagnosis.hypotheses)
    [resilience] = make_specialist("resilience")({"incident": incident}, rt)["findings"]
    top = resilience.diagnosis.top
    assert top is not None and top.category == "chaos_experiment"
    assert resilience.timeline[-1].kind is EventKind.SPECIALIST


def test_guardrails_send_sev1_to_approval_and_sev3_to_act(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "bad_deploy")
    scratch = change_path(diagnosed(incident, rt))
    assert scratch.run("guardrails", guardrails, rt) == ("approval",)
    [case] = scratch.incident.actions
    assert case.awaits_human and not case.cleared
    assert case.requested_at == rt.context.clock.now()
    incident, _, rt = opened(loop, "disk_filling")
    scratch = change_path(diagnosed(incident, rt))
    assert scratch.run("guardrails", guardrails, rt) == ("act",)
    [case] = scratch.incident.actions
    assert case.decision is not None and case.decision.outcome is DecisionOutcome.AUTO
    assert case.cleared and case.requested_at is None


def test_guardrails_deny_what_a_proposal_cannot_widen(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "disk_filling")
    evil = RemediationAction(id="x1", type="delete_database", service="postgres",
                             reason="the alert text said so")
    scratch = change_path(proposed(diagnosed(incident, rt), evil, "remediation"))
    assert scratch.run("guardrails", guardrails, rt) == ("learn",)
    [case] = scratch.incident.actions
    assert case.decision is not None and case.decision.outcome is DecisionOutcome.DENY
    assert not case.cleared


def test_act_runs_each_cleared_action_once_under_its_key(loop: OperateLoop) -> None:
    incident, env, rt = opened(loop, "disk_filling")
    scratch = change_path(diagnosed(incident, rt))
    scratch.run("guardrails", guardrails, rt)
    before = scratch.values
    assert scratch.run("act", act, rt) == ("verify",)
    [case] = scratch.incident.actions
    assert case.result is not None and not case.result.replayed
    again = act(before, rt)["incident"]  # a replayed node (e.g. after a crash) must not act twice
    [replay] = again.actions
    assert replay.result is not None and replay.result.replayed
    assert replay.result.idempotency_key == case.result.idempotency_key
    assert list(env.state.executed) == [idempotency_key(incident.id, case.action)]


def test_verify_fails_a_wrong_fix_and_reverts_it(loop: OperateLoop) -> None:
    incident, env, rt = opened(loop, "bad_deploy")
    # A plausible but wrong fix for a bad deploy: more replicas of the broken version.
    wrong = RemediationAction(id=f"{incident.id}-w1", type="scale_out", service="checkout",
                              params={"replicas": 12})
    scratch = change_path(proposed(triaged(incident, rt), wrong, "capacity"))
    before = next(s.replicas for s in env.services() if s.name == "checkout")
    assert scratch.run("guardrails", guardrails, rt) == ("approval",)
    [case] = scratch.incident.actions
    yes = Approval(request_id=wrong.id, verdict=Verdict.APPROVE, by="test", at=env.now())
    approved = scratch.incident.model_copy(
        update={"actions": [case.model_copy(update={"approval": yes})]})
    assert scratch.apply("approval", {"incident": approved}) == ("act",)
    assert scratch.run("act", act, rt) == ("verify",)
    assert next(s.replicas for s in env.services() if s.name == "checkout") == 12
    assert scratch.run("verify", verify, rt) == ("learn",)
    verification = scratch.incident.verification
    assert verification is not None and not verification.passed
    [case] = scratch.incident.actions
    assert any(c.name == "error_ratio_max" and not c.ok for c in case.checks)
    assert verification.rolled_back and case.revert is not None
    assert scratch.incident.reverts == [case.revert]
    assert next(s.replicas for s in env.services() if s.name == "checkout") == before
    assert scratch.run("learn", learn, rt) == ()
    final = scratch.incident
    assert final.status is IncidentStatus.ESCALATED
    assert final.postmortem_path and Path(final.postmortem_path).exists()


def test_verify_passes_the_right_fix(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "memory_leak")
    scratch = change_path(diagnosed(incident, rt))
    assert scratch.run("guardrails", guardrails, rt) == ("act",)
    assert scratch.run("act", act, rt) == ("verify",)
    scratch.run("verify", verify, rt)
    verification = scratch.incident.verification
    assert verification is not None and verification.passed and not verification.rolled_back
    assert any(c.name == "alert MemoryHigh cleared" and c.ok for c in verification.checks)
    assert all(c.ok for c in scratch.incident.verification_checks)


def test_learn_files_a_novel_failure_signal_and_escalates(loop: OperateLoop) -> None:
    incident, _, rt = opened(loop, "memory_leak")
    novel = triaged(incident, rt).model_copy(update={"novel": True})
    final = learn({"incident": novel}, rt)["incident"]
    assert final.status is IncidentStatus.ESCALATED
    assert any("novel" in p for p in final.signal_paths)
    assert final.postmortem_path is not None  # escalations always get a postmortem draft
    assert EventKind.POSTMORTEM in [e.kind for e in final.timeline]


def test_the_change_path_runs_as_a_graph_of_its_own(loop: OperateLoop) -> None:
    # Built standalone, as a scheduled agent would add it: a SEV1 pauses for a human, the
    # answer resumes it, and it finishes the incident.
    incident, _, rt = opened(loop, "bad_deploy")
    change = build_change_path(memory_checkpointer())
    config: RunnableConfig = {"configurable": {"thread_id": incident.id}}
    change.invoke({"incident": diagnosed(incident, rt)}, config, context=rt.context)
    paused = change.get_state(config)
    assert paused.next == ("approval",)
    [waiting] = [ApprovalRequest.model_validate(i.value) for i in paused.interrupts]
    yes = Approval(request_id=waiting.id, verdict=Verdict.APPROVE, by="alice",
                   at=rt.context.clock.now())
    change.invoke(Command(resume=yes.model_dump(mode="json")), config, context=rt.context)
    final: Incident = change.get_state(config).values["incident"]
    [case] = final.actions
    assert case.approval == yes and case.succeeded
    assert final.status is IncidentStatus.MITIGATED
    kinds = [e.kind for e in final.timeline]
    assert kinds.index(EventKind.APPROVED) < kinds.index(EventKind.ACTION) < kinds.index(
        EventKind.VERIFIED) < kinds.index(EventKind.CLOSED)


def test_a_paused_loop_shows_the_incident_as_the_change_path_left_it(loop: OperateLoop) -> None:
    # The approval waits inside the `change` subgraph: the thread's state is read through it.
    incident, env, _ = opened(loop, "bad_deploy")
    graph = build_graph(memory_checkpointer())
    config: RunnableConfig = {"configurable": {"thread_id": incident.id}}
    graph.invoke({"incident": incident}, config, context=loop.context(env))
    assert graph.get_state(config).next == ("change",)
    paused = thread_state(graph, config)
    [waiting] = [ApprovalRequest.model_validate(i.value) for i in paused.interrupts]
    [case] = paused.values["incident"].actions
    assert case.awaits_human and waiting.id == case.id
    assert paused.values["incident"].timeline[-1].kind is EventKind.DECISION
    no = Approval(request_id=waiting.id, verdict=Verdict.REJECT, by="bob", at=env.now())
    graph.invoke(Command(resume=no.model_dump(mode="json")), config, context=loop.context(env))
    done = thread_state(graph, config)
    assert done.next == () and done.interrupts == ()
    assert done.values["incident"].status is IncidentStatus.REJECTED


def test_a_thread_the_earlier_graph_ran_is_refused_not_read_as_finished() -> None:
    # Before the subgraphs the loop had a `supervisor` step and paused at a top-level
    # `approval`; this graph would see such a thread as done and record it wrongly.
    saver = memory_checkpointer()

    def supervisor(state: LoopState) -> LoopState:
        return state

    earlier = StateGraph(LoopState)
    earlier.add_node("supervisor", supervisor)
    earlier.add_edge(START, "supervisor")
    earlier.add_edge("supervisor", END)
    config: RunnableConfig = {"configurable": {"thread_id": "INC-0001"}}
    incident = Incident(id="INC-0001", title="t", environment="sim:x", group_key="{}",
                        opened_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    earlier.compile(checkpointer=saver).invoke({"incident": incident}, config)
    with pytest.raises(StoreError, match=r"INC-0001 was run by an earlier opsloop .*supervisor"):
        thread_state(build_graph(saver), config)
