"""`opsloop serve`'s runtime against a served simulator: its own SLO burn-rate evaluation
feeding intake (and resolving), an incident run on a worker, and flushes in the audit log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsloop.api.runtime import IntakeRuntime
from opsloop.environments import remote_ref
from opsloop.models import AnomalyStatus, RemediationAction
from opsloop.policy import load_policies
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.remote import SimClient
from opsloop.simulator.server import SimServer


@pytest.fixture
def served() -> Iterator[tuple[SimServer, SimClient]]:
    server = SimServer(SimEnvironment.create("bad_deploy", seed=7), hold_scenario=True).start()
    client = SimClient(server.url)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def test_burn_rates_open_an_incident_and_resolve_when_the_budget_stops_burning(
    served: tuple[SimServer, SimClient], settings: Settings,
) -> None:
    server, client = served
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir),
                            remote_ref(server.url))
    try:
        runtime.evaluate_slos()
        assert runtime.grouper.stats.received == 0  # a healthy fleet burns nothing
        client.release_scenario()
        client.wait(10)
        runtime.evaluate_slos()
        firing = [a for g in runtime.grouper.groups.values() for a in g.alerts.values()]
        assert {(a.name, a.service) for a in firing} >= {("ErrorBudgetBurn", "checkout")}
        assert all(a.labels["env"] == "prod" and a.source == "slo" for a in firing)
        client.execute(RemediationAction(id="r", type="rollback_deploy", service="checkout"),
                       "test:rollback")
        client.wait(10)  # the 5m short window clears: the 1h/5m pair stops firing
        runtime.evaluate_slos()
        statuses = {a.labels["window"]: a.status for g in runtime.grouper.groups.values()
                    for a in g.alerts.values() if a.service == "checkout"}
        assert statuses["1h/5m"] is AnomalyStatus.RESOLVED
    finally:
        runtime.stop()


def test_an_incident_opened_by_intake_runs_on_a_worker_against_the_served_simulator(
    served: tuple[SimServer, SimClient], settings: Settings,
) -> None:
    server, client = served
    policies = load_policies(settings.policies_dir)
    policies = policies.model_copy(update={"intake": policies.intake.model_copy(
        update={"group_wait_minutes": 0})})
    runtime = IntakeRuntime(settings, policies, remote_ref(server.url))
    try:
        client.release_scenario()
        client.wait(12)
        runtime.evaluate_slos()
        [incident] = runtime.flush()
        future = runtime.runs[incident.id]
        finished = future.result(timeout=120)
        assert finished is not None
        assert finished.root_cause is not None
        assert finished.root_cause.category == "bad_deploy"
        assert finished.status.value == "awaiting_approval"  # SEV1: a human decides
        kinds = [a.kind for a in runtime.read(lambda s: s.audit_log(incident.id))]
        assert kinds[0] == "opened" and "approval_requested" in kinds
        client.wait(30)  # the 6h/30m pair starts firing too: news for the open group
        runtime.evaluate_slos()
        client.wait(6)  # group_interval (5 minutes) later, the group is flushed
        runtime.flush()
        updates = [a for a in runtime.read(lambda s: s.audit_log(incident.id))
                   if a.kind == "alerts_update"]
        assert updates and updates[0].detail["new_firing_count"] >= 1
        assert runtime.errors == []
    finally:
        runtime.stop()


def test_serve_runs_the_anomaly_detectors_and_keeps_their_memory_across_a_restart(
    settings: Settings,
) -> None:
    # A fault under every alert rule: only the detectors can see it.
    server = SimServer(SimEnvironment.create("quiet_slowdown", seed=7),
                       hold_scenario=True).start()
    client = SimClient(server.url)
    policies = load_policies(settings.policies_dir)
    runtime = IntakeRuntime(settings, policies, remote_ref(server.url))
    try:
        client.wait(30)
        runtime.evaluate_detectors()
        assert runtime.grouper.stats.received == 0  # a healthy fleet raises nothing
        assert runtime.detectors is not None and runtime.detectors.series
        learned = len(runtime.detectors.series)
        runtime.stop()
        runtime = IntakeRuntime(settings, policies, remote_ref(server.url))
        assert runtime.detectors is not None
        assert len(runtime.detectors.series) == learned  # continued, not relearned
        client.release_scenario()
        for _ in range(12):
            client.wait(10)
            runtime.evaluate_detectors()
        firing = [a for g in runtime.grouper.groups.values() for a in g.alerts.values()]
        assert {(a.name, a.service, a.source) for a in firing} >= {
            ("MetricAnomaly", "inventory", "detector")}
    finally:
        runtime.stop()
        client.close()
        server.stop()


def test_unreadable_detector_memory_is_named_and_the_detectors_start_afresh(
    settings: Settings,
) -> None:
    from opsloop.detection import load_detectors

    path = settings.state_dir / "detectors.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    said: list[str] = []
    detectors = load_detectors(load_policies(settings.policies_dir), path, said.append, "prod")
    assert detectors is not None and detectors.series == {}
    assert said and str(path) in said[0]
