"""`opsloop serve`'s runtime stopped and started again on the same state dir, in process (the
real process killed with SIGKILL is tests/test_restart.py): re-sent alerts stay in the
incident they opened whatever its status, an opening cut short is finished under its id, and
a state dir from before intake state was kept takes back its open incidents."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from opsloop.api.runtime import IntakeRuntime
from opsloop.fingerprint import label_fingerprint
from opsloop.intake_state import IntakeState, IntakeWrite
from opsloop.models import Anomaly, AnomalyStatus, Incident, IncidentStatus
from opsloop.policy import load_policies
from opsloop.settings import Settings

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def alert(service: str, status: str = "firing", **extra: str) -> Anomaly:
    labels = {"alertname": "HighErrorRate", "service": service, "env": "prod", **extra}
    return Anomaly(fingerprint=label_fingerprint(labels), labels=labels,
                   status=AnomalyStatus(status), starts_at=T0)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at

    def advance(self, minutes: float) -> None:
        self.at += timedelta(minutes=minutes)


@pytest.fixture
def serve(settings: Settings) -> Iterator[tuple[Callable[..., IntakeRuntime], Clock]]:
    """Runtimes on one state dir and one clock; `start()` recovers as `serve` does on start,
    without the dispatcher thread, so each test says when groups are flushed."""
    policies = load_policies(settings.policies_dir)
    policies = policies.model_copy(update={"intake": policies.intake.model_copy(
        update={"group_wait_minutes": 0, "group_interval_minutes": 1})})
    clock = Clock()
    made: list[IntakeRuntime] = []

    def start(before: Callable[[IntakeRuntime], None] = lambda r: None) -> IntakeRuntime:
        if made:
            made[-1].stop()
        runtime = IntakeRuntime(settings, policies)
        runtime.now = clock  # type: ignore[method-assign]
        made.append(runtime)
        before(runtime)
        runtime.recover()
        return runtime

    yield start, clock
    if made:
        made[-1].stop()


def incidents(runtime: IntakeRuntime) -> list[Incident]:
    found: list[Incident] = runtime.read(lambda s: s.incidents())
    return found


def audit_kinds(runtime: IntakeRuntime, incident_id: str) -> list[str]:
    return [a.kind for a in runtime.read(lambda s: s.audit_log(incident_id))]


def set_status(runtime: IntakeRuntime, incident_id: str, status: IncidentStatus) -> None:
    def save(store: Any) -> None:
        incident = store.get_incident(incident_id)
        store.save_incident(incident.model_copy(update={"status": status}))

    runtime.read(save)


@pytest.mark.parametrize("status", list(IncidentStatus))
def test_resent_alerts_join_the_incident_they_opened_whatever_its_status(
    serve: tuple[Callable[..., IntakeRuntime], Clock], status: IncidentStatus,
) -> None:
    start, clock = serve
    runtime = start()
    runtime.ingest([alert("checkout"), alert("web")])
    [opened] = runtime.flush()
    set_status(runtime, opened.id, status)
    for _ in range(3):
        runtime = start()
        clock.advance(2)
        counts = runtime.ingest([alert("checkout"), alert("web")])
        assert counts.deduplicated == 2
        assert runtime.flush() == []
    assert [(i.id, i.status) for i in incidents(runtime)] == [(opened.id, status)]
    assert audit_kinds(runtime, opened.id).count("opened") == 1


def test_a_new_alert_after_a_restart_is_news_for_the_same_incident(
    serve: tuple[Callable[..., IntakeRuntime], Clock],
) -> None:
    start, clock = serve
    runtime = start()
    runtime.ingest([alert("checkout")])
    [opened] = runtime.flush()
    runtime = start()
    runtime.ingest([alert("checkout"), alert("payments")])
    clock.advance(1)  # group_interval
    assert runtime.flush() == []
    [update] = [a for a in runtime.read(lambda s: s.audit_log(opened.id))
                if a.kind == "alerts_update"]
    assert update.detail["new_firing"] == [alert("payments").fingerprint]
    assert len(incidents(runtime)) == 1


def test_an_opening_cut_short_is_recorded_after_restart_under_its_id(
    serve: tuple[Callable[..., IntakeRuntime], Clock],
) -> None:
    start, _ = serve
    runtime = start()
    runtime.ingest([alert("checkout"), alert("web")])
    [cut_short] = runtime.grouper.due(runtime.now())  # killed before the store heard of it
    assert incidents(runtime) == []
    runtime = start()
    [recorded] = incidents(runtime)
    assert recorded.id == cut_short.id and recorded.services == ["checkout", "web"]
    assert audit_kinds(runtime, recorded.id) == ["opened"]
    runtime = start()  # a second restart finds nothing left to do
    runtime.ingest([alert("checkout"), alert("web")])
    assert runtime.flush() == []
    assert audit_kinds(runtime, recorded.id) == ["opened"]


def test_an_opening_cut_short_that_cannot_be_recorded_at_start_is_tried_every_round(
    serve: tuple[Callable[..., IntakeRuntime], Clock], monkeypatch: pytest.MonkeyPatch,
) -> None:
    start, _ = serve
    runtime = start()
    runtime.ingest([alert("checkout")])
    [cut_short] = runtime.grouper.due(runtime.now())

    def refuse(incident: Incident) -> None:
        raise OSError("database is locked")

    runtime = start(lambda r: monkeypatch.setattr(r.store, "save_incident", refuse))
    assert incidents(runtime) == [] and "database is locked" in runtime.errors[-1]
    monkeypatch.undo()
    assert runtime.flush() == []  # nothing new opens; the cut-short one is recorded
    assert [i.id for i in incidents(runtime)] == [cut_short.id]
    assert audit_kinds(runtime, cut_short.id) == ["opened"]


def test_an_opening_the_store_refused_is_tried_again_on_the_next_round(
    serve: tuple[Callable[..., IntakeRuntime], Clock], monkeypatch: pytest.MonkeyPatch,
) -> None:
    start, _ = serve
    runtime = start()
    runtime.ingest([alert("checkout")])
    save = runtime.store.save_incident

    def locked(incident: Incident) -> None:
        raise OSError("database is locked")

    monkeypatch.setattr(runtime.store, "save_incident", locked)
    with pytest.raises(OSError):
        runtime.flush()
    monkeypatch.setattr(runtime.store, "save_incident", save)
    runtime.flush()
    [incident] = incidents(runtime)
    assert audit_kinds(runtime, incident.id) == ["opened"]


def test_a_group_closed_before_the_restart_opens_a_new_incident_when_it_fires_again(
    serve: tuple[Callable[..., IntakeRuntime], Clock],
) -> None:
    start, clock = serve
    runtime = start()
    runtime.ingest([alert("checkout")])
    [first] = runtime.flush()
    runtime.ingest([alert("checkout", "resolved")])
    clock.advance(1)
    runtime.flush()
    assert audit_kinds(runtime, first.id)[-1] == "alerts_resolved"
    assert runtime.intake_state.counts() == (0, 0)  # nothing kept of a closed group
    runtime = start()
    runtime.ingest([alert("checkout")])
    [second] = runtime.flush()
    assert second.id != first.id


def test_a_state_dir_from_before_intake_state_takes_back_its_open_incidents(
    serve: tuple[Callable[..., IntakeRuntime], Clock], settings: Settings,
) -> None:
    start, clock = serve
    runtime = start()
    runtime.ingest([alert("checkout", env="staging")])
    [closed] = runtime.flush()
    runtime.ingest([alert("checkout", "resolved", env="staging")])
    clock.advance(1)
    runtime.flush()
    runtime.ingest([alert("checkout"), alert("web")])
    [still_open] = runtime.flush()
    runtime.stop()
    for suffix in ("", "-wal", "-shm"):  # as it was before intake state was kept
        (settings.state_dir / f"intake.db{suffix}").unlink(missing_ok=True)
    runtime = start()
    assert set(runtime.grouper.groups) == {still_open.group_key}
    runtime.ingest([alert("checkout"), alert("web"), alert("checkout", env="staging")])
    [reopened] = runtime.flush()
    assert reopened.group_key == closed.group_key and reopened.id not in {closed.id,
                                                                         still_open.id}
    assert len(incidents(runtime)) == 3


def test_news_the_audit_log_refused_is_flushed_again_not_lost(
    serve: tuple[Callable[..., IntakeRuntime], Clock], monkeypatch: pytest.MonkeyPatch,
) -> None:
    start, clock = serve
    runtime = start()
    runtime.ingest([alert("checkout")])
    [opened] = runtime.flush()
    runtime.ingest([alert("payments")])
    clock.advance(1)
    audit = runtime.store.audit

    def locked(*args: Any) -> None:
        raise OSError("database is locked")

    monkeypatch.setattr(runtime.store, "audit", locked)
    with pytest.raises(OSError):
        runtime.flush()
    monkeypatch.setattr(runtime.store, "audit", audit)
    runtime = start()  # and a restart in between changes nothing
    runtime.flush()
    [update] = [a for a in runtime.read(lambda s: s.audit_log(opened.id))
                if a.kind == "alerts_update"]
    assert update.detail["new_firing"] == [alert("payments").fingerprint]


def test_the_webhook_acknowledges_an_alert_only_once_it_is_on_disk(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsloop.api.auth import load_tokens
    from opsloop.api.server import running_api

    token = "restart-ingest-token-0123456789"
    settings = settings.model_copy(update={"api_tokens": SecretStr(f"am:ingest:{token}")})
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    body = {"version": "4", "status": "firing", "receiver": "opsloop", "groupKey": "{}",
            "alerts": [{"status": "firing", "startsAt": "2026-11-02T09:00:00Z",
                        "labels": {"alertname": "HighErrorRate", "service": "checkout",
                                   "env": "prod"}}]}
    commit = runtime.intake_state.commit

    def full(write: IntakeWrite) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with running_api(runtime, load_tokens(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=30,
                         headers={"Authorization": f"Bearer {token}"}) as client:
        monkeypatch.setattr(runtime.intake_state, "commit", full)
        refused = client.post("/api/v1/alerts/alertmanager", json=body)
        assert refused.status_code == 500  # Alertmanager retries a 5xx
        monkeypatch.setattr(runtime.intake_state, "commit", commit)
        retried = client.post("/api/v1/alerts/alertmanager", json=body)
        assert retried.status_code == 200 and retried.json()["deduplicated"] == 0
    reopened = IntakeState(settings.state_dir / "intake.db")
    try:
        assert reopened.counts() == (1, 1)
    finally:
        reopened.close()
