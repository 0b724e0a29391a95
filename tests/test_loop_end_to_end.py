"""Every built-in scenario, all the way round the loop, on the offline default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsloop.graph.runner import OperateLoop
from opsloop.models import DecisionOutcome, EventKind, IncidentStatus, Severity
from opsloop.simulator import SCENARIOS, SimEnvironment
from opsloop.watch import run_scenario

# What policy says must happen to each scenario's first incident: the human steps are
# SEV1 (any action) and scale_in (capacity reduction) — everything else runs and verifies.
WAITS_FOR_A_HUMAN = {"bad_deploy", "dependency_outage", "cost_runaway"}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_goes_round_the_loop(loop: OperateLoop, name: str) -> None:
    run = run_scenario(loop, name, seed=7, progress=lambda _m: None)
    assert len(run.incidents) == 1
    incident = run.incidents[0]
    expected = SCENARIOS[name].expected

    assert incident.root_cause is not None and not incident.novel
    assert incident.root_cause.category == expected.category
    assert incident.root_cause.service == expected.service
    chosen = next(d for d in incident.diagnoses if d.top and d.top.id == incident.root_cause.id)
    assert chosen.specialist == expected.specialist
    assert [c.action.type for c in incident.actions] == [expected.action]
    outcomes = [c.decision.outcome if c.decision else None for c in incident.actions]

    if name in WAITS_FOR_A_HUMAN:
        assert incident.status is IncidentStatus.AWAITING_APPROVAL
        assert outcomes == [DecisionOutcome.NEEDS_APPROVAL]
        assert [c.result for c in incident.actions] == [None] and incident.verification is None
        assert [r.id for r in loop.pending()] == [incident.actions[0].id]
        # The waiting record's timeline is the graph's, up to the decision that asks a human.
        assert incident.timeline[-1].kind is EventKind.DECISION
    else:
        assert incident.status is IncidentStatus.MITIGATED
        assert outcomes == [DecisionOutcome.AUTO]
        assert incident.verification is not None and incident.verification.passed
        assert all(c.succeeded for c in incident.actions)
        assert loop.pending() == []


def test_sev1_waits_for_a_human_and_pages(loop: OperateLoop) -> None:
    incident = run_scenario(loop, "bad_deploy", seed=7, progress=lambda _m: None).incidents[0]
    assert incident.severity is Severity.SEV1
    outbox = [json.loads(line) for line in
              (loop.settings.work_dir / "notifications.jsonl").read_text().splitlines()]
    # Paged and told at triage, then the approval request: once, though the node re-runs.
    assert [n["channel"] for n in outbox] == ["page", "#incidents", "#ops", "#ops"]
    assert all(incident.id in n["message"] for n in outbox)
    assert "waits for approval" in outbox[-1]["message"]
    assert outbox[-1]["data"]["approval"] == incident.actions[0].id
    war_room = (loop.settings.warrooms_dir / f"{incident.id}.md").read_text()
    assert "status: open" in war_room and "HighErrorRate" in war_room


def test_sev2_auto_remediates_and_notifies(loop: OperateLoop) -> None:
    incident = run_scenario(loop, "flag_rollout_errors", 7, lambda _m: None).incidents[0]
    assert incident.severity is Severity.SEV2
    decision = incident.actions[0].decision
    assert decision is not None and decision.notify
    outbox = (loop.settings.work_dir / "notifications.jsonl").read_text()
    assert "ran disable_flag" in outbox and "#ops" in outbox
    assert incident.postmortem_path and Path(incident.postmortem_path).exists()


def test_sev3_auto_remediates_without_notifying_or_postmortem(loop: OperateLoop) -> None:
    incident = run_scenario(loop, "memory_leak", 7, lambda _m: None).incidents[0]
    assert incident.severity is Severity.SEV3
    assert not (loop.settings.work_dir / "notifications.jsonl").exists()
    assert incident.postmortem_path is None


def test_the_fix_really_changed_production(loop: OperateLoop) -> None:
    run = run_scenario(loop, "latency_regression", 7, lambda _m: None)
    env = SimEnvironment.load(loop.settings.environments_dir / f"{run.environment[4:]}.json")
    search = next(s for s in env.services() if s.name == "search")
    action = run.incidents[0].actions[0].action
    assert search.version == action.params["to_version"]


def test_audit_log_records_every_decision_and_action(loop: OperateLoop) -> None:
    incident = run_scenario(loop, "disk_filling", 7, lambda _m: None).incidents[0]
    kinds = [r.kind for r in loop.store.audit_log(incident.id)]
    for kind in ("opened", "severity", "decision", "action", "verification", "closed"):
        assert kind in kinds


def test_stored_incident_matches_the_returned_one(loop: OperateLoop) -> None:
    incident = run_scenario(loop, "traffic_surge", 7, lambda _m: None).incidents[0]
    stored = loop.store.get_incident(incident.id)
    assert stored == incident
    kinds = [e.kind for e in stored.timeline]
    assert kinds[0] == "first_signal"
    assert kinds.count("alert") == len(incident.anomalies)
    assert kinds.index("alert") < kinds.index("opened")
    assert kinds.index("triaged") < kinds.index("routed") < kinds.index("diagnosed")
    assert kinds.index("decision") < kinds.index("action") < kinds.index("verified")
