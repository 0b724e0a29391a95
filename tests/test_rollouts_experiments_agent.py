"""The rollouts agent's experiments against simulated production: a clear result is a finding,
a report and a signal; an ambiguous one asks the owner through the change path, with the
test's numbers, and is not asked twice; too few requests or no counts conclude nothing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_rollouts_agent import FLAG, SERVICE, flag_now, flag_time, run_scheduled

from opsloop.graph.runner import OperateLoop
from opsloop.models import DecisionOutcome
from opsloop.policy import Policies
from opsloop.policy.schema import AgentSchedule, SchedulePolicy
from opsloop.policy.schema.rollouts import RolloutsPolicy
from opsloop.scheduled.agents.rollouts import Rollouts
from opsloop.scheduled.base import AgentContext, Analysis
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState, physics
from opsloop.simulator.events import set_flag
from opsloop.simulator.fleet import new_state
from opsloop.store import IncidentStore


def split(conversion: dict[str, float], error_ratio: float = 0.0, minutes: int = 30
          ) -> SimState:
    """A healthy fleet whose FLAG has served `on` to half of checkout for `minutes`."""
    state = new_state(5, "rollouts-test", 120)
    flag = state.flag(SERVICE, FLAG)
    assert flag is not None
    flag.variant_conversion = conversion
    flag.variant_error_ratio = error_ratio
    while state.tick < -minutes:
        physics.step(state)
    set_flag(state, SERVICE, FLAG, True, 50, "experiment-ci")
    while state.tick < 0:
        physics.step(state)
    return state


@pytest.fixture(scope="module")
def worlds() -> dict[str, SimState]:
    return {"converts": split({"on": 0.12, "off": 0.10}),
            "fails": split({}, error_ratio=0.05),
            # 0.05 points apart on ~127k requests each: not significant, and the 95% interval
            # (about ±0.23 points) still reaches the 0.1-point effect that matters.
            "close": split({"on": 0.1005, "off": 0.10})}


def experimenting(policies: Policies, metric: str, min_effect: float = 0.01,
                  min_sample: int = 1000) -> Policies:
    rollouts = RolloutsPolicy.model_validate({
        **policies.rollouts.model_dump(), "flags": {},
        "experiments": {FLAG: {"service": SERVICE, "owner": "growth", "metric": metric,
                               "control": "off", "treatment": "on",
                               "min_effect": min_effect, "min_sample": min_sample}}})
    schedule = SchedulePolicy(version=1, agents={"rollouts": AgentSchedule(
        cron="*/15 * * * *", severity=policies.schedule.agents["rollouts"].severity)})
    return policies.model_copy(update={"rollouts": rollouts, "schedule": schedule})


def analyse(env: SimEnvironment, settings: Settings, policies: Policies) -> Analysis:
    store = IncidentStore(settings.state_dir / "agent.db")
    try:
        ctx = AgentContext(run_id="run-1", agent="rollouts", due_at=env.now(), now=env.now(),
                           settings=settings, policies=policies, telemetry=env, store=store)
        agent = Rollouts()
        observed = json.loads(json.dumps(agent.observe(ctx), allow_nan=False))
        return agent.analyse(ctx, observed)
    finally:
        store.close()


def only(analysis: Analysis, kind_prefix: str = "rollout_experiment") -> Any:
    (finding,) = [f for f in analysis.findings if f.kind.startswith(kind_prefix)]
    return finding


def test_a_clear_conversion_win_is_a_finding_a_report_and_a_signal(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies) -> None:
    analysis = analyse(SimEnvironment(copy.deepcopy(worlds["converts"])), settings,
                       experimenting(shipped_policies, "conversion"))
    finding = only(analysis)
    assert finding.kind == "rollout_experiment_clear" and finding.data["winner"] == "on"
    assert analysis.proposals == []
    on, off = (next(a for a in finding.data["arms"] if a["variant"] == v) for v in ("on", "off"))
    assert on["rate"] == pytest.approx(0.12, abs=0.005)
    assert off["rate"] == pytest.approx(0.10, abs=0.005)
    assert finding.data["p_value"] < 0.05 and finding.data["ci_low"] > 0
    report = next(Path(p) for p in analysis.reports if p.endswith(".json"))
    saved = json.loads(report.read_text())["experiments"][0]
    assert (saved["key"], saved["status"], saved["winner"]) == (FLAG, "clear", "on")
    markdown = next(Path(p) for p in analysis.reports if p.endswith(".md")).read_text()
    assert FLAG in markdown and "two-proportion z-test" in markdown
    (signal,) = [Path(p) for p in analysis.signals if "experiment_clear" in Path(p).name]
    assert f"opsloop rollouts advance {FLAG}" in signal.read_text()


def test_for_errors_the_variant_with_fewer_errors_wins(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies) -> None:
    analysis = analyse(SimEnvironment(copy.deepcopy(worlds["fails"])), settings,
                       experimenting(shipped_policies, "error_ratio"))
    finding = only(analysis)
    assert (finding.kind, finding.data["winner"]) == ("rollout_experiment_clear", "off")
    assert finding.data["better"] == "lower"
    # The same world judged on conversion (equal rates) is no win for either variant.
    same = only(analyse(SimEnvironment(copy.deepcopy(worlds["fails"])), settings,
                        experimenting(shipped_policies, "conversion", min_effect=0.02)))
    assert same.data["winner"] is None


class Counted(SimEnvironment):
    """Production whose per-variant counts are given (None: it has none for the flag)."""

    def __init__(self, state: SimState, counts: dict[str, dict[str, int]] | None) -> None:
        super().__init__(state)
        self.counts = counts

    def variant_counts(self, service: str, flag: str, minutes: int
                       ) -> dict[str, dict[str, int]]:
        if self.counts is None:
            raise KeyError(f"no per-variant traffic for {flag}")
        return self.counts


@pytest.mark.parametrize(("counts", "status"), [
    ({"off": {"requests": 400, "errors": 4, "conversions": 40},
      "on": {"requests": 380, "errors": 3, "conversions": 80}}, "collecting"),
    (None, "unmeasured"),
    ({"off": {"requests": 4000, "errors": 4, "conversions": 400}}, "unmeasured"),
])
def test_too_few_requests_or_no_counts_conclude_nothing(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies,
        counts: dict[str, dict[str, int]] | None, status: str) -> None:
    env = Counted(copy.deepcopy(worlds["close"]), counts)
    analysis = analyse(env, settings, experimenting(shipped_policies, "conversion"))
    assert only(analysis).kind == f"rollout_experiment_{status}"
    assert analysis.proposals == []


def test_an_ambiguous_result_asks_the_owner_with_the_numbers(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies) -> None:
    policies = experimenting(shipped_policies, "conversion", min_effect=0.001)
    analysis = analyse(SimEnvironment(copy.deepcopy(worlds["close"])), settings, policies)
    finding = only(analysis)
    assert finding.kind == "rollout_experiment_ambiguous"
    assert finding.data["ci_low"] < 0 < finding.data["ci_high"]
    (proposal,) = analysis.proposals
    assert proposal.action.params == {"flag": FLAG, "percent": 0}
    for arm in finding.data["arms"]:
        assert f"{arm['requests']} requests" in proposal.rationale
    assert "two-proportion z-test" in proposal.rationale and ", p 0." in proposal.rationale
    assert "95% CI" in proposal.rationale
    # The same counts with a coarser effect that matters: clear (no difference), no request.
    coarse = analyse(SimEnvironment(copy.deepcopy(worlds["close"])), settings,
                     experimenting(shipped_policies, "conversion", min_effect=0.01))
    assert only(coarse).kind == "rollout_experiment_clear" and coarse.proposals == []


def test_the_owner_decides_an_ambiguous_experiment_and_is_asked_once(
        worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    policies = experimenting(shipped_policies, "conversion", min_effect=0.001)
    run, loop, ledger, ref = run_scheduled(worlds["close"], settings, policies, make_loop)
    try:
        assert run.status == "awaiting_approval", run.error
        (case,) = loop.store.get_incident(run.record_id or "").actions
        assert case.decision is not None
        assert case.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
        assert case.decision.rule == f"rollouts.yaml:experiments.{FLAG}"
        assert flag_now(settings, ref) == (True, 50)
    finally:
        loop.close()
        ledger.close()
    loop = OperateLoop(settings, policies, make_loop(settings).runbooks)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        from opsloop.environments import open_environment

        scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
        again = scheduler.run_now("rollouts", flag_time(settings, ref) + timedelta(minutes=15))
        assert again.status == "succeeded" and again.proposals == [], again.error
        assert len(loop.pending()) == 1
    finally:
        loop.close()
        ledger.close()


def test_show_gives_the_experiments_result(worlds: dict[str, SimState], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import shutil

    from opsloop.cli import rollouts as cli
    from opsloop.cli.render import Ui
    from opsloop.environments import new_simulation

    policies = tmp_path / "policies"
    shutil.copytree(Settings().policies_dir, policies)
    text = (policies / "rollouts.yaml").read_text()
    (policies / "rollouts.yaml").write_text(text.replace("experiments: {}", (
        f"experiments:\n  {FLAG}: {{service: {SERVICE}, owner: growth, metric: conversion, "
        'control: "off", treatment: "on"}')))
    settings = Settings(work_dir=tmp_path / "work", policies_dir=policies)
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.state = copy.deepcopy(worlds["converts"])
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    env.close()

    def show(*extra: str) -> str:
        parser = argparse.ArgumentParser()
        cli.register(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
        args = parser.parse_args(["rollouts", "show", FLAG, "--environment", ref, *extra])
        assert args.handler(args, settings, Ui()) == 0
        return capsys.readouterr().out

    row = json.loads(show("--json"))
    assert row["managed"] is False
    assert (row["experiment"]["status"], row["experiment"]["winner"]) == ("clear", "on")
    assert "experiment (conversion, higher is better, off vs on, owner growth): clear, on " \
           "is better" in show()
