"""Intake's groups written through to SQLite: a grouper rebuilt from its state carries on
exactly where the last one stopped, finished groups leave nothing behind, and a failed write
leaves memory as it was."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from opsloop.fingerprint import label_fingerprint
from opsloop.intake import AlertGrouper
from opsloop.intake_state import IntakeState, IntakeStateError, IntakeWrite
from opsloop.models import Anomaly, AnomalyStatus
from opsloop.policy.schema.intake import IntakePolicy

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def alert(name: str, service: str, status: str = "firing", **extra: str) -> Anomaly:
    labels = {"alertname": name, "service": service, "env": "prod", **extra}
    return Anomaly(fingerprint=label_fingerprint(labels), labels=labels,
                   status=AnomalyStatus(status), starts_at=T0)


class Intake:
    """A grouper on a state file, with ids that outlive it (the store hands them out)."""

    def __init__(self, path: Path, **policy: object) -> None:
        self.path = path
        self.policy = IntakePolicy.model_validate({"version": 1, **policy})
        self.ids = count(1)
        self.state: IntakeState | None = None
        self.grouper = self.restart()

    def restart(self) -> AlertGrouper:
        if self.state is not None:
            self.state.close()
        self.state = IntakeState(self.path)
        self.grouper = AlertGrouper(self.policy, "sim:test", lambda: f"INC-{next(self.ids):04d}",
                                    state=self.state)
        return self.grouper


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Callable[..., Intake]]:
    made: list[Intake] = []

    def make(**policy: object) -> Intake:
        made.append(Intake(tmp_path / f"intake-{len(made)}.db", **policy))
        return made[-1]

    yield make
    for i in made:
        if i.state is not None:
            i.state.close()


def _outcome(step: str, result: Any) -> Any:
    """What a step said, in a form two groupers' answers can be compared in."""
    if step == "ingest":
        return vars(result)
    if step == "due":
        return [(i.id, i.group_key, [a.fingerprint for a in i.anomalies]) for i in result]
    return [(u.incident_id, u.group_key, [a.fingerprint for a in u.new_firing],
             [a.fingerprint for a in u.resolved], u.firing_count, u.closed, u.repeat)
            for u in result]


@pytest.mark.parametrize("seed", range(3))
def test_a_grouper_rebuilt_after_every_step_answers_like_one_kept_in_memory(
    intake: Callable[..., Intake], seed: int,
) -> None:
    rng = random.Random(seed)
    policy = {"group_by": ["service"], "group_wait_minutes": 1, "group_interval_minutes": 5,
              "repeat_interval_minutes": 30}
    restarting = intake(**policy)
    ids = count(1)
    steady = AlertGrouper(restarting.policy, "sim:test", lambda: f"INC-{next(ids):04d}")
    pool = [alert(name, svc, pod=str(pod)) for name in ("HighErrorRate", "PodCrashLooping")
            for svc in ("checkout", "search", "web") for pod in range(2)]
    minutes = 0.0
    seen: list[Any] = []
    for _ in range(120):
        minutes += rng.choice([0, 0.5, 1, 2, 5, 7])
        step = rng.choice(["ingest", "ingest", "due", "updates"])
        results = []
        for g in (steady, restarting.grouper):
            if step == "ingest":
                r = random.Random(f"{seed}-{minutes}")  # both sides get the same batch
                batch = [a.model_copy(update={"status": AnomalyStatus(
                    r.choice(["firing", "resolved"]))})
                    for a in r.sample(pool, r.randint(1, 4))]
                results.append(_outcome(step, g.ingest(batch, at(minutes))))
            elif step == "due":
                results.append(_outcome(step, g.due(at(minutes))))
            else:
                results.append(_outcome(step, g.updates(at(minutes))))
        assert results[0] == results[1], f"seed {seed}, {step} at minute {minutes}"
        seen.append((step, results[0]))
        restarting.restart()
    # The walk went through openings, news, closings and repeats, or it proved little.
    flushes = [u for step, result in seen if step == "updates" for u in result]
    assert any(result for step, result in seen if step == "due")
    assert any(u[2] for u in flushes) and any(u[5] for u in flushes)
    assert any(u[6] for u in flushes)


def test_alerts_taken_in_before_a_restart_open_their_incident_after_it(
    intake: Callable[..., Intake],
) -> None:
    i = intake(group_by=["env"], group_wait_minutes=1)
    i.grouper.ingest([alert("HighErrorRate", "checkout"), alert("HighErrorRate", "web")], at(0))
    g = i.restart()
    assert g.due(at(0.5)) == []  # group_wait still counts from the first alert
    [incident] = g.due(at(1))
    assert incident.services == ["checkout", "web"]
    g = i.restart()
    g.ingest([alert("HighErrorRate", "checkout"), alert("HighErrorRate", "web")], at(2))
    assert g.due(at(10)) == []  # re-sent after another restart: the same incident
    assert g.stats.deduplicated == 2


def test_a_restart_keeps_group_interval_and_repeat_interval_running(
    intake: Callable[..., Intake],
) -> None:
    i = intake(group_wait_minutes=0, group_interval_minutes=5, repeat_interval_minutes=60)
    i.grouper.ingest([alert("HighErrorRate", "checkout")], at(0))
    [incident] = i.grouper.due(at(0))
    i.grouper.ingest([alert("HighErrorRate", "web")], at(2))
    g = i.restart()
    assert g.updates(at(4)) == []
    [update] = g.updates(at(5))
    assert (update.incident_id, [a.service for a in update.new_firing]) == (incident.id, ["web"])
    g = i.restart()
    assert g.updates(at(64)) == []
    [repeat] = i.restart().updates(at(65))
    assert repeat.repeat and repeat.new_firing == []


def test_finished_groups_and_told_resolutions_leave_nothing_on_disk(
    intake: Callable[..., Intake],
) -> None:
    i = intake(group_by=["service"], group_wait_minutes=1, group_interval_minutes=5)
    g = i.grouper
    assert i.state is not None
    g.ingest([alert("A", "checkout"), alert("A", "checkout", pod="2"), alert("A", "search")],
             at(0))
    g.ingest([alert("A", "search", "resolved")], at(0.5))
    g.due(at(1))  # search resolved before it opened: dropped; checkout opens
    assert i.state.counts() == (1, 2)
    g.ingest([alert("A", "checkout", "resolved")], at(2))
    g.updates(at(6))  # the resolution is told, then forgotten
    assert i.state.counts() == (1, 1)
    g.ingest([alert("A", "checkout", "resolved", pod="2")], at(7))
    [final] = g.updates(at(11))
    assert final.closed
    assert i.state.counts() == (0, 0)
    assert i.restart().groups == {}


def test_a_failed_write_is_undone_in_memory_and_raised(
    intake: Callable[..., Intake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    i = intake(group_wait_minutes=0)
    g = i.grouper
    assert i.state is not None
    g.ingest([alert("A", "checkout")], at(0))

    def refuse(write: IntakeWrite) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(i.state, "commit", refuse)
    with pytest.raises(sqlite3.OperationalError):
        g.ingest([alert("A", "web"), alert("A", "checkout", "resolved")], at(1))
    with pytest.raises(sqlite3.OperationalError):
        g.due(at(1))
    [group] = g.groups.values()
    assert set(group.alerts) == {alert("A", "checkout").fingerprint}
    assert group.incident_id is None
    assert g.stats.received == 1  # the refused batch is not counted as taken in
    monkeypatch.undo()
    counts = g.ingest([alert("A", "web")], at(1))  # Alertmanager's retry is news, not a dup
    assert counts.deduplicated == 0
    [incident] = g.due(at(1))
    assert incident.id == "INC-0002"  # INC-0001 was issued to the refused opening
    assert [len(x.anomalies) for x in i.restart().opened(at(2))] == [2]


def test_identical_resends_write_nothing(
    intake: Callable[..., Intake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    i = intake(group_wait_minutes=0)
    assert i.state is not None
    writes: list[IntakeWrite] = []
    commit = i.state.commit
    monkeypatch.setattr(i.state, "commit", lambda w: (writes.append(w), commit(w))[1])
    storm = [alert("A", f"svc-{n}") for n in range(50)]
    i.grouper.ingest(storm, at(0))
    i.grouper.ingest(storm, at(1))
    assert [len(w.alerts) for w in writes if w] == [50]
    moved = storm[0].model_copy(update={"annotations": {"summary": "now 9% errors"}})
    i.grouper.ingest([moved], at(2))  # a re-send whose annotations moved on is kept
    assert i.restart().groups[next(iter(i.grouper.groups))].alerts[moved.fingerprint] == moved


def test_a_source_alert_held_before_a_restart_still_inhibits(
    intake: Callable[..., Intake],
) -> None:
    i = intake(group_by=["service"], group_wait_minutes=0, inhibit_rules=[{
        "source_matchers": ['severity="page"'], "target_matchers": ['severity="ticket"'],
        "equal": ["service"]}])
    i.grouper.ingest([alert("HighErrorRate", "checkout", severity="page")], at(0))
    g = i.restart()
    g.ingest([alert("HighLatencyP99", "checkout", severity="ticket")], at(1))
    assert g.stats.inhibited == 1


def test_a_file_that_is_not_intake_state_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "intake.db"
    path.write_bytes(b"not a database, just text " * 100)
    with pytest.raises(IntakeStateError, match=r"intake\.db.*move it aside"):
        IntakeState(path)
