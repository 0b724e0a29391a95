"""The resilience agent proposes the most overdue GameDay; the change path decides it
(resilience.yaml, then a person), the act step runs it with Chaos Toolkit against the
simulator served on loopback, and the record says what happened."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from opsloop.environments import new_simulation, open_environment
from opsloop.graph.runner import OperateLoop
from opsloop.models import ActionStatus, DecisionOutcome, Incident, Severity, Verdict
from opsloop.policy import Policies
from opsloop.scheduled import registry
from opsloop.scheduled.agents.resilience import Resilience
from opsloop.scheduled.base import AgentContext, Analysis
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState
from opsloop.simulator.server import SimServer
from opsloop.store import IncidentStore

MONDAY_NINE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def quiet() -> SimState:
    return SimServer(SimEnvironment.create("bad_deploy", seed=7), hold_scenario=True).env.state


def analysed(settings: Settings, policies: Policies, now: datetime) -> Analysis:
    store = IncidentStore(settings.state_dir / "agent.db")
    try:
        ctx = AgentContext(run_id="run-1", agent="resilience", due_at=now, now=now,
                           settings=settings, policies=policies,
                           telemetry=SimEnvironment.create("bad_deploy"), store=store)
        agent = Resilience()
        return agent.analyse(ctx, json.loads(json.dumps(agent.observe(ctx))))
    finally:
        store.close()


def kept_report(settings: Settings, experiment: str, started: datetime) -> None:
    reports = settings.work_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"gameday-{experiment}.json").write_text(json.dumps({
        "run_id": experiment, "experiment": experiment, "title": "t", "hypothesis": "h",
        "target": "x", "started_at": started.isoformat(), "outcome": "held",
        "engine_status": "completed", "probes": []}))


def test_the_agent_is_registered_and_scheduled(shipped_policies: Policies) -> None:
    assert registry.agent("resilience").name == "resilience"
    assert shipped_policies.schedule.agents["resilience"].severity is Severity.SEV4


def test_the_most_overdue_experiment_is_proposed_and_a_recent_one_is_not(
        settings: Settings, shipped_policies: Policies) -> None:
    first = analysed(settings, shipped_policies, MONDAY_NINE)
    (proposal,) = first.proposals
    assert proposal.action.describe() == (
        "run_chaos_experiment(checkout, experiment=checkout-failing-replica)")
    kept_report(settings, "checkout-failing-replica", MONDAY_NINE - timedelta(hours=2))
    (proposal,) = analysed(settings, shipped_policies, MONDAY_NINE).proposals
    assert proposal.action.params["experiment"] == "search-replica-loss"
    kept_report(settings, "search-replica-loss", MONDAY_NINE - timedelta(hours=1))
    assert analysed(settings, shipped_policies, MONDAY_NINE).proposals == []
    # A day later the older of the two is due again.
    (proposal,) = analysed(settings, shipped_policies, MONDAY_NINE + timedelta(days=1)
                           ).proposals
    assert proposal.action.params["experiment"] == "checkout-failing-replica"


@pytest.fixture
def scheduled(quiet: SimState, settings: Settings, shipped_policies: Policies,
              make_loop: Callable[[Settings], OperateLoop]
              ) -> Iterator[tuple[OperateLoop, Scheduler, str]]:
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.state = copy.deepcopy(quiet)
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    env.close()
    loop = OperateLoop(settings, shipped_policies, make_loop(settings).runbooks)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        yield loop, Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings)), ref
    finally:
        loop.close()
        ledger.close()


def test_an_approved_gameday_runs_in_the_act_step_and_is_rolled_back(
        scheduled: tuple[OperateLoop, Scheduler, str], settings: Settings) -> None:
    loop, scheduler, ref = scheduled
    run = scheduler.run_now("resilience", MONDAY_NINE + timedelta(seconds=1))
    assert run.status == "awaiting_approval", run.error
    (case,) = loop.store.get_incident(run.record_id or "").actions
    assert case.decision is not None and case.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
    assert case.decision.rule == "remediation.yaml:actions.run_chaos_experiment.outcome.SEV4"
    (request,) = [r for r in loop.pending() if r.incident_id == run.record_id]
    record = loop.decide(request.id, Verdict.APPROVE, "alice", "GameDay on")
    (case,) = record.actions
    assert case.result is not None and case.result.status is ActionStatus.SUCCEEDED, case.result
    assert "GameDay checkout-failing-replica: aborted" in case.result.detail
    assert record.status.value == "mitigated"
    assert record.verification is not None and record.verification.passed
    (page,) = (settings.work_dir / "reports").glob("gameday-*.md")
    assert "Outcome: **aborted**" in page.read_text()
    report = json.loads(page.with_suffix(".json").read_text())
    # opsloop's own alerting, replayed minute by minute over the run, saw it first.
    assert {(d["name"], d["service"]) for d in report["opsloop_detections"]} >= {
        ("HighErrorRate", "checkout")}
    assert report["opsloop_time_to_detect_minutes"] <= report["time_to_detect_minutes"] == 5
    # The fault and its rollback happened in this production, and it was saved.
    env = open_environment(ref, settings)
    try:
        checkout = env.state.services["checkout"]  # type: ignore[attr-defined]
        assert checkout.bad_instance == "checkout-3" and checkout.bad_instance_error == 0.0
        assert env.now() > MONDAY_NINE
    finally:
        env.close()


def test_an_open_sev2_is_a_deny_naming_resilience_yaml(
        scheduled: tuple[OperateLoop, Scheduler, str]) -> None:
    loop, scheduler, _ = scheduled
    loop.store.save_incident(Incident(id="inc-1", title="payments down", environment="prod",
                                      group_key="k", opened_at=MONDAY_NINE,
                                      severity=Severity.SEV2, services=["payments"]))
    run = scheduler.run_now("resilience", MONDAY_NINE + timedelta(seconds=1))
    (case,) = loop.store.get_incident(run.record_id or "").actions
    assert case.decision is not None and case.decision.outcome is DecisionOutcome.DENY
    assert case.decision.rule == "resilience.yaml:refuse_during_incidents_at"
    assert case.result is None and loop.pending() == []
