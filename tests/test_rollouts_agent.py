"""The rollouts agent against simulated production: a healthy step advances (with the
owner's approval when the plan asks), a failing one is killed within one interval without a
human, unclear signals and an error-budget hold stop the advance."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop.environments import new_simulation, open_environment
from opsloop.graph.runner import OperateLoop
from opsloop.models import ActionStatus, DecisionOutcome
from opsloop.policy import Policies
from opsloop.policy.schema import AgentSchedule, SchedulePolicy
from opsloop.policy.schema.rollouts import RolloutPlan, RolloutsPolicy
from opsloop.rollouts.analysis import AnalysisResult, Phase
from opsloop.scheduled import registry
from opsloop.scheduled.agents.rollouts import SURE, Rollouts, decide
from opsloop.scheduled.base import AgentContext, Analysis
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState, physics
from opsloop.simulator.events import set_flag
from opsloop.simulator.fleet import new_state
from opsloop.store import IncidentStore

FLAG, SERVICE = "new-checkout-flow", "checkout"


def simulated(percent: int, on_step_minutes: int, variant_error_ratio: float = 0.0) -> SimState:
    """A healthy fleet whose FLAG went to `percent` `on_step_minutes` ago; the cohort served
    `on` fails `variant_error_ratio` of its requests."""
    state = new_state(5, "rollouts-test", 120)
    flag = state.flag(SERVICE, FLAG)
    assert flag is not None
    flag.variant_error_ratio = variant_error_ratio
    while state.tick < -on_step_minutes:
        physics.step(state)
    set_flag(state, SERVICE, FLAG, True, percent, "release-ci")
    while state.tick < 0:
        physics.step(state)
    return state


def burning() -> SimState:
    """A healthy step on a checkout that spent most of its error budget before it (its
    long-run error ratio before the simulation is 0.09%, against a 99.9% SLO)."""
    state = simulated(5, 40)
    state.services[SERVICE].prior_error_ratio = 0.0009
    return state


@pytest.fixture(scope="module")
def worlds() -> dict[str, SimState]:
    """Each world simulated once per module; tests copy them."""
    return {"healthy": simulated(5, 40), "failing": simulated(25, 10, 0.6),
            "young": simulated(5, 10),
            # 25% of checkout's requests see the new path, which fails 10% of them: ~2.5%
            # errors, between the plan's success (<= 1%) and failure (> 5%) lines.
            "marginal": simulated(25, 40, 0.1),
            "burning": burning()}


def with_plan(policies: Policies, advances: str = "needs_approval") -> Policies:
    rollouts = RolloutsPolicy.model_validate({
        "version": 1,
        "defaults": {**policies.rollouts.defaults.model_dump(), "steps": [5, 25, 50, 100],
                     "interval": 30, "advances": advances},
        "flags": {FLAG: {"service": SERVICE, "owner": "payments"}}})
    schedule = SchedulePolicy(version=1, agents={"rollouts": AgentSchedule(
        cron="*/15 * * * *", severity=policies.schedule.agents["rollouts"].severity)})
    return policies.model_copy(update={"rollouts": rollouts, "schedule": schedule})


def run_agent(state: SimState, settings: Settings, policies: Policies) -> Analysis:
    env = SimEnvironment(copy.deepcopy(state))
    store = IncidentStore(settings.state_dir / "agent.db")
    try:
        ctx = AgentContext(run_id="run-1", agent="rollouts", due_at=env.now(), now=env.now(),
                           settings=settings, policies=policies, telemetry=env, store=store)
        agent = Rollouts()
        observed = json.loads(json.dumps(agent.observe(ctx), allow_nan=False))
        return agent.analyse(ctx, observed)
    finally:
        store.close()


def test_the_agent_is_registered_and_scheduled(shipped_policies: Policies) -> None:
    assert isinstance(registry.agent("rollouts"), Rollouts)
    assert shipped_policies.schedule.agents["rollouts"].cron == "*/15 * * * *"
    assert shipped_policies.rollouts.flags == {}  # ships managing nothing: teams list flags


def test_a_healthy_step_proposes_the_next_one_for_the_owner_to_approve(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(worlds["healthy"], settings, with_plan(shipped_policies))
    (proposal,) = analysis.proposals
    assert proposal.action.describe() == f"set_flag_rollout({SERVICE}, flag={FLAG}, percent=25)"
    # As sure as any advance: the plan's approval is the guardrails' rule, not a low score.
    assert proposal.confidence == SURE > shipped_policies.remediation.diagnosis.min_confidence
    assert "advances.needs_approval" in proposal.rationale
    (finding,) = [f for f in analysis.findings if f.subject == FLAG]
    assert finding.kind == "rollout_advance" and finding.data["analysis"]["phase"] == \
        "Successful"


def test_marginal_signals_hold_the_step_and_ask_the_owner(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(worlds["marginal"], settings, with_plan(shipped_policies, "auto"))
    assert analysis.proposals == []
    (finding,) = [f for f in analysis.findings if f.subject == FLAG]
    assert (finding.kind, finding.level) == ("rollout_hold", "warning")
    values = [m["value"] for m in finding.data["analysis"]["metrics"][0]["measurements"]]
    assert all(0.01 < v <= 0.05 for v in values), values
    (signal,) = [p for p in analysis.signals if "rollout_hold" in Path(p).name]
    assert "owner: payments" in Path(signal).read_text()


def test_an_error_budget_hold_stops_the_advance_of_a_healthy_step(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(worlds["burning"], settings, with_plan(shipped_policies, "auto"))
    assert analysis.proposals == []
    (finding,) = [f for f in analysis.findings if f.subject == FLAG]
    assert finding.kind == "rollout_blocked"
    assert finding.data["analysis"]["phase"] == "Successful"
    assert finding.data["budget"]["state"] == "hold"  # ~10% of the budget left
    assert finding.evidence[1] == "rule health.yaml:error_budget_policy.hold"
    # The same step on a service with its budget intact advances (the budget decided).
    assert run_agent(worlds["healthy"], settings,
                     with_plan(shipped_policies, "auto")).proposals


def test_a_step_younger_than_its_interval_waits(worlds: dict[str, SimState],
                                                settings: Settings,
                                                shipped_policies: Policies) -> None:
    analysis = run_agent(worlds["young"], settings, with_plan(shipped_policies, "auto"))
    assert analysis.proposals == []
    assert [f.kind for f in analysis.findings if f.subject == FLAG] == ["rollout_waiting"]


def run_scheduled(state: SimState, settings: Settings, policies: Policies,
                  make_loop: Callable[[Settings], OperateLoop]) -> tuple[Any, OperateLoop,
                                                                          RunLedger, Any]:
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.state = copy.deepcopy(state)
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    now = env.now()
    env.close()
    loop = OperateLoop(settings, policies, make_loop(settings).runbooks)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
    return scheduler.run_now("rollouts", now + timedelta(seconds=1)), loop, ledger, ref


def flag_now(settings: Settings, ref: Any) -> tuple[bool, float]:
    env = open_environment(ref, settings)
    try:
        flag = next(f for f in env.flags(SERVICE) if f.key == FLAG)
        return flag.enabled, flag.rollout_percent
    finally:
        env.close()


def test_a_failing_step_is_killed_within_one_interval_without_a_human(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    # The step is 10 minutes old, a third of its interval: the kill does not wait for it.
    run, loop, ledger, ref = run_scheduled(worlds["failing"], settings,
                                           with_plan(shipped_policies), make_loop)
    try:
        assert run.status == "succeeded", run.error
        record = loop.store.get_incident(run.record_id or "")
        (case,) = record.actions
        assert case.action.describe() == f"disable_flag({SERVICE}, flag={FLAG})"
        assert case.decision is not None and case.decision.outcome is DecisionOutcome.AUTO
        assert case.result is not None and case.result.status is ActionStatus.SUCCEEDED
        assert record.verification is not None
        assert flag_now(settings, ref) == (False, 0)
        assert "Failed" in case.proposal.rationale
        # The kill's signal tells the owner exactly how to answer it.
        (signal,) = [p for p in settings.signals_dir.iterdir() if "rollout_kill" in p.name]
        text = signal.read_text()
        assert f"opsloop rollouts answer {FLAG} temporary" in text
        assert f"opsloop rollouts answer {FLAG} rework" in text
    finally:
        loop.close()
        ledger.close()


def test_an_advance_waits_for_the_owner_and_is_not_asked_twice_across_a_restart(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    policies = with_plan(shipped_policies)
    run, loop, ledger, ref = run_scheduled(worlds["healthy"], settings, policies, make_loop)
    try:
        assert run.status == "awaiting_approval", run.error
        (case,) = loop.store.get_incident(run.record_id or "").actions
        assert case.decision is not None
        assert case.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
        assert case.decision.rule == "rollouts.yaml:defaults.advances"
        assert flag_now(settings, ref) == (True, 5)  # nothing moved without the owner
    finally:
        loop.close()
        ledger.close()
    # A restart: a new loop on the same state dir; the next run sees the waiting advance.
    loop = OperateLoop(settings, policies, make_loop(settings).runbooks)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
        again = scheduler.run_now("rollouts", flag_time(settings, ref) + timedelta(minutes=15))
        assert again.status == "succeeded" and again.proposals == [], again.error
        assert flag_now(settings, ref) == (True, 5)
    finally:
        loop.close()
        ledger.close()


def flag_time(settings: Settings, ref: Any) -> Any:
    env = open_environment(ref, settings)
    try:
        return env.now()
    finally:
        env.close()


def test_an_automatic_plan_advances_through_the_change_path(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    run, loop, ledger, ref = run_scheduled(worlds["healthy"], settings,
                                           with_plan(shipped_policies, "auto"), make_loop)
    try:
        assert run.status == "succeeded", run.error
        (case,) = loop.store.get_incident(run.record_id or "").actions
        assert case.decision is not None and case.decision.outcome is DecisionOutcome.AUTO
        assert flag_now(settings, ref) == (True, 25)
    finally:
        loop.close()
        ledger.close()


PLAN = RolloutPlan.model_validate({"steps": [5, 25, 100], "interval": 30, "analysis": {
    "metrics": [{"name": "e", "metric": "error_ratio", "failure": {"gt": 0.05}}]}})


def row(phase: Phase, budget: str = "normal", **extra: Any) -> dict[str, Any]:
    result = AnalysisResult(phase=phase, reason=f"e: {phase}", metrics=[])
    return {"key": FLAG, "service": SERVICE, "enabled": True, "percent": 5,
            "elapsed_minutes": 45, "analysis": result.model_dump(mode="json"),
            "budget": {"state": budget, "rule": f"health.yaml:error_budget_policy.{budget}",
                       "reason": "12% of the error budget left"}, **extra}


@pytest.mark.parametrize(("observed", "action", "rule"), [
    (row(Phase.SUCCESSFUL), "advance", f"rollouts.yaml:flags.{FLAG}.advances.needs_approval"),
    (row(Phase.FAILED), "kill", f"rollouts.yaml:flags.{FLAG}.analysis"),
    # The kill is not held back by the error budget: it is how the budget recovers.
    (row(Phase.FAILED, "freeze"), "kill", f"rollouts.yaml:flags.{FLAG}.analysis"),
    (row(Phase.INCONCLUSIVE), "hold", f"rollouts.yaml:flags.{FLAG}.analysis"),
    (row(Phase.SUCCESSFUL, "hold"), "blocked", "health.yaml:error_budget_policy.hold"),
    (row(Phase.SUCCESSFUL, "freeze"), "blocked", "health.yaml:error_budget_policy.freeze"),
    (row(Phase.SUCCESSFUL, elapsed_minutes=29), "waiting", f"rollouts.yaml:flags.{FLAG}.interval"),
    # Right after an advance there are few points: not yet a reason to hold and ask.
    (row(Phase.INCONCLUSIVE, elapsed_minutes=1), "waiting", f"rollouts.yaml:flags.{FLAG}.interval"),
    (row(Phase.FAILED, elapsed_minutes=1), "kill", f"rollouts.yaml:flags.{FLAG}.analysis"),
    (row(Phase.SUCCESSFUL, pending="run-x"), "waiting", f"rollouts.yaml:flags.{FLAG}.advances"),
    (row(Phase.SUCCESSFUL, rejected=[25]), "waiting", f"rollouts.yaml:flags.{FLAG}.advances"),
    (row(Phase.SUCCESSFUL, percent=100), "complete", f"rollouts.yaml:flags.{FLAG}.steps"),
    (row(Phase.FAILED, enabled=False, percent=0), "idle", f"rollouts.yaml:flags.{FLAG}"),
])
def test_each_decision_names_the_rule_that_made_it(observed: dict[str, Any], action: str,
                                                   rule: str) -> None:
    decision = decide(observed, PLAN)
    assert (decision.action, decision.rule) == (action, rule)
    assert decision.to_percent == (25 if action == "advance" else None)


def test_flags_past_their_kinds_lifetime_serving_one_variant_become_cleanup_signals(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies) -> None:
    env = SimEnvironment(copy.deepcopy(worlds["healthy"]))
    env_flags = {f.key: f for f in env.flags()}
    now = env.now()
    ages = {k: (now - f.updated_at).days for k, f in env_flags.items()}
    policies = with_plan(shipped_policies)
    stale_policy = policies.rollouts.stale.model_copy(update={"kinds": {
        "semantic-ranking": "kill_switch"}})
    policies = policies.model_copy(update={"rollouts": policies.rollouts.model_copy(
        update={"stale": stale_policy})})
    analysis = run_agent(worlds["healthy"], settings, policies)
    stale = {f.subject: f for f in analysis.findings if f.kind == "rollout_stale"}
    # 100% (or off) and older than a release flag's 40 days: stale. A kill switch never is;
    # a flag mid-rollout (FLAG at 5%, changed 40 minutes ago) is not.
    expected = {k for k, f in env_flags.items()
                if k != "semantic-ranking" and ages[k] > 40
                and (not f.enabled or f.rollout_percent in (0, 100))}
    assert expected and set(stale) == expected
    assert FLAG not in stale and "semantic-ranking" not in stale
    some = next(iter(stale.values()))
    assert "rule rollouts.yaml:stale.lifetimes.release" in some.evidence
    names = [Path(p).name for p in analysis.signals]
    assert sum("flag_stale" in n for n in names) == len(expected)
    # A second run files the same signals, with the same evidence, not new ones.
    again = run_agent(worlds["healthy"], settings, policies)
    assert sorted(Path(p).name for p in again.signals) == sorted(names)


def test_staleness_follows_the_kinds_lifetime_and_the_unchanged_limit() -> None:
    from datetime import UTC, datetime

    from opsloop.models import FlagState
    from opsloop.rollouts.stale import stale

    now = datetime(2026, 11, 30, tzinfo=UTC)
    day = 24 * 60

    def flag(days: int, percent: float, enabled: bool = True) -> FlagState:
        return FlagState(key="f", service="s", enabled=enabled, rollout_percent=percent,
                         updated_at=now - timedelta(days=days))

    assert stale(flag(41, 100), "release", 40 * day, 90 * day, now) is not None
    assert stale(flag(39, 100), "release", 40 * day, 90 * day, now) is None
    assert stale(flag(41, 0, enabled=False), "release", 40 * day, 90 * day, now) is not None
    assert stale(flag(41, 50), "release", 40 * day, 90 * day, now) is None  # mid-rollout
    late = stale(flag(91, 50), "release", 40 * day, 90 * day, now)
    assert late is not None and late.rule == "unchanged_for"
    assert stale(flag(8, 100), "operational", 7 * day, 90 * day, now) is not None
    assert stale(flag(400, 100), "kill_switch", None, 90 * day, now) is None


def test_the_owners_answers_drive_the_rollout_across_restarts(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    """Approved: the step moves. Rejected: held there, not asked again every run."""
    from opsloop.models import Verdict

    policies = with_plan(shipped_policies)
    first, loop, ledger, ref = run_scheduled(worlds["healthy"], settings, policies, make_loop)
    assert first.status == "awaiting_approval", first.error
    loop.close()
    ledger.close()

    def restarted() -> tuple[OperateLoop, RunLedger, Scheduler]:
        loop = OperateLoop(settings, policies, make_loop(settings).runbooks)
        ledger = RunLedger(settings.state_dir / "schedule.db")
        return loop, ledger, Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))

    loop, ledger, scheduler = restarted()
    try:
        (request,) = loop.pending()
        assert request.action.params == {"flag": FLAG, "percent": 25}
        loop.decide(request.id, Verdict.APPROVE, "payments-owner", "looks good")
        assert flag_now(settings, ref) == (True, 25)
    finally:
        loop.close()
        ledger.close()
    env = open_environment(ref, settings)
    env.wait(35)  # a whole interval at 25%
    env.close()
    loop, ledger, scheduler = restarted()
    try:
        second = scheduler.run_now("rollouts", flag_time(settings, ref))
        assert second.status == "awaiting_approval", second.error
        (request,) = loop.pending()
        assert request.action.params == {"flag": FLAG, "percent": 50}
        loop.decide(request.id, Verdict.REJECT, "payments-owner", "wait for the sale to end")
        assert flag_now(settings, ref) == (True, 25)
    finally:
        loop.close()
        ledger.close()
    loop, ledger, scheduler = restarted()
    try:
        third = scheduler.run_now("rollouts", flag_time(settings, ref) + timedelta(minutes=15))
        assert third.status == "succeeded" and third.proposals == [], third.error
        (mine,) = [f for f in third.findings if f["subject"] == FLAG]
        assert "the owner rejected the advance to 50%" in mine["evidence"][0]
        assert loop.pending() == [] and flag_now(settings, ref) == (True, 25)
    finally:
        loop.close()
        ledger.close()
