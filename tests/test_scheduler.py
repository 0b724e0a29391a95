"""Scheduled agents: due times, claims, catch-up, recovery, and the shared change path.

Time is driven by passing `now`, never by sleeping; production is a real simulation on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsloop.environments import new_simulation, open_environment
from opsloop.graph.agent_run import RunInfo, run_id_for
from opsloop.graph.runner import OperateLoop
from opsloop.models import (
    DecisionOutcome,
    IncidentStatus,
    RemediationAction,
    RemediationProposal,
    Verdict,
)
from opsloop.policy import Policies
from opsloop.policy.schema import AgentSchedule, SchedulePolicy
from opsloop.scheduled import registry
from opsloop.scheduled.base import AgentContext, Analysis, Finding
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings

MONDAY = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


class Probe:
    """A test agent: counts its steps, may propose one action, may fail."""

    def __init__(self, name: str, propose: RemediationAction | None = None,
                 fail: bool = False) -> None:
        self.name = name
        self.purpose = "test probe"
        self.tools = ("incident_history",)
        self.propose = propose
        self.fail = fail
        self.observed = 0
        self.analysed = 0

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        self.observed += 1
        return {"services": [s.name for s in ctx.telemetry.services()]}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        self.analysed += 1
        if self.fail:
            raise RuntimeError("probe broke")
        proposals = [] if self.propose is None else [RemediationProposal(
            action=self.propose, specialist=self.name, hypothesis_id="h1", confidence=0.9,
            rationale="test")]
        return Analysis(summary=f"saw {len(observed['services'])} services",
                        findings=[Finding(kind="probe", subject="fleet", summary="ok")],
                        proposals=proposals)


def schedule_of(**agents: AgentSchedule) -> SchedulePolicy:
    return SchedulePolicy(version=1, agents=agents)


@pytest.fixture
def world(settings: Settings, make_loop: Callable[[Settings], OperateLoop],
          shipped_policies: Policies) -> Iterator[Callable[..., Scheduler]]:
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.close()
    made: list[tuple[OperateLoop, RunLedger]] = []
    added: list[str] = []

    def build(*agents: Probe, schedule: SchedulePolicy | None = None) -> Scheduler:
        for agent in agents:
            registry.register(agent)
            added.append(agent.name)
        policies = shipped_policies.model_copy(
            update={"schedule": schedule or schedule_of(**{
                a.name: AgentSchedule(cron="0 8 * * *") for a in agents})})
        loop = OperateLoop(settings, policies, make_loop(settings).runbooks)
        ledger = RunLedger(settings.state_dir / "schedule.db")
        made.append((loop, ledger))
        return Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))

    yield build
    for loop, ledger in made:
        loop.close()
        ledger.close()
    for name in added:
        registry.unregister(name)


def test_nothing_is_owed_before_an_agent_was_first_scheduled(world: Callable[..., Scheduler]
                                                             ) -> None:
    probe = Probe("probe-a")
    scheduler = world(probe)
    assert scheduler.tick(MONDAY) == []  # 07:00: anchors; 08:00 has not come
    assert scheduler.tick(MONDAY + timedelta(minutes=59)) == []
    runs = scheduler.tick(MONDAY + timedelta(hours=1, minutes=1))
    assert [(r.agent, r.status, r.trigger) for r in runs] == [
        ("probe-a", "succeeded", "schedule")]
    assert runs[0].due_at == MONDAY + timedelta(hours=1)
    assert runs[0].summary.startswith("saw 9 services")
    assert runs[0].findings[0]["kind"] == "probe"
    # The same due time is never run twice, by this tick or a later one.
    assert scheduler.tick(MONDAY + timedelta(hours=1, minutes=2)) == []
    assert probe.observed == 1


def test_a_second_scheduler_on_the_same_state_never_doubles_a_run(
        world: Callable[..., Scheduler]) -> None:
    probe = Probe("probe-b")
    first = world(probe)
    first.tick(MONDAY)
    second = world()
    ran = [*first.tick(MONDAY + timedelta(hours=2)), *second.tick(MONDAY + timedelta(hours=2))]
    assert len(ran) == 1 and probe.observed == 1


def test_runs_missed_while_down_run_once_on_start(world: Callable[..., Scheduler]) -> None:
    probe = Probe("probe-c")
    scheduler = world(probe)
    scheduler.tick(MONDAY)
    # Down from Monday 07:00 to Thursday 09:00: four 08:00s passed; the last one runs, once.
    runs = scheduler.tick(MONDAY + timedelta(days=3, hours=2))
    assert [(r.trigger, r.missed) for r in runs] == [("catch_up", 3)]
    assert runs[0].due_at == MONDAY + timedelta(days=3, hours=1)
    assert probe.observed == 1


def test_a_run_older_than_catch_up_within_is_not_run(world: Callable[..., Scheduler]) -> None:
    probe = Probe("probe-d")
    policy = schedule_of(**{"probe-d": AgentSchedule(cron="0 8 1 * *")}).model_copy(
        update={"catch_up_within": 60})
    scheduler = world(probe, schedule=policy)
    scheduler.tick(datetime(2026, 10, 15, tzinfo=UTC))
    assert scheduler.tick(datetime(2026, 11, 1, 10, 0, tzinfo=UTC)) == []  # 2 h late > 1 h
    assert probe.observed == 0


def test_a_failing_agent_is_recorded_and_the_others_still_run(
        world: Callable[..., Scheduler]) -> None:
    broken, fine = Probe("probe-e1", fail=True), Probe("probe-e2")
    scheduler = world(broken, fine)
    scheduler.tick(MONDAY)
    runs = {r.agent: r for r in scheduler.tick(MONDAY + timedelta(hours=2))}
    assert runs["probe-e1"].status == "failed"
    assert "probe broke" in runs["probe-e1"].error
    assert runs["probe-e2"].status == "succeeded"
    # The failure is news for the agent's owners, once per run (not only in the ledger).
    outbox = scheduler.loop.settings.work_dir / "notifications.jsonl"
    sent = [json.loads(line) for line in outbox.read_text().splitlines()]
    told = [n for n in sent if n["channel"] == "agents" and "probe-e1 failed" in n["message"]]
    assert len(told) == 1 and "probe broke" in told[0]["message"]
    assert not any("probe-e2" in n["message"] for n in sent)


def test_an_agent_never_overlaps_itself(world: Callable[..., Scheduler]) -> None:
    probe = Probe("probe-f")
    scheduler = world(probe)
    scheduler.tick(MONDAY)
    with scheduler.loop.store.leases.hold("agent:probe-f", "a long run elsewhere"):
        assert scheduler.tick(MONDAY + timedelta(hours=2)) == []
    assert probe.observed == 0
    assert len(scheduler.tick(MONDAY + timedelta(hours=2))) == 1  # next tick, once free


def test_proposals_go_through_the_incidents_guardrails_and_approval(
        world: Callable[..., Scheduler]) -> None:
    action = RemediationAction(id="a1", type="scale_out", service="search",
                               params={"replicas": 7})
    probe = Probe("probe-g", propose=action)
    # Decided as a SEV1 would be: policy asks a human for every action at SEV1.
    scheduler = world(probe, schedule=schedule_of(**{"probe-g": AgentSchedule(
        cron="0 8 * * *", severity="SEV1")}))
    scheduler.tick(MONDAY)
    (run,) = scheduler.tick(MONDAY + timedelta(hours=2))
    assert run.status == "awaiting_approval"
    record = scheduler.loop.store.get_incident(run.record_id or "")
    assert record.severity_rule == "schedule.yaml:agents.probe-g.severity"
    (case,) = record.actions
    assert case.decision is not None
    assert case.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
    assert case.decision.rule.startswith("remediation.yaml")
    (request,) = scheduler.loop.pending()
    assert request.incident_id == run.run_id
    done = scheduler.loop.decide(request.id, Verdict.APPROVE, "alice", "ok")
    assert done.status not in (IncidentStatus.OPEN, IncidentStatus.AWAITING_APPROVAL)
    assert done.actions[0].result is not None
    scheduler.settle()
    settled = scheduler.ledger.get(run.run_id)
    assert settled is not None and settled.status == "succeeded"
    assert settled.proposals[0]["outcome"] == done.actions[0].result.status.value


def test_an_auto_allowed_proposal_acts_and_is_verified(world: Callable[..., Scheduler]) -> None:
    action = RemediationAction(id="a1", type="scale_out", service="search",
                               params={"replicas": 7})
    probe = Probe("probe-h", propose=action)
    scheduler = world(probe)  # SEV4: policy lets a small scale-out run automatically
    scheduler.tick(MONDAY)
    (run,) = scheduler.tick(MONDAY + timedelta(hours=2))
    record = scheduler.loop.store.get_incident(run.record_id or "")
    (case,) = record.actions
    assert case.decision is not None and case.decision.outcome is DecisionOutcome.AUTO
    assert case.result is not None and case.result.status.value == "succeeded"
    assert record.verification is not None


def test_a_run_whose_process_died_continues_from_its_checkpoint(
        world: Callable[..., Scheduler], settings: Settings) -> None:
    probe = Probe("probe-i")
    scheduler = world(probe)
    due = MONDAY + timedelta(hours=1)
    run_id = run_id_for("probe-i", due)
    # What a killed process leaves: the claim, and a checkpoint after `observe`.
    assert scheduler.ledger.claim(run_id, "probe-i", due, "schedule", due)
    env = open_environment(scheduler.environment, settings)
    info = RunInfo(run_id=run_id, agent="probe-i", due_at=due,
                   environment=scheduler.environment)
    scheduler.loop.agent_graph.invoke(
        {"run": info}, {"configurable": {"thread_id": run_id}},
        context=scheduler.loop.context(env), interrupt_after=["observe"], durability="sync")
    env.close()
    assert (probe.observed, probe.analysed) == (1, 0)
    assert scheduler.recover() == [(run_id, "succeeded")]
    assert (probe.observed, probe.analysed) == (1, 1)  # observed once, analysed once
    assert scheduler.tick(due + timedelta(minutes=30)) == []  # and never run again


def test_unknown_agents_in_schedule_yaml_are_named(world: Callable[..., Scheduler]) -> None:
    scheduler = world(schedule=schedule_of(nosuch=AgentSchedule(cron="0 8 * * *")))
    (problem,) = scheduler.unknown_agents()
    assert "agents.nosuch" in problem and "alert-quality" in problem


def test_an_agent_runs_once_after_each_incident_of_its_severities(
        world: Callable[..., Scheduler]) -> None:
    from opsloop.models import Incident, Severity

    probe = Probe("probe-j")
    scheduler = world(probe, schedule=schedule_of(**{"probe-j": AgentSchedule(
        cron="0 8 1 * *", after_incidents=[Severity.SEV1, Severity.SEV2])}))
    scheduler.tick(MONDAY)
    store = scheduler.loop.store

    def incident(n: int, severity: Severity, status: IncidentStatus) -> None:
        store.save_incident(Incident(
            id=f"INC-{n:04d}", title="t", environment=scheduler.environment,
            group_key=f"g{n}", opened_at=MONDAY + timedelta(minutes=n), severity=severity,
            status=status))

    incident(1, Severity.SEV1, IncidentStatus.MITIGATED)
    incident(2, Severity.SEV3, IncidentStatus.MITIGATED)  # not a listed severity
    incident(3, Severity.SEV2, IncidentStatus.AWAITING_APPROVAL)  # not ended yet
    runs = scheduler.tick(MONDAY + timedelta(hours=1))
    assert [(r.trigger, r.due_at) for r in runs] == [
        ("after_incident", MONDAY + timedelta(minutes=1))]
    assert scheduler.tick(MONDAY + timedelta(hours=2)) == []  # once per incident
    incident(3, Severity.SEV2, IncidentStatus.ESCALATED)
    runs = scheduler.tick(MONDAY + timedelta(hours=3))
    assert [r.due_at for r in runs] == [MONDAY + timedelta(minutes=3)]
    # The cron schedule is untouched by these runs: its next due time is still owed.
    assert scheduler.ledger.last_scheduled("probe-j") is None
