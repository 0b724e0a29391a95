"""The outcome owner's verbs: hold, resume and the answer to a kill kept durably (and read
by the agent after a restart); advance and kill through the agent's own change path."""

from __future__ import annotations

import argparse
import copy
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_rollouts_agent import (
    FLAG,
    PLAN,
    SERVICE,
    flag_now,
    row,
    run_agent,
    simulated,
    with_plan,
)

from opsloop.cli import rollouts as cli
from opsloop.cli.render import Ui, UserError
from opsloop.environments import new_simulation, open_environment
from opsloop.graph import rollout_owner as owner
from opsloop.graph.runner import OperateLoop
from opsloop.models import ActionStatus, DecisionOutcome, IncidentStatus, Verdict
from opsloop.policy import Policies
from opsloop.rollouts.analysis import Phase
from opsloop.rollouts.owner import OwnerBook, OwnerFileError
from opsloop.scheduled.agents.rollouts import decide
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings
from opsloop.simulator import SimState

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def worlds() -> dict[str, SimState]:
    return {"healthy": simulated(5, 40), "failing": simulated(25, 10, 0.6)}


@pytest.fixture
def world(worlds: dict[str, SimState], settings: Settings, shipped_policies: Policies,
          make_loop: Callable[[Settings], OperateLoop]) -> Iterator[tuple[OperateLoop, str]]:
    """The healthy world saved as a simulation, and a loop whose plan needs approval."""
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.state = copy.deepcopy(worlds["healthy"])
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    env.close()
    loop = OperateLoop(settings, with_plan(shipped_policies), make_loop(settings).runbooks)
    try:
        yield loop, ref
    finally:
        loop.close()


def test_the_owner_file_keeps_every_decision_and_derives_the_state(tmp_path: Path) -> None:
    book = OwnerBook(tmp_path)
    book.hold(FLAG, "ana", "sale week", T0)
    assert OwnerBook(tmp_path).state(FLAG).hold is not None  # a new reader sees it
    state = book.resume(FLAG, "bo", T0 + timedelta(hours=1))
    assert state.hold is None and [e.verb for e in state.history] == ["hold", "resume"]
    book.answer_kill(FLAG, "rework", "ana", "wrong model", T0 + timedelta(hours=2))
    found = OwnerBook(tmp_path).state(FLAG)
    assert found.answer is not None and found.answer.answer == "rework"
    # Without the flag's change recorded: the answer holds while the flag is off and has not
    # changed after it.
    assert found.answer_for(T0 + timedelta(hours=1), killed=True) is not None
    assert found.answer_for(T0 + timedelta(hours=3), killed=True) is None
    assert found.answer_for(T0 + timedelta(hours=1), killed=False) is None
    # With it: exactly that change, whatever the clocks say (production's may stand still).
    killed_at = T0 + timedelta(hours=2)
    book.answer_kill(FLAG, "temporary", "ana", "", killed_at, flag_changed_at=killed_at)
    recorded = OwnerBook(tmp_path).state(FLAG)
    assert recorded.answer_for(killed_at, killed=True) is not None
    assert recorded.answer_for(killed_at + timedelta(seconds=1), killed=True) is None


def test_concurrent_writers_lose_no_decision(tmp_path: Path) -> None:
    def write(who: str) -> None:
        book = OwnerBook(tmp_path)
        for n in range(20):
            book.hold(FLAG, who, f"{n}", T0 + timedelta(minutes=n))

    threads = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = OwnerBook(tmp_path).state(FLAG).history
    assert len(history) == 80 and {e.by for e in history} == {"w0", "w1", "w2", "w3"}


def _hold_many(state_dir: str, who: str) -> None:
    book = OwnerBook(Path(state_dir))
    for n in range(15):
        book.hold(FLAG, who, f"{n}", T0 + timedelta(minutes=n))


def test_writers_in_separate_processes_lose_no_decision(tmp_path: Path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_hold_many, args=(str(tmp_path), f"p{i}"))
               for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    history = OwnerBook(tmp_path).state(FLAG).history
    assert len(history) == 45
    for who in ("p0", "p1", "p2"):  # each writer's entries all there, in its own order
        assert [e.reason for e in history if e.by == who] == [str(n) for n in range(15)]


def test_a_corrupt_owner_file_is_named_with_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "rollout-owner.json").write_text('{"version": 1, "flags": {"f": [{"verb": '
                                                 '"pause", "by": "x", "at": "2026-01-01"}]}}')
    with pytest.raises(OwnerFileError, match=r"rollout-owner\.json: flags\.f\.0\.verb"):
        OwnerBook(tmp_path).state("f")
    (tmp_path / "rollout-owner.json").write_text("{not json")
    with pytest.raises(OwnerFileError, match=r"rollout-owner\.json"):
        OwnerBook(tmp_path).hold("f", "x", "y", T0)


def test_a_hold_stops_the_advance_but_never_the_kill() -> None:
    held = {"hold": {"verb": "hold", "by": "ana", "at": "2026-11-30T12:00:00Z",
                     "reason": "sale"}}
    d = decide(row(Phase.SUCCESSFUL, owner_state=held), PLAN)
    assert (d.action, d.rule) == ("held", "owner hold by ana at 2026-11-30 12:00")
    assert decide(row(Phase.FAILED, owner_state=held), PLAN).action == "kill"
    assert decide(row(Phase.SUCCESSFUL), PLAN).action == "advance"


@pytest.mark.parametrize(("answer", "action"), [("rework", "rework"), ("temporary", "idle")])
def test_a_killed_flags_answer_decides_what_the_agent_says(answer: str, action: str) -> None:
    given = {"answer": {"verb": "answer", "by": "ana", "at": "2026-11-30T12:00:00Z",
                        "answer": answer}}
    d = decide(row(Phase.FAILED, enabled=False, percent=0, owner_state=given), PLAN)
    assert (d.action, d.rule) == (action, f"owner answer {answer} by ana at 2026-11-30 12:00")


def test_an_owner_advance_takes_the_change_path_and_is_the_plans_approval(
        world: tuple[OperateLoop, str], settings: Settings) -> None:
    loop, ref = world
    production = open_environment(ref, settings)
    try:
        change = owner.advance(loop, production, ref, FLAG, None, "payments-owner", "")
    finally:
        production.close()
    (case,) = change.record.actions
    assert case.action.params == {"flag": FLAG, "percent": 25}
    assert case.decision is not None and case.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
    assert case.decision.rule == "rollouts.yaml:defaults.advances"
    assert case.approval is not None
    assert (case.approval.verdict, case.approval.by) == (Verdict.APPROVE, "payments-owner")
    assert case.result is not None and case.result.status is ActionStatus.SUCCEEDED
    assert change.waiting is None and flag_now(settings, ref) == (True, 25)
    assert change.record.group_key == "agent:rollouts"  # the agent's own records
    assert [e.verb for e in change.owner.history] == ["advance"]


def test_an_owner_advance_another_rule_asks_about_waits_for_a_human(
        world: tuple[OperateLoop, str], settings: Settings) -> None:
    loop, ref = world
    # SEV1 for the rollouts agent: every change needs a human whatever the plan says.
    sev1 = loop.policies.schedule.agents["rollouts"].model_copy(update={"severity": "SEV1"})
    loop.policies = loop.policies.model_copy(update={"schedule": loop.policies.schedule.model_copy(
        update={"agents": {"rollouts": sev1}})})
    production = open_environment(ref, settings)
    try:
        change = owner.advance(loop, production, ref, FLAG, 50, "payments-owner", "go")
    finally:
        production.close()
    assert change.record.status is IncidentStatus.AWAITING_APPROVAL
    assert change.waiting is not None and [r.id for r in loop.pending()] == [change.waiting]
    assert flag_now(settings, ref) == (True, 5)


def test_an_owner_kill_switches_the_flag_off_and_the_answer_is_kept(
        world: tuple[OperateLoop, str], settings: Settings) -> None:
    loop, ref = world
    book = OwnerBook(settings.state_dir)
    production = open_environment(ref, settings)
    try:
        with pytest.raises(owner.NotPossible, match="is not killed"):
            owner.answer(book, loop.policies, production, FLAG, "rework", "ana")
        change = owner.kill(loop, production, ref, FLAG, "ana", "complaints from support")
        (case,) = change.record.actions
        assert case.decision is not None and case.decision.outcome is DecisionOutcome.AUTO
        assert case.result is not None and case.result.status is ActionStatus.SUCCEEDED
    finally:
        production.close()
    assert flag_now(settings, ref) == (False, 0)
    production = open_environment(ref, settings)
    try:
        owner.answer(book, loop.policies, production, FLAG, "rework", "ana", "wrong model")
        with pytest.raises(owner.NotPossible, match="already disabled"):
            owner.kill(loop, production, ref, FLAG, "ana", "again")
    finally:
        production.close()
    analysis = run_agent(_saved(settings, ref), settings, loop.policies)
    (finding,) = [f for f in analysis.findings if f.subject == FLAG]
    assert finding.kind == "rollout_rework" and "owner answer rework by ana" in \
        finding.evidence[1]


def _saved(settings: Settings, ref: str) -> SimState:
    env = open_environment(ref, settings)
    try:
        state: SimState = copy.deepcopy(env.state)  # type: ignore[attr-defined]
        return state
    finally:
        env.close()


@pytest.mark.parametrize(("to", "message"), [(30, "not a step"), (5, "already")])
def test_an_advance_must_go_to_a_step_above_the_current_one(
        world: tuple[OperateLoop, str], settings: Settings, to: int, message: str) -> None:
    loop, ref = world
    production = open_environment(ref, settings)
    try:
        with pytest.raises(owner.NotPossible, match=message):
            owner.advance(loop, production, ref, FLAG, to, "ana", "")
        with pytest.raises(owner.UnknownFlag, match="does not manage 'nope'"):
            owner.advance(loop, production, ref, "nope", None, "ana", "")
    finally:
        production.close()
    assert loop.store.incidents() == []  # nothing was opened


def test_a_held_flag_is_not_advanced_by_the_agent_across_a_restart(
        world: tuple[OperateLoop, str], settings: Settings, shipped_policies: Policies,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    loop, ref = world
    policies = with_plan(shipped_policies, "auto")
    book = OwnerBook(settings.state_dir)
    production = open_environment(ref, settings)
    try:
        owner.hold(book, policies, production, FLAG, "ana", "sale week")
        with pytest.raises(owner.NotPossible, match="already held by ana"):
            owner.hold(book, policies, production, FLAG, "bo", "me too")
        with pytest.raises(owner.NotPossible, match="held by ana"):
            owner.advance(loop, production, ref, FLAG, None, "bo", "")
        now = production.now()
    finally:
        production.close()
    # A new process (loop, ledger, scheduler) reads the hold from the state dir.
    fresh = OperateLoop(settings, policies, make_loop(settings).runbooks)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        scheduler = Scheduler(fresh, ledger, ref, lambda: open_environment(ref, settings))
        run = scheduler.run_now("rollouts", now + timedelta(seconds=1))
        assert run.status == "succeeded" and run.proposals == [], run.error
        (mine,) = [f for f in run.findings if f["subject"] == FLAG]
        assert mine["kind"] == "rollout_held"
        assert mine["evidence"][1].startswith("rule owner hold by ana at ")
        assert flag_now(settings, ref) == (True, 5)
    finally:
        fresh.close()
        ledger.close()
    production = open_environment(ref, settings)
    try:
        owner.resume(book, policies, production, FLAG, "ana")
    finally:
        production.close()
    assert run_agent(_saved(settings, ref), settings, policies).proposals  # advances again


def cli_run(argv: list[str], settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.register(sub, argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(argv)
    assert args.handler(args, settings, Ui()) == 0
    return capsys.readouterr().out


@pytest.fixture
def cli_world(worlds: dict[str, SimState], tmp_path: Path) -> tuple[Settings, str]:
    """Shipped policies with FLAG managed (needs approval), a saved healthy simulation."""
    import shutil

    policies = tmp_path / "policies"
    shutil.copytree(Settings().policies_dir, policies)
    text = (policies / "rollouts.yaml").read_text()
    (policies / "rollouts.yaml").write_text(text.replace(
        "flags: {}", f"flags:\n  {FLAG}: {{service: {SERVICE}, owner: payments, "
                     "steps: [5, 25, 50, 100], interval: 30m}"))
    settings = Settings(work_dir=tmp_path / "work", policies_dir=policies)
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.state = copy.deepcopy(worlds["healthy"])
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    env.close()
    return settings, ref


def test_the_owner_verbs_from_the_command_line(cli_world: tuple[Settings, str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings, ref = cli_world
    where = ["--environment", ref, "--by", "ana", "--json"]
    held = json.loads(cli_run(["rollouts", "hold", FLAG, "--reason", "sale", *where],
                              settings, capsys))
    assert held["hold"]["by"] == "ana"
    shown = json.loads(cli_run(["rollouts", "show", FLAG, "--environment", ref, "--json"],
                               settings, capsys))
    assert shown["decision"]["action"] == "held"
    assert shown["owner_state"]["hold"]["reason"] == "sale"
    text = cli_run(["rollouts", "show", FLAG, "--environment", ref], settings, capsys)
    assert "owner: HELD by ana" in text
    cli_run(["rollouts", "resume", FLAG, *where], settings, capsys)
    moved = json.loads(cli_run(["rollouts", "advance", FLAG, "--to", "25", *where], settings,
                               capsys))
    assert moved["result"]["status"] == "succeeded" and moved["approval"]["by"] == "ana"
    assert moved["decision"]["rule"] == "rollouts.yaml:defaults.advances"
    killed = json.loads(cli_run(["rollouts", "kill", FLAG, "--reason", "support", *where],
                                settings, capsys))
    assert killed["result"]["status"] == "succeeded"
    cli_run(["rollouts", "answer", FLAG, "rework", "--reason", "wrong model", *where],
            settings, capsys)
    text = cli_run(["rollouts", "show", FLAG, "--environment", ref], settings, capsys)
    assert "CLEANUP" in text and "kill answered rework by ana" in text
    # Reworked and re-enabled by its owner: the rollout starts again at the first step, and
    # the answer (to the kill before) no longer applies.
    again = json.loads(cli_run(["rollouts", "advance", FLAG, *where], settings, capsys))
    assert again["result"]["status"] == "succeeded" and flag_now(settings, ref) == (True, 5)
    shown = json.loads(cli_run(["rollouts", "show", FLAG, "--environment", ref, "--json"],
                               settings, capsys))
    assert shown["owner_state"]["answer"] is None
    assert shown["decision"]["action"] == "waiting"  # a new step: it runs its interval


@pytest.mark.parametrize(("argv", "message"), [
    (["advance", "dark-mode"], "does not manage 'dark-mode'"),
    (["advance", FLAG, "--to", "30"], "30% is not a step"),
    (["advance", FLAG, "--to", "5"], "already"),
    (["resume", FLAG], "is not held"),
    (["answer", FLAG, "temporary"], "is not killed"),
])
def test_bad_owner_input_is_a_clear_user_error(cli_world: tuple[Settings, str],
                                               capsys: pytest.CaptureFixture[str],
                                               argv: list[str], message: str) -> None:
    settings, ref = cli_world
    with pytest.raises(UserError, match=message):
        cli_run(["rollouts", *argv, "--environment", ref], settings, capsys)


def test_through_the_opsloop_command_bad_input_is_one_line_and_a_non_zero_exit(
        cli_world: tuple[Settings, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from opsloop.cli.main import main

    settings, ref = cli_world
    monkeypatch.setenv("OPSLOOP_POLICIES_DIR", str(settings.policies_dir))
    monkeypatch.setenv("OPSLOOP_USER", "ana")
    work = ["--work-dir", str(settings.work_dir)]
    assert main([*work, "rollouts", "advance", FLAG, "--to", "30", "--environment", ref]) == 1
    err = capsys.readouterr().err
    assert "30% is not a step of new-checkout-flow's plan" in err and "Traceback" not in err
    assert main([*work, "rollouts", "hold", "nope", "--reason", "x", "--environment",
                 ref]) == 1
    assert "does not manage 'nope'" in capsys.readouterr().err
    # The identity is OPSLOOP_USER's, as for `opsloop approve`.
    assert main([*work, "rollouts", "advance", FLAG, "--environment", ref]) == 0
    assert "succeeded" in capsys.readouterr().out and flag_now(settings, ref) == (True, 25)
    (entry,) = OwnerBook(settings.state_dir).state(FLAG).history
    assert (entry.verb, entry.by, entry.to_percent) == ("advance", "ana", 25)
