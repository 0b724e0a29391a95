"""Watching a simulated production: observe every minute, group alerts, run each incident.

This is the embedded default's observe stage. Agents never see the scenario: they get the
incident the alerts opened and whatever the tools return.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsloop.detection import MetricDetectors
from opsloop.environments import new_simulation
from opsloop.graph.runner import OperateLoop
from opsloop.intake import AlertGrouper
from opsloop.models import Anomaly, Incident
from opsloop.observe import ENVIRONMENT, evaluate_rules
from opsloop.policy import Policies
from opsloop.policy.health import burn_rate_anomalies
from opsloop.simulator import SimEnvironment, get_scenario
from opsloop.tools.protocols import Telemetry

Progress = Callable[[str], None]

# Burn rates move slowly; evaluating them every few minutes is what Prometheus rule groups do.
SLO_EVALUATION_EVERY_MINUTES = 5


@dataclass
class ScenarioRun:
    scenario: str
    seed: int
    environment: str
    fault_at: datetime
    detected_at: datetime | None = None
    incidents: list[Incident] = field(default_factory=list)
    loop_seconds: list[float] = field(default_factory=list)  # wall time inside the graph


def observe(
    policies: Policies,
    telemetry: Telemetry,
    now: datetime,
    minute: int,
    detectors: MetricDetectors | None = None,
) -> list[Anomaly]:
    """Everything that fires this minute: alert rules, the anomaly detectors (when the policy
    has them), and SLO burn rates every few minutes."""
    anomalies = evaluate_rules(policies.alerts.rules, telemetry, now)
    if detectors is not None:
        anomalies += detectors.observe(telemetry, now)
    if minute % SLO_EVALUATION_EVERY_MINUTES == 0:
        anomalies += burn_rate_anomalies(policies, telemetry, now, labels={"env": ENVIRONMENT})
    return anomalies


def metric_detectors(policies: Policies) -> MetricDetectors | None:
    """One set of streaming detectors for a watch, if alerts.yaml asks for them."""
    policy = policies.alerts.detectors
    return MetricDetectors(policy, ENVIRONMENT) if policy is not None else None


def detect(loop: OperateLoop, name: str, seed: int) -> tuple[ScenarioRun, SimEnvironment]:
    """Simulate the scenario minute by minute until alerts open incidents (not yet run)."""
    scenario = get_scenario(name)
    ref, env = new_simulation(name, seed, loop.settings)
    grouper = AlertGrouper(loop.policies.intake, ref, loop.store.next_incident_id)
    run = ScenarioRun(
        scenario=name,
        seed=seed,
        environment=ref,
        fault_at=env.now() + timedelta(minutes=scenario.fault_at_minute),
    )
    # Detection replays deterministically from the seed: save once when it ends, not on
    # every simulated minute (actions and the loop's waits still save as they happen).
    path, env.autosave_path = env.autosave_path, None
    detectors = metric_detectors(loop.policies)
    for minute in range(1, scenario.run_minutes + 1):
        env.wait(1)
        now = env.now()
        anomalies = observe(loop.policies, env, now, minute, detectors)
        if anomalies and run.detected_at is None:
            run.detected_at = min(a.starts_at for a in anomalies)
        grouper.ingest(anomalies, now)
        run.incidents = grouper.due(now)
        if run.incidents:
            break  # the demo follows the first incidents round the loop
    env.autosave_path = path
    if path is not None:
        env.save(path)
    return run, env


def run_scenario(loop: OperateLoop, name: str, seed: int, progress: Progress) -> ScenarioRun:
    """Detect, then take every incident the alerts opened round the loop."""
    run, env = detect(loop, name, seed)
    if not run.incidents:
        progress(f"{name}: no alert fired in {get_scenario(name).run_minutes} simulated minutes")
    finished = []
    for incident in run.incidents:
        progress(f"{name}: {incident.id} opened at {incident.opened_at:%H:%M} — {incident.title}")
        started = time.perf_counter()
        finished.append(loop.start(incident, env))
        run.loop_seconds.append(time.perf_counter() - started)
    run.incidents = finished
    return run
