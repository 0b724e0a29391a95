"""The security agent against simulated production: findings filed in the inbox are matched
with each service's SBOM; a known-exploited critical in an exposed service is a SEV1 patch
that waits for a human, is deployed, and is verified by rescan (or rolled back when the
release is unhealthy); a critical with no fix is escalated with a mitigation; what does not
apply becomes OpenVEX."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop.environments import new_simulation, open_environment
from opsloop.graph.runner import OperateLoop
from opsloop.models import DecisionOutcome, Severity, Verdict
from opsloop.models.actions import VerificationOutcome
from opsloop.policy import Policies
from opsloop.scheduled import registry
from opsloop.scheduled.agents.security import Security
from opsloop.scheduled.base import AgentContext, Analysis
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.security.inbox import filed, ingest, vex_path
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState, physics
from opsloop.simulator.fleet import new_state
from opsloop.simulator.state import VersionBehaviour
from opsloop.store import IncidentStore

DATA = Path(__file__).parent / "data" / "security"
LOG4SHELL = ["trivy-api-gateway.json", "grype-api-gateway.json", "kev.json"]


@pytest.fixture(scope="module")
def fleet() -> SimState:
    state = new_state(5, "security-test", 60)
    while state.tick < 0:
        physics.step(state)
    return state


def file_reports(settings: Settings, names: list[str]) -> None:
    ingest(settings.state_dir, [DATA / n for n in names])


def analyse(state: SimState, settings: Settings, policies: Policies) -> Analysis:
    env = SimEnvironment(copy.deepcopy(state))
    store = IncidentStore(settings.state_dir / "agent.db")
    try:
        ctx = AgentContext(run_id="run-1", agent="security", due_at=env.now(), now=env.now(),
                           settings=settings, policies=policies, telemetry=env, store=store)
        agent = Security()
        observed = json.loads(json.dumps(agent.observe(ctx)))  # checkpointed as JSON
        return agent.analyse(ctx, observed)
    finally:
        store.close()


def test_the_agent_is_registered_and_scheduled(shipped_policies: Policies) -> None:
    assert isinstance(registry.agent("security"), Security)
    assert shipped_policies.schedule.agents["security"].severity is Severity.SEV4


def test_an_empty_inbox_proposes_nothing(fleet: SimState, settings: Settings,
                                         shipped_policies: Policies) -> None:
    analysis = analyse(fleet, settings, shipped_policies)
    assert analysis.proposals == [] and analysis.summary == "no findings filed"


def test_a_known_exploited_critical_on_an_exposed_service_is_a_sev1_patch(
        fleet: SimState, settings: Settings, shipped_policies: Policies) -> None:
    file_reports(settings, LOG4SHELL)
    analysis = analyse(fleet, settings, shipped_policies)
    (proposal,) = analysis.proposals
    assert proposal.action.describe() == "deploy_version(api-gateway, to_version=2.9.5)"
    assert proposal.hypothesis_id == "CVE-2021-44228"
    assert analysis.severity is Severity.SEV1
    assert analysis.severity_rule == ("severity.yaml:vulnerabilities.rules[0] "
                                      "sev1-exploited-exposed")
    (found,) = [f for f in analysis.findings if f.subject == "api-gateway"]
    assert found.data["clears"] == ["CVE-2021-44228", "CVE-2021-44832"]


def test_without_the_kev_catalogue_the_same_finding_is_not_sev1(
        fleet: SimState, settings: Settings, shipped_policies: Policies) -> None:
    file_reports(settings, LOG4SHELL[:2])
    analysis = analyse(fleet, settings, shipped_policies)
    assert analysis.severity is Severity.SEV2  # critical + exposed, nobody known to exploit it


def test_a_critical_with_no_fix_is_escalated_with_a_mitigation(
        fleet: SimState, settings: Settings, shipped_policies: Policies) -> None:
    file_reports(settings, ["osv-receipt-render.json"])
    analysis = analyse(fleet, settings, shipped_policies)
    assert analysis.proposals == []
    (found,) = [f for f in analysis.findings if f.kind == "vulnerability_mitigate"]
    assert (found.subject, found.level) == ("checkout", "critical")
    assert found.data["rule"] == "severity.yaml:vulnerabilities.rules[4] sev2-critical-no-fix"
    assert "receipt-render" in found.data["mitigation"]
    mitigations = [s for s in analysis.signals if "vulnerability_mitigation" in Path(s).name]
    assert len(mitigations) == 1
    assert "receipt-render" in Path(mitigations[0]).read_text()


def test_an_unused_package_is_recorded_as_vex_not_affected(
        fleet: SimState, settings: Settings, shipped_policies: Policies) -> None:
    file_reports(settings, ["osv-snakeyaml.json"])
    analysis = analyse(fleet, settings, shipped_policies)
    assert analysis.proposals == []
    vex = json.loads(vex_path(settings.work_dir).read_text())
    search = [s for s in vex["statements"]
              if s["products"][0]["@id"] == "pkg:generic/opsloop/search@4.7.3"]
    assert [(s["vulnerability"]["name"], s["justification"]) for s in search] == [
        ("CVE-2022-1471", "vulnerable_code_not_in_execute_path")]
    assert analysis.reports == [str(vex_path(settings.work_dir))]


def test_filing_an_unreadable_report_files_nothing(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "scan.json"
    bad.write_text("{not json")
    from opsloop.security.finding import IntakeError
    with pytest.raises(IntakeError, match=r"scan\.json: line 1"):
        ingest(settings.state_dir, [DATA / "kev.json", bad])
    assert filed(settings.state_dir) == []


def _scheduled(state: SimState, settings: Settings, policies: Policies,
               make_loop: Callable[[Settings], OperateLoop]
               ) -> tuple[object, OperateLoop, RunLedger, str]:
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.state = copy.deepcopy(state)
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    now = env.now()
    env.close()
    loop = OperateLoop(settings, policies, make_loop(settings).runbooks)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
    return scheduler.run_now("security", now + timedelta(seconds=1)), loop, ledger, ref


def _running(settings: Settings, ref: str, service: str) -> str:
    env = open_environment(ref, settings)
    try:
        return next(s.version for s in env.services() if s.name == service)
    finally:
        env.close()


@pytest.mark.parametrize("healthy", [True, False])
def test_the_sev1_patch_waits_for_a_human_and_is_verified_by_rescan_or_rolled_back(
        healthy: bool, fleet: SimState, settings: Settings, shipped_policies: Policies,
        make_loop: Callable[[Settings], OperateLoop]) -> None:
    state = copy.deepcopy(fleet)
    if not healthy:  # the patch release throws on a third of requests
        state.services["api-gateway"].versions["2.9.5"] = VersionBehaviour(error_ratio=0.3)
    file_reports(settings, LOG4SHELL)
    run, loop, ledger, ref = _scheduled(state, settings, shipped_policies, make_loop)
    try:
        assert run.status == "awaiting_approval", run.error  # type: ignore[attr-defined]
        (request,) = loop.pending()
        record = loop.store.get_incident(request.incident_id)
        assert record.severity is Severity.SEV1
        assert any(e.kind.value == "war_room" for e in record.timeline)
        loop.decide(request.id, Verdict.APPROVE, "on-call", "patch now")
        record = loop.store.get_incident(request.incident_id)
        (case,) = record.actions
        assert case.decision is not None
        assert case.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
        rescan = next(c for c in case.checks if c.name == "rescan CVE-2021-44228")
        assert rescan.ok  # 2.9.5's SBOM carries log4j-core 2.17.1
        assert record.verification is not None
        if healthy:
            assert record.verification.outcome is VerificationOutcome.RECOVERED
            assert _running(settings, ref, "api-gateway") == "2.9.5"
        else:
            assert record.verification.rolled_back
            assert _running(settings, ref, "api-gateway") == "2.9.4"
    finally:
        loop.close()
        ledger.close()


def test_a_patch_the_rescan_still_finds_is_reverted(
        fleet: SimState, settings: Settings, shipped_policies: Policies,
        make_loop: Callable[[Settings], OperateLoop], tmp_path: Path) -> None:
    file_reports(settings, LOG4SHELL)
    _run, loop, ledger, ref = _scheduled(copy.deepcopy(fleet), settings, shipped_policies,
                                         make_loop)
    try:
        (request,) = loop.pending()
        # While the patch waits, the advisory is revised: the fix in 2.17.1 was incomplete.
        revised = tmp_path / "GHSA-jfh8-c2jp-5v3q.json"
        revised.write_text(json.dumps({
            "schema_version": "1.6.0", "id": "GHSA-jfh8-c2jp-5v3q",
            "aliases": ["CVE-2021-44228"], "modified": "2026-11-30T09:00:00Z",
            "affected": [{"package": {"ecosystem": "Maven",
                                      "name": "org.apache.logging.log4j:log4j-core",
                                      "purl": "pkg:maven/org.apache.logging.log4j/log4j-core"},
                          "ranges": [{"type": "ECOSYSTEM",
                                      "events": [{"introduced": "2.0"}, {"fixed": "2.18.0"}]}]}]}))
        ingest(settings.state_dir, [revised])
        loop.decide(request.id, Verdict.APPROVE, "on-call", "patch now")
        record = loop.store.get_incident(request.incident_id)
        (case,) = record.actions
        rescan = next(c for c in case.checks if c.name == "rescan CVE-2021-44228")
        assert not rescan.ok and rescan.outcome is VerificationOutcome.NO_EFFECT
        assert record.verification is not None and record.verification.rolled_back
        assert _running(settings, ref, "api-gateway") == "2.9.4"
    finally:
        loop.close()
        ledger.close()


class _GarbledWebSbom(SimEnvironment):
    """Production whose web SBOM publisher writes a broken document."""

    def sbom(self, service: str, version: str | None = None) -> dict[str, Any]:
        if service == "web":
            return {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": "none"}
        return super().sbom(service, version)


def test_an_unreadable_sbom_is_named_and_the_other_services_are_still_judged(
        fleet: SimState, settings: Settings, shipped_policies: Policies) -> None:
    file_reports(settings, LOG4SHELL)
    env = _GarbledWebSbom(copy.deepcopy(fleet))
    store = IncidentStore(settings.state_dir / "agent.db")
    try:
        ctx = AgentContext(run_id="run-1", agent="security", due_at=env.now(), now=env.now(),
                           settings=settings, policies=shipped_policies, telemetry=env,
                           store=store)
        agent = Security()
        analysis = agent.analyse(ctx, json.loads(json.dumps(agent.observe(ctx))))
    finally:
        store.close()
    broken = [f for f in analysis.findings if f.kind == "sbom_unavailable"]
    assert [(f.subject, f.level) for f in broken] == [("web", "warning")]
    assert [p.action.service for p in analysis.proposals] == ["api-gateway"]
