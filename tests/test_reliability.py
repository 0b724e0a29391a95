"""Nothing lost, nothing doubled: one run per incident, recovery from any moment of death,
modifications checked before they are recorded, one bad record never hides the others.

A death is simulated in-process by raising a BaseException at a crash point: like a kill -9,
no `except Exception` handler of the loop sees it (the crash suite does the real kill -9).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.agents.ask_records import Records
from opsloop.cli.main import main
from opsloop.files import documents
from opsloop.graph.checkpoint import sqlite_checkpointer
from opsloop.graph.runner import InvalidChange, OperateLoop
from opsloop.models import ApprovalRequest, IncidentStatus, Verdict
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.store import IncidentStore, StoreError
from opsloop.watch import run_scenario


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler of the loop catches it."""


@pytest.fixture
def die_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Set `die_at.append("point")` to die at that point's next arrival."""
    armed: list[str] = []

    def point(name: str) -> None:
        if name in armed:
            armed.remove(name)
            raise Killed(name)

    import opsloop.graph.checkpoint
    import opsloop.graph.nodes.act
    import opsloop.graph.nodes.learn
    import opsloop.graph.nodes.verify
    import opsloop.graph.runner
    import opsloop.tools.notify
    for module in (opsloop.graph.runner, opsloop.graph.checkpoint, opsloop.graph.nodes.act,
                   opsloop.graph.nodes.verify, opsloop.graph.nodes.learn,
                   opsloop.tools.notify):
        monkeypatch.setattr(module, "crash_point", point)
    yield armed
    assert not armed, f"crash point(s) never reached: {armed}"


def environment(loop: OperateLoop, ref: str) -> SimEnvironment:
    return SimEnvironment.load(loop.settings.environments_dir / f"{ref.removeprefix('sim:')}.json")


def notification_keys(settings: Settings) -> list[str]:
    path = settings.work_dir / "notifications.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["key"] for line in lines if json.loads(line).get("key")]


def waiting_request(loop: OperateLoop, scenario: str) -> ApprovalRequest:
    run_scenario(loop, scenario, 7, lambda _m: None)
    [request] = loop.pending()
    return request


# -- one run per incident ------------------------------------------------------------------


def test_a_second_decider_is_refused_while_the_first_run_lives(loop: OperateLoop) -> None:
    request = waiting_request(loop, "bad_deploy")
    other = IncidentStore(loop.settings.state_dir / "opsloop.db")
    try:
        with other.leases.hold(request.incident_id, "approved by alice"):
            with pytest.raises(StoreError, match="being run right now by approved by alice"):
                loop.decide(request.id, Verdict.APPROVE, "bob")
            assert [r.id for r in loop.pending()] == [request.id]  # bob changed nothing
    finally:
        other.close()
    final = loop.decide(request.id, Verdict.APPROVE, "bob")
    assert final.status is IncidentStatus.MITIGATED


def test_a_dead_holder_on_this_host_frees_the_lease_at_once(loop: OperateLoop) -> None:
    request = waiting_request(loop, "bad_deploy")
    keeper = loop.store.leases
    keeper.acquire(request.incident_id, "approved by a process that was killed")
    with sqlite3.connect(loop.store.path) as db:  # as if its pid had died
        db.execute("UPDATE leases SET pid=? WHERE incident_id=?", (2**22 + 1, request.incident_id))
    final = loop.decide(request.id, Verdict.APPROVE, "bob")
    assert final.status is IncidentStatus.MITIGATED


def test_the_loser_of_two_decisions_says_who_won(loop: OperateLoop) -> None:
    request = waiting_request(loop, "bad_deploy")
    loop.decide(request.id, Verdict.APPROVE, "alice")
    with pytest.raises(StoreError, match=r"already decided \(approved by alice\)"):
        loop.decide(request.id, Verdict.APPROVE, "bob")


# -- recovery from any moment of death -------------------------------------------------------


def test_death_before_the_first_checkpoint_is_resumed_from_the_stored_incident(
    loop: OperateLoop, die_at: list[str]
) -> None:
    die_at.append("start.saved")
    with pytest.raises(Killed):
        run_scenario(loop, "memory_leak", 7, lambda _m: None)
    [incident_id] = loop.store.unfinished()
    [(recovered, outcome)] = loop.recover("ops")
    assert (recovered, outcome) == (incident_id, "mitigated")


def test_death_after_the_graph_finished_is_recorded_not_reported_as_nothing_to_do(
    loop: OperateLoop, die_at: list[str]
) -> None:
    die_at.append("run.invoked")
    with pytest.raises(Killed):
        run_scenario(loop, "memory_leak", 7, lambda _m: None)
    [incident] = loop.store.incidents()
    assert incident.status is IncidentStatus.OPEN  # the store never heard the run finished
    final = loop.resume(incident.id, "ops")
    assert final.status is IncidentStatus.MITIGATED
    assert loop.store.unfinished() == []


def test_a_decision_recorded_before_death_is_the_one_resume_uses(
    loop: OperateLoop, die_at: list[str]
) -> None:
    request = waiting_request(loop, "bad_deploy")
    die_at.append("decide.claimed")
    with pytest.raises(Killed):
        loop.decide(request.id, Verdict.APPROVE, "alice", "go")
    with pytest.raises(StoreError, match="already decided"):
        loop.decide(request.id, Verdict.REJECT, "bob", "too late")
    final = loop.resume(request.incident_id, "ops")
    assert final.status is IncidentStatus.MITIGATED
    [case] = final.actions
    assert case.approval is not None
    assert (case.approval.verdict, case.approval.by) == (Verdict.APPROVE, "alice")


def test_a_replayed_step_sends_no_notification_twice(
    loop: OperateLoop, die_at: list[str]
) -> None:
    die_at.append("notify.written")  # the line is out; its delivery was never confirmed
    with pytest.raises(Killed):
        run_scenario(loop, "flag_rollout_errors", 7, lambda _m: None)
    [(_, outcome)] = loop.recover("ops")
    assert outcome == "mitigated"
    keys = notification_keys(loop.settings)
    assert keys and len(keys) == len(set(keys))


def test_a_replayed_verification_waits_its_window_once(
    loop: OperateLoop, die_at: list[str]
) -> None:
    die_at.append("verify.waited")
    with pytest.raises(Killed):
        run_scenario(loop, "memory_leak", 7, lambda _m: None)
    [incident_id] = loop.store.unfinished()
    final = loop.resume(incident_id, "ops")
    assert final.verification is not None
    [case] = final.actions
    assert case.result is not None
    acted_for = final.verification.at - case.result.at
    assert acted_for.total_seconds() / 60 == final.verification.window_minutes
    assert environment(loop, final.environment).now() == final.verification.at


def test_an_action_that_ran_before_death_is_replayed_not_repeated(
    loop: OperateLoop, die_at: list[str]
) -> None:
    die_at.append("act.executed")
    with pytest.raises(Killed):
        run_scenario(loop, "memory_leak", 7, lambda _m: None)
    [incident_id] = loop.store.unfinished()
    final = loop.resume(incident_id, "ops")
    assert final.status is IncidentStatus.MITIGATED
    [case] = final.actions
    assert case.result is not None and case.result.replayed
    assert len(environment(loop, final.environment).state.executed) == 1


# -- modifications are checked before anything is recorded ----------------------------------


@pytest.mark.parametrize("changes", [
    {"replicas": "abc"}, {"replicas": "-5"}, {"replicas": "0"}, {"replicas": "1e400"},
    {"replicas": "nan"}, {"replicas": "2.5"}, {"bogus": "1"}, {"replicas": float("nan")},
    {"replicas": True}, {},
])
def test_a_bad_modification_leaves_the_approval_pending(
    loop: OperateLoop, changes: dict[str, object]
) -> None:
    request = waiting_request(loop, "cost_runaway")
    audit_before = len(loop.store.audit_log(request.incident_id))
    with pytest.raises(InvalidChange) as refused:
        loop.decide(request.id, Verdict.MODIFY, "eve", "", changes)
    key = next(iter(changes), "")
    assert key in str(refused.value)
    assert [r.id for r in loop.pending()] == [request.id]
    assert len(loop.store.audit_log(request.incident_id)) == audit_before
    incident = loop.store.get_incident(request.incident_id)
    assert incident.status is IncidentStatus.AWAITING_APPROVAL
    assert all(c.approval is None for c in incident.actions)


def test_a_valid_modification_is_typed_by_the_policy_and_runs(loop: OperateLoop) -> None:
    request = waiting_request(loop, "cost_runaway")
    final = loop.decide(request.id, Verdict.MODIFY, "eve", "", {"replicas": "12"})
    [case] = final.actions
    assert case.approval is not None and case.approval.changes == {"replicas": 12}
    assert case.action.params["replicas"] == 12


def test_cli_modify_with_nan_exits_2_and_every_listing_still_reads(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    work = ["--work-dir", str(settings.work_dir)]
    assert main(["demo", "--scenario", "cost_runaway", "--json", *work]) == 0
    capsys.readouterr()
    assert main(["approvals", "--json", *work]) == 0
    [waiting] = json.loads(capsys.readouterr().out)
    assert main(["modify", waiting["id"], "--set", "replicas=nan", *work]) == 2
    err = capsys.readouterr().err
    assert "replicas=nan" in err and "from 1 to 500" in err
    assert main(["incidents", "--json", *work]) == 0
    assert main(["show", waiting["incident_id"], "--json", *work]) == 0


# -- one bad record never takes the others down ------------------------------------------------


def test_an_unreadable_incident_is_named_and_the_others_still_list(
    loop: OperateLoop, capsys: pytest.CaptureFixture[str]
) -> None:
    run_scenario(loop, "memory_leak", 7, lambda _m: None)
    run_scenario(loop, "disk_filling", 7, lambda _m: None)
    first, second = loop.store.incidents()
    body = json.loads(first.model_dump_json())
    body["severity"] = "SEV9"
    with sqlite3.connect(loop.store.path) as db:
        db.execute("UPDATE incidents SET body=? WHERE id=?", (json.dumps(body), first.id))
    problems: list[str] = []
    assert [i.id for i in loop.store.incidents(problems)] == [second.id]
    [problem] = problems
    assert first.id in problem and "severity" in problem and "SEV9" in problem
    with pytest.raises(StoreError, match=f"incident {first.id} .* severity"):
        loop.store.get_incident(first.id)

    work = ["--work-dir", str(loop.settings.work_dir)]
    assert main(["incidents", "--json", *work]) == 0
    captured = capsys.readouterr()
    assert [i["id"] for i in json.loads(captured.out)] == [second.id]
    assert first.id in captured.err
    assert main(["show", first.id, *work]) == 1
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["opsloop.db", "checkpoints.sqlite"])
def test_an_empty_state_file_is_an_error_naming_it(settings: Settings, name: str) -> None:
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / name).write_bytes(b"")
    with pytest.raises(StoreError, match=rf"{name} is empty \(0 bytes\)"):
        if name == "opsloop.db":
            IncidentStore(settings.state_dir / name)
        else:
            sqlite_checkpointer(settings.state_dir / name)


def test_a_foreign_state_file_is_an_error_naming_it(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True)
    path: Path = settings.state_dir / "opsloop.db"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    with pytest.raises(StoreError, match=r"opsloop\.db"):
        IncidentStore(path)


# -- files and settings name themselves ------------------------------------------------------


def test_a_bad_environment_variable_is_named_by_its_variable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSLOOP_SEED", "abc")
    assert main(["incidents", "--work-dir", str(settings.work_dir)]) == 1
    err = capsys.readouterr().err
    assert "OPSLOOP_SEED='abc'" in err and "integer" in err and "Traceback" not in err


def test_document_listings_never_follow_a_symlink_out_of_their_folder(tmp_path: Path) -> None:
    folder = tmp_path / "signals"
    folder.mkdir()
    (folder / "sig-1.md").write_text("---\nid: sig-1\n---\n")
    secret = tmp_path / "elsewhere.md"
    secret.write_text("---\nid: secret\n---\n")
    (folder / "sig-2.md").symlink_to(secret)
    (folder / "sub").mkdir()
    (folder / "sub" / "sig-3.md").write_text("x")
    assert [p.name for p in documents(folder)] == ["sig-1.md"]
    (tmp_path / "linked").symlink_to(folder)
    assert documents(tmp_path / "linked") == []
    records = Records.load([], tmp_path / "postmortems", folder)
    assert [s["id"] for s in records.signals] == ["sig-1"]


def test_an_unreadable_environment_is_named_and_the_approval_still_waits(
    loop: OperateLoop,
) -> None:
    request = waiting_request(loop, "bad_deploy")
    ref = loop.store.get_incident(request.incident_id).environment
    path = loop.settings.environments_dir / f"{ref.removeprefix('sim:')}.json"
    path.write_text("{broken")
    with pytest.raises(Exception, match=rf"{path.name} cannot be read"):
        loop.decide(request.id, Verdict.APPROVE, "alice")
    assert [r.id for r in loop.pending()] == [request.id]


# -- history reads follow what a rule needs, not the size of the store -------------------------


def test_learn_reads_related_incidents_inside_the_lookback_only(loop: OperateLoop) -> None:
    from datetime import timedelta

    run_scenario(loop, "memory_leak", 7, lambda _m: None)
    [done] = loop.store.incidents()
    assert done.root_cause is not None
    stranger = done.model_copy(update={
        "id": "INC-9001", "services": ["elsewhere"], "actions": [],
        "root_cause": done.root_cause.model_copy(update={"category": "other"})})
    old_friend = done.model_copy(update={"id": "INC-9002",
                                         "opened_at": done.opened_at - timedelta(days=90)})
    friend = done.model_copy(update={"id": "INC-9003", "actions": [],
                                     "opened_at": done.opened_at - timedelta(days=3)})
    for incident in (stranger, old_friend, friend):
        loop.store.save_incident(incident)
    since = done.opened_at - timedelta(days=30)
    assert [i.id for i in loop.store.related(done, since)] == ["INC-9003"]
    moved = friend.model_copy(update={"services": ["elsewhere"], "root_cause": None})
    loop.store.save_incident(moved)  # re-saving replaces its keys
    assert loop.store.related(done, since) == []
    rate = loop.store.auto_actions_since(done.environment, done.services[0],
                                         since, done.opened_at + timedelta(days=1), "INC-X")
    assert rate == len([c for c in done.actions if c.result is not None])
