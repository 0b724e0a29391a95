"""Watching a simulated production: observe every minute, group alerts, run each incident.

This is the embedded default's observe stage. Agents never see the scenario: they get the
incident the alerts opened and whatever the tools return.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsloop.environments import new_simulation
from opsloop.graph.runner import OperateLoop
from opsloop.intake import AlertGrouper
from opsloop.models import Anomaly, Incident
from opsloop.observe import AlertRule, evaluate_rules
from opsloop.policy.health import burn_rate_anomalies
from opsloop.simulator import get_scenario

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
    loop: OperateLoop, rules: list[AlertRule], env: object, now: datetime, minute: int
) -> list[Anomaly]:
    anomalies = evaluate_rules(rules, env, now)  # type: ignore[arg-type]
    if minute % SLO_EVALUATION_EVERY_MINUTES == 0:
        anomalies += burn_rate_anomalies(loop.policies, env, now, labels={"env": "prod"})  # type: ignore[arg-type]
    return anomalies


def run_scenario(loop: OperateLoop, name: str, seed: int, progress: Progress) -> ScenarioRun:
    scenario = get_scenario(name)
    ref, env = new_simulation(name, seed, loop.settings)
    rules = [AlertRule.model_validate(r.model_dump()) for r in loop.policies.alerts.rules]
    grouper = AlertGrouper(loop.policies.intake, ref, loop.store.next_incident_id)
    start = env.now()
    run = ScenarioRun(
        scenario=name,
        seed=seed,
        environment=ref,
        fault_at=start + timedelta(minutes=scenario.fault_at_minute),
    )
    for minute in range(1, scenario.run_minutes + 1):
        env.wait(1)
        now = env.now()
        anomalies = observe(loop, rules, env, now, minute)
        if anomalies and run.detected_at is None:
            run.detected_at = min(a.starts_at for a in anomalies)
        grouper.ingest(anomalies, now)
        for incident in grouper.due(now):
            progress(f"{name}: {incident.id} opened at {now:%H:%M} — {incident.title}")
            started = time.perf_counter()
            run.incidents.append(loop.start(incident, env))
            run.loop_seconds.append(time.perf_counter() - started)
        if run.incidents:
            break  # the demo follows the first incident round the loop
    if not run.incidents:
        progress(f"{name}: no alert fired in {scenario.run_minutes} simulated minutes")
    return run
