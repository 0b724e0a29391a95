"""The performance agent against simulated production: a day of history, then a deploy."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsloop.environments import new_simulation, open_environment
from opsloop.graph.runner import OperateLoop
from opsloop.models import (
    ActionCase,
    ActionStatus,
    DecisionOutcome,
    Incident,
    RemediationAction,
    RemediationProposal,
)
from opsloop.policy import Policies
from opsloop.scheduled import registry
from opsloop.scheduled.agents.performance import POLICY, Performance
from opsloop.scheduled.base import AgentContext, Analysis, ScheduledAgent
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState, physics
from opsloop.simulator.events import schedule
from opsloop.simulator.fleet import new_state
from opsloop.store import IncidentStore

DAY = 24 * 60


def simulated(seed: int, *events: tuple[int, str, dict[str, Any]],
              until: int = 0) -> SimState:
    """A healthy fleet with a day of history up to 09:00 (+ `until` minutes); `events` are
    (minute, service, deploy params), minutes from 09:00."""
    state = new_state(seed, "performance-test", DAY)
    for at, service, params in events:
        schedule(state, at, "deploy", service, **params)
    while state.tick < until:
        physics.step(state)
    return state


SEVEN_PERCENT = (-120, "search", {"version": "4.8.0", "author": "discovery-ci",
                                  "behaviour": {"latency_multiplier": 1.07}})
RED_HERRING = (-100, "checkout", {"version": "2.13.2-cfg1", "kind": "config",
                                  "author": "checkout"})


@pytest.fixture(scope="module")
def states() -> dict[str, SimState]:
    """Each world simulated once per module; tests copy them."""
    return {
        "stable": simulated(21),
        # 20:00: traffic has been falling with the day for hours (a few %, not a regression).
        "evening": simulated(22, until=11 * 60),
        "regressed": simulated(21, SEVEN_PERCENT, RED_HERRING),
        # redis (which search calls) changed ten minutes after search did: a rival suspect.
        "rival": simulated(21, SEVEN_PERCENT, (-110, "redis", {"version": "7.2.5-cfg",
                                                               "kind": "config"})),
        "fresh": simulated(21, (-40, *SEVEN_PERCENT[1:])),  # 40 minutes old: not yet 60
    }


@dataclass(frozen=True)
class Ran:
    env: SimEnvironment
    analysis: Analysis
    report: dict[str, Any]
    settings: Settings


@pytest.fixture
def run(states: dict[str, SimState], tmp_path: Path,
        shipped_policies: Policies) -> Iterator[Callable[[str], Ran]]:
    stores: list[IncidentStore] = []

    def go(world: str) -> Ran:
        env = SimEnvironment(copy.deepcopy(states[world]))
        settings = Settings(work_dir=tmp_path / world)
        store = IncidentStore(tmp_path / f"{world}.db")
        stores.append(store)
        ctx = AgentContext(run_id="run-1", agent="performance", due_at=env.now(),
                           now=env.now(), settings=settings, policies=shipped_policies,
                           telemetry=env, store=store)
        agent = Performance()
        # What observe returns is checkpointed: plain JSON, no NaN.
        observed = json.loads(json.dumps(agent.observe(ctx), allow_nan=False))
        analysis = agent.analyse(ctx, observed)
        report = json.loads(Path(next(p for p in analysis.reports
                                      if p.endswith(".json"))).read_text())
        return Ran(env, analysis, report, settings)

    yield go
    for store in stores:
        store.close()


def test_the_agent_is_registered_scheduled_and_built_without_arguments(
        shipped_policies: Policies) -> None:
    agent: ScheduledAgent = registry.agent("performance")
    assert isinstance(agent, Performance) and agent.name == "performance"
    assert agent.purpose and agent.tools
    assert shipped_policies.schedule.agents["performance"].cron == "20 * * * *"


def test_a_seven_percent_latency_regression_is_found_and_attributed_to_its_deploy(
        run: Callable[[str], Ran]) -> None:
    ran = run("regressed")
    rows = ran.report["regressions"]
    # p99 x1.07 (and p50 about x1.03 with it, which may just pass its 3% rule): search only.
    assert {(r["service"], r["attributed_to"]["version"]) for r in rows} == {("search", "4.8.0")}
    row = next(r for r in rows if r["metric"] == "latency_p99_ms")
    assert 0.04 <= row["change"] <= 0.10
    assert row["mean_after"] > row["mean_before"] and row["p_value"] < 1e-6
    assert row["persistent"]
    cause = row["attributed_to"]
    # The deploy, not the checkout config change twenty minutes later.
    assert (cause["service"], cause["version"], cause["kind"]) == ("search", "4.8.0", "deploy")
    assert cause["own"] and cause["rivals"] == []
    deployed = next(d for d in ran.env.deploys("search", DAY) if d.version == "4.8.0")
    assert abs((ran.env.now() - deployed.at).total_seconds() / 60 - 120) < 1
    # The row the report promises: time, change, means before and after, % change, p-value.
    for key in ("at", "mean_before", "mean_after", "change", "p_value"):
        assert row[key] is not None


def test_the_regression_becomes_a_rollback_to_the_previous_version(
        run: Callable[[str], Ran]) -> None:
    analysis = run("regressed").analysis
    (proposal,) = analysis.proposals
    action = proposal.action
    assert (action.type, action.service, action.params) == (
        "rollback_deploy", "search", {"to_version": "4.7.3"})
    assert proposal.confidence == POLICY.sole_suspect_confidence
    assert proposal.specialist == "performance"
    finding = next(f for f in analysis.findings if f.subject == "search latency_p99_ms")
    assert finding.kind == "performance_regression" and finding.level == "critical"
    assert "4.8.0" in finding.summary
    assert {f.subject.split()[0] for f in analysis.findings} == {"search"}
    assert analysis.signals
    assert all("performance_regression" in Path(s).name for s in analysis.signals)
    assert "search" in analysis.summary and "rollback" in analysis.summary


def test_the_report_is_written_as_markdown_json_and_a_chart(run: Callable[[str], Ran]) -> None:
    ran = run("regressed")
    names = sorted(Path(p).name for p in ran.analysis.reports)
    stamp = f"{ran.env.now():%Y-%m-%dT%H}"
    assert names == [f"performance-{stamp}.{ext}" for ext in ("json", "md", "png")]
    md = Path(next(p for p in ran.analysis.reports if p.endswith(".md"))).read_text()
    assert "| time | service | metric | change | mean before | mean after | % change " \
           "| p-value |" in md
    assert "deploy search 4.7.3 → 4.8.0" in md
    png = Path(next(p for p in ran.analysis.reports if p.endswith(".png")))
    assert png.read_bytes()[:4] == b"\x89PNG"
    baselines = ran.report["baselines"]["search"]
    assert set(baselines) == {"latency_p50_ms", "latency_p99_ms", "error_ratio",
                              "requests_per_second"}
    assert baselines["latency_p99_ms"]["median"] == pytest.approx(123, rel=0.05)


@pytest.mark.parametrize("world", ["stable", "evening"])
def test_a_stable_fleet_raises_nothing(run: Callable[[str], Ran], world: str) -> None:
    ran = run(world)
    analysis = ran.analysis
    assert analysis.findings == [] and analysis.proposals == [] and analysis.signals == []
    assert analysis.summary.startswith("no performance regression")
    if world == "evening":  # the detector did see traffic move; the rule judged it normal
        assert any(c["metric"] == "requests_per_second" and c["change"] < 0
                   for c in ran.report["changes"])


def test_a_rival_change_leaves_the_rollback_to_a_human(run: Callable[[str], Ran],
                                                      shipped_policies: Policies) -> None:
    analysis = run("rival").analysis
    (proposal,) = analysis.proposals
    assert proposal.action.params == {"to_version": "4.7.3"}
    assert proposal.confidence == POLICY.with_rivals_confidence
    assert proposal.confidence < shipped_policies.remediation.diagnosis.min_confidence
    assert "redis" in proposal.rationale


def test_a_regression_too_young_to_be_persistent_is_a_finding_only(
        run: Callable[[str], Ran]) -> None:
    analysis = run("fresh").analysis
    assert "search latency_p99_ms" in [f.subject for f in analysis.findings]
    assert {f.level for f in analysis.findings} == {"info"}
    assert analysis.proposals == [] and analysis.signals == []


def test_a_deploy_already_rolled_back_is_not_proposed_again(
        states: dict[str, SimState], tmp_path: Path, shipped_policies: Policies) -> None:
    env = SimEnvironment(copy.deepcopy(states["regressed"]))
    store = IncidentStore(tmp_path / "db")
    ctx = AgentContext(run_id="r", agent="performance", due_at=env.now(), now=env.now(),
                       settings=Settings(work_dir=tmp_path / "w"), policies=shipped_policies,
                       telemetry=env, store=store)
    observed = Performance().observe(ctx)
    observed["services"]["search"]["version"] = "4.7.3"  # someone rolled it back meanwhile
    assert Performance().analyse(ctx, observed).proposals == []
    store.close()


def test_an_open_incident_already_rolling_the_deploy_back_is_left_to_it(
        states: dict[str, SimState], tmp_path: Path, shipped_policies: Policies) -> None:
    env = SimEnvironment(copy.deepcopy(states["regressed"]))
    store = IncidentStore(tmp_path / "db")
    ctx = AgentContext(run_id="r", agent="performance", due_at=env.now(), now=env.now(),
                       settings=Settings(work_dir=tmp_path / "w"), policies=shipped_policies,
                       telemetry=env, store=store)
    observed = Performance().observe(ctx)
    assert Performance().analyse(ctx, observed).proposals  # nothing open yet: proposed
    rollback = RemediationAction(id="a1", type="rollback_deploy", service="search")
    store.save_incident(Incident(
        id="INC-1", title="HighLatencyP99 search", environment="sim:x", group_key="g",
        services=["search"], opened_at=env.now(), actions=[ActionCase(proposal=(
            RemediationProposal(action=rollback, specialist="performance",
                                hypothesis_id="h", confidence=0.9)))]))
    analysis = Performance().analyse(ctx, observed)
    assert analysis.proposals == [] and analysis.findings  # found, not proposed twice
    store.close()


def test_the_rollback_goes_through_the_guardrails_acts_and_is_verified(
        states: dict[str, SimState], settings: Settings,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    ref, env = new_simulation("latency_regression", 7, settings)
    env.state = copy.deepcopy(states["regressed"])
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    now = env.now()
    env.close()
    loop = make_loop(settings)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
        done = scheduler.run_now("performance", now)
        assert done.status == "succeeded", done.error
        record = loop.store.get_incident(done.record_id or "")
        assert record.severity_rule == "schedule.yaml:agents.performance.severity"
        (case,) = record.actions
        assert case.decision is not None and case.decision.outcome is DecisionOutcome.AUTO
        assert case.result is not None and case.result.status is ActionStatus.SUCCEEDED
        assert record.verification is not None
        after = open_environment(ref, settings)
        try:
            assert next(s for s in after.services() if s.name == "search").version == "4.7.3"
        finally:
            after.close()
    finally:
        loop.close()
        ledger.close()


def test_a_rollback_waiting_for_a_human_is_not_proposed_twice(
        states: dict[str, SimState], settings: Settings,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    ref, env = new_simulation("latency_regression", 7, settings)
    env.state = copy.deepcopy(states["rival"])
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    now = env.now()
    env.close()
    loop = make_loop(settings)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
        first = scheduler.run_now("performance", now)
        # A rival suspect: the proposal is under remediation.yaml's min_confidence.
        assert first.status == "awaiting_approval", first.error
        (case,) = loop.store.get_incident(first.record_id or "").actions
        assert case.decision is not None
        assert case.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
        again = scheduler.run_now("performance", now)
        assert again.status == "succeeded" and again.proposals == []
        assert again.findings  # still reported, only not proposed again
    finally:
        loop.close()
        ledger.close()
