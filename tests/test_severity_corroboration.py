"""Severity with corroboration: impact only one metric of one service shows — its other
metrics, its callers and its logs as they were — is flagged as a possible telemetry failure
and capped by severity.yaml; the same spike with anything independent behind it is not."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from langgraph.runtime import Runtime
from test_policy_support import FixedTelemetry, copy_policies, edit, shipped, steady

from opsloop import watch
from opsloop.graph.nodes.triage import triage
from opsloop.graph.runner import OperateLoop
from opsloop.models import Anomaly, EventKind, Incident, Severity
from opsloop.policy import PolicyError, load_policies
from opsloop.policy.impact import corroborate, departure
from opsloop.policy.severity import cap_uncorroborated
from opsloop.simulator import SimEnvironment
from opsloop.simulator.state import SimState

Corrupt = Callable[[SimState], None]


@pytest.fixture(scope="module")
def healthy() -> SimState:
    """The fleet at 09:00 with two healthy hours behind it (bad_deploy's fault is at 09:20)."""
    return SimEnvironment.create("bad_deploy", seed=7).state


def triaged(loop: OperateLoop, state: SimState, *changes: Corrupt) -> Incident:
    """An incident on checkout, triaged against a copy of `state` with `changes` applied."""
    env = SimEnvironment(copy.deepcopy(state))
    for change in changes:
        change(env.state)
    alert = Anomaly(fingerprint="f1", labels={"alertname": "HighErrorRate",
                                              "service": "checkout"},
                    starts_at=env.now(), source="rules")
    incident = Incident(id=loop.store.next_incident_id(), title="checkout errors",
                        environment="sim:test", group_key="{}", opened_at=env.now(),
                        services=["checkout"], anomalies=[alert])
    out: Incident = triage({"incident": incident}, Runtime(context=loop.context(env)))["incident"]
    return out


def last_minutes(service: str, metric: str, value: float, minutes: int = 5) -> Corrupt:
    """The series reads `value` for its last minutes: what a broken exporter would report."""
    def change(state: SimState) -> None:
        state.series[service][metric][-minutes:] = [value] * minutes
    return change


def error_lines(service: str, count: int) -> Corrupt:
    def change(state: SimState) -> None:
        for n in range(count):
            state.log(service, "ERROR", f"request {n} failed: upstream reset", tick=state.tick)
    return change


spike = last_minutes("checkout", "error_ratio", 0.4)


def test_a_lone_metric_spike_is_capped_and_flagged(loop: OperateLoop,
                                                    healthy: SimState) -> None:
    incident = triaged(loop, healthy, spike)
    assert incident.impact is not None and incident.impact.error_ratio == pytest.approx(0.4)
    assert incident.severity is Severity.SEV3  # severity.yaml's corroboration cap
    assert incident.severity_rule.startswith("severity.yaml:corroboration")
    assert "sev1-tier1-outage" in incident.severity_rule  # the rule it overrode is named
    entry = incident.timeline[0]
    assert entry.kind is EventKind.TRIAGED
    assert "possible telemetry failure" in entry.message
    assert "error_ratio on checkout" in entry.message
    assert entry.data["possible_telemetry_failure"] is True and entry.data["uncapped"] == "SEV1"
    assert incident.notifications == []  # no SEV1 page, no war room for an unbacked number
    [record] = [r for r in loop.store.audit_log(incident.id) if r.kind == "severity"]
    assert record.detail["corroboration"]["signals"] == []


@pytest.mark.parametrize("backing", [
    pytest.param(last_minutes("api-gateway", "error_ratio", 0.08), id="caller-errors"),
    pytest.param(last_minutes("api-gateway", "latency_p99_ms", 900.0), id="caller-latency"),
    pytest.param(error_lines("checkout", 12), id="error-logs"),
    pytest.param(last_minutes("checkout", "latency_p99_ms", 1500.0), id="another-metric"),
])
def test_the_same_spike_with_corroboration_keeps_its_severity(
        loop: OperateLoop, healthy: SimState, backing: Corrupt) -> None:
    incident = triaged(loop, healthy, spike, backing)
    assert incident.severity is Severity.SEV1
    assert incident.severity_rule == "severity.yaml:rules[0] sev1-tier1-outage"
    assert "possible telemetry failure" not in incident.timeline[0].message


def test_a_real_outage_is_not_capped(loop: OperateLoop) -> None:
    run, env = watch.detect(loop, "bad_deploy", seed=7)
    [incident] = run.incidents
    out: Incident = triage({"incident": incident}, Runtime(context=loop.context(env)))["incident"]
    assert out.severity is Severity.SEV1 and out.severity_rule.endswith("sev1-tier1-outage")
    backing = corroborate(incident.services, env, loop.policies)
    assert backing is not None and not backing.uncorroborated
    assert any(s.startswith("caller ") for s in backing.signals)
    assert any("error-level log lines" in s for s in backing.signals)


def test_without_a_corroboration_policy_the_impact_is_taken_at_face_value(
        loop: OperateLoop, healthy: SimState) -> None:
    policies = loop.policies
    loop.policies = policies.model_copy(update={
        "severity": policies.severity.model_copy(update={"corroboration": None})})
    try:
        assert triaged(loop, healthy, spike).severity is Severity.SEV1
    finally:
        loop.policies = policies


def test_a_healthy_fleet_has_nothing_to_corroborate(loop: OperateLoop,
                                                    healthy: SimState) -> None:
    backing = corroborate(["checkout"], SimEnvironment(copy.deepcopy(healthy)), loop.policies)
    assert backing is not None and backing.spike is None and not backing.uncorroborated


def test_the_cap_only_ever_lowers_a_severity() -> None:
    policy = shipped().severity
    assert cap_uncorroborated(Severity.SEV2, "r", True, policy)[0] is Severity.SEV3
    assert cap_uncorroborated(Severity.SEV4, "r", True, policy) == (Severity.SEV4, "r")
    assert cap_uncorroborated(Severity.SEV1, "r", False, policy) == (Severity.SEV1, "r")


def test_departure_is_judged_against_the_services_own_baseline() -> None:
    rule = shipped().severity.corroboration
    assert rule is not None
    noisy = [100.0 + (n % 7) * 3 for n in range(60)]  # its own spread: a few percent
    telemetry = (FixedTelemetry()
                 .set("checkout", "requests_per_second", noisy + steady(104.0, 5))
                 .set("search", "requests_per_second", noisy + steady(300.0, 5))
                 .set("web", "requests_per_second", steady(100.0, 60) + steady(110.0, 5)))
    assert departure(telemetry, "checkout", "requests_per_second", 5, rule) == 0.0
    assert departure(telemetry, "search", "requests_per_second", 5, rule) >= rule.deviation
    # A flat history has no spread; a 10% move is still under the policy's min_change.
    assert departure(telemetry, "web", "requests_per_second", 5, rule) == 0.0
    assert departure(telemetry, "payments", "requests_per_second", 5, rule) == 0.0  # no data


def test_corroboration_names_an_unknown_metric(tmp_path: Path) -> None:
    directory = copy_policies(tmp_path)
    edit(directory, "severity.yaml", "caller_metrics: [error_ratio,",
         "caller_metrics: [error_rate,")
    with pytest.raises(PolicyError, match="error_rate"):
        load_policies(directory)
