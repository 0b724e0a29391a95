"""Replaying stored incidents' actions under other policies: only the policies differ."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsloop.cli.main import main
from opsloop.models import (
    ActionCase,
    ActionResult,
    ActionStatus,
    Anomaly,
    Approval,
    DecisionOutcome,
    EventKind,
    Incident,
    IncidentStatus,
    ParamValue,
    RemediationAction,
    RemediationProposal,
    Severity,
    TimelineEvent,
    Verdict,
    Verification,
    VerificationCheck,
)
from opsloop.policy import GuardrailContext, Policies, decide, load_policies
from opsloop.policy.replay import recorded_facts, replay
from opsloop.settings import REPO_ROOT, Settings
from opsloop.store import IncidentStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def recorded(n: int, policies: Policies, *, action: str, service: str, severity: Severity,
             params: dict[str, ParamValue] | None = None, replicas: int | None = None,
             verdict: Verdict | None = Verdict.APPROVE, failed: bool = False,
             alert: str = "HighErrorRate", at: datetime | None = None,
             environment: str = "sim:test") -> Incident:
    """INC-<n> as the loop would have stored it: the decision is `decide`'s under `policies`
    with what production showed (`replicas`), then the human's answer, the result and the
    verification."""
    opened = at or T0 + timedelta(hours=3 * n)
    act = RemediationAction(id=f"a{n}", type=action, service=service, params=params or {})
    decision = decide(act, severity, policies, GuardrailContext(current_replicas=replicas))
    asked = decision.outcome is DecisionOutcome.NEEDS_APPROVAL
    approval = (Approval(request_id=f"r{n}", verdict=verdict, by="sre", at=opened
                         + timedelta(minutes=4)) if asked and verdict is not None else None)
    ran = decision.outcome is DecisionOutcome.AUTO or (
        approval is not None and approval.verdict is not Verdict.REJECT)
    undo = ({"kind": "scale", "service": service, "replicas": replicas}
            if replicas is not None else {})
    result = (ActionResult(action_id=act.id, action=act.describe(), idempotency_key=f"k{n}",
                           status=ActionStatus.SUCCEEDED, at=opened + timedelta(minutes=5),
                           undo=undo) if ran else None)
    checks = ([VerificationCheck(name="error_ratio", service=service,
                                 observed=0.2 if failed else 0.001, threshold=0.05,
                                 ok=not failed)] if ran else [])
    case = ActionCase(
        proposal=RemediationProposal(action=act, specialist="remediation",
                                     hypothesis_id=f"h{n}", confidence=0.9),
        decision=decision, requested_at=opened + timedelta(minutes=1) if asked else None,
        approval=approval, result=result, checks=checks)
    if not ran:
        status = IncidentStatus.REJECTED if approval is not None else IncidentStatus.ESCALATED
    else:
        status = IncidentStatus.ESCALATED if failed else IncidentStatus.MITIGATED
    return Incident(
        id=f"INC-{n:04d}", title=f"{service} trouble", environment=environment,
        group_key=f"g{n}", services=[service], opened_at=opened, status=status,
        severity=severity,
        anomalies=[Anomaly(fingerprint=f"fp{n}", starts_at=opened,
                           labels={"alertname": alert, "service": service})],
        actions=[case],
        verification=(Verification(passed=not failed, at=opened + timedelta(minutes=15),
                                   window_minutes=10) if ran else None),
        timeline=[TimelineEvent(at=opened + timedelta(minutes=1), kind=EventKind.DECISION,
                                message=decision.rule,
                                data={"action_id": act.id, "outcome": decision.outcome.value})])


def alert_only(n: int, alert: str, service: str = "search") -> Incident:
    """INC-<n>: opened by `alert`, nothing proposed, handed to a human."""
    opened = T0 + timedelta(hours=3 * n)
    return Incident(id=f"INC-{n:04d}", title=f"{alert} on {service}", environment="sim:test",
                    group_key=f"g{n}", services=[service], opened_at=opened,
                    status=IncidentStatus.ESCALATED, severity=Severity.SEV4,
                    anomalies=[Anomaly(fingerprint=f"fp{n}", starts_at=opened,
                                       labels={"alertname": alert, "service": service})])


def policies_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the shipped policies with one line of remediation.yaml changed."""
    target = tmp_path / "proposed"
    shutil.copytree(REPO_ROOT / "policies", target)
    path = target / "remediation.yaml"
    text = path.read_text()
    assert old in text  # the change really is made
    path.write_text(text.replace(old, new))
    return target


SCALE_IN_AUTO = ("    outcome: needs_approval\n    params:\n      replicas: {type: int, "
                 "required: true, min: 1, max: 500}\n  disable_flag:")


@pytest.fixture
def relaxed(tmp_path: Path) -> Policies:
    """scale_in no longer needs approval (the severity ceiling decides)."""
    old = SCALE_IN_AUTO
    return load_policies(policies_with(tmp_path, old, old.replace(
        "    outcome: needs_approval\n", "")))


def test_same_policies_change_nothing_and_match_what_was_recorded(
        shipped_policies: Policies) -> None:
    incidents = [recorded(1, shipped_policies, action="scale_in", service="recommendations",
                          severity=Severity.SEV3, params={"replicas": 8}, replicas=10),
                 recorded(2, shipped_policies, action="restart", service="checkout",
                          severity=Severity.SEV2)]
    result = replay(incidents, shipped_policies, shipped_policies)
    assert len(result.actions) == 2
    assert result.changed == []
    assert not any(a.drift for a in result.actions)


def test_relaxing_scale_in_moves_approved_scale_ins_to_auto(
        shipped_policies: Policies, relaxed: Policies) -> None:
    incidents = [recorded(n, shipped_policies, action="scale_in", service="recommendations",
                          severity=Severity.SEV3, params={"replicas": 8}, replicas=10)
                 for n in (1, 2)]
    result = replay(incidents, shipped_policies, relaxed)
    moved = result.moved(DecisionOutcome.NEEDS_APPROVAL, DecisionOutcome.AUTO)
    assert [a.incident_id for a in moved] == ["INC-0001", "INC-0002"]
    assert moved[0].before.rule == "remediation.yaml:actions.scale_in.outcome.SEV3"
    assert moved[0].after.rule == "remediation.yaml:severities.SEV3"
    assert result.transitions() == {"needs_approval -> auto": 2}


def test_what_the_actuator_replaced_is_the_replica_count_the_replay_uses(
        shipped_policies: Policies, relaxed: Policies) -> None:
    known = recorded(1, shipped_policies, action="scale_in", service="recommendations",
                     severity=Severity.SEV3, params={"replicas": 8}, replicas=10)
    facts, unknown = recorded_facts(known, known.actions[0])
    assert (facts.current_replicas, unknown) == (10, [])
    # Without the count, the relaxed policy still sends it to a human, as it would live.
    lost = recorded(2, shipped_policies, action="scale_in", service="recommendations",
                    severity=Severity.SEV3, params={"replicas": 8}, replicas=None)
    (row,) = replay([lost], shipped_policies, relaxed).actions
    assert row.unknown == ("current_replicas",)
    assert row.after.outcome is DecisionOutcome.NEEDS_APPROVAL
    assert row.after.rule == "remediation.yaml:actions.scale_in"


def test_automatic_actions_elsewhere_in_the_hour_count_against_the_rate_limit(
        shipped_policies: Policies, relaxed: Policies) -> None:
    at = T0 + timedelta(days=1)
    earlier = [recorded(10 + k, shipped_policies, action="restart", service="recommendations",
                        severity=Severity.SEV3, at=at - timedelta(minutes=50 - k))
               for k in range(3)]  # three automatic restarts in the hour before
    target = recorded(20, shipped_policies, action="scale_in", service="recommendations",
                      severity=Severity.SEV3, params={"replicas": 8}, replicas=10, at=at)
    row = replay([*earlier, target], shipped_policies, relaxed).actions[-1]
    assert row.after.outcome is DecisionOutcome.NEEDS_APPROVAL
    assert row.after.rule == "remediation.yaml:rate_limits.max_auto_per_service_per_hour"
    # The same restarts in another production do not count.
    elsewhere = [i.model_copy(update={"environment": "sim:other"}) for i in earlier]
    row = replay([*elsewhere, target], shipped_policies, relaxed).actions[-1]
    assert row.after.outcome is DecisionOutcome.AUTO


def test_eval_replay_prints_what_would_change_and_json(
        tmp_path: Path, shipped_policies: Policies, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    store = IncidentStore(Settings(work_dir=work).state_dir / "opsloop.db")
    for n in (1, 2):
        store.save_incident(recorded(n, shipped_policies, action="scale_in",
                                     service="recommendations", severity=Severity.SEV3,
                                     params={"replicas": 8}, replicas=10))
    store.save_incident(recorded(3, shipped_policies, action="restart", service="checkout",
                                 severity=Severity.SEV2))
    store.close()
    proposed = policies_with(tmp_path, SCALE_IN_AUTO,
                             SCALE_IN_AUTO.replace("    outcome: needs_approval\n", ""))

    assert main(["--work-dir", str(work), "eval", "replay", "--policies", str(proposed)]) == 0
    out = capsys.readouterr().out
    assert "INC-0001" in out and "INC-0002" in out and "INC-0003" not in out
    assert "needs_approval -> auto: 2" in out

    assert main(["--work-dir", str(work), "eval", "replay", "--policies", str(proposed),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["incidents"], data["actions"], data["changed"]) == (3, 3, 2)
    first = data["rows"][0]
    assert first["before"] == {"outcome": "needs_approval",
                               "rule": "remediation.yaml:actions.scale_in.outcome.SEV3"}
    assert first["after"] == {"outcome": "auto", "rule": "remediation.yaml:severities.SEV3"}


def test_eval_replay_refuses_without_a_policies_dir_and_creates_no_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    assert main(["--work-dir", str(work), "eval", "replay"]) == 1
    assert "eval replay needs --policies DIR" in capsys.readouterr().err
    assert main(["--work-dir", str(work), "eval", "replay", "--policies",
                 str(tmp_path / "nope")]) == 1
    assert "not a directory" in capsys.readouterr().err
    assert main(["--work-dir", str(work), "eval", "replay", "--policies",
                 str(REPO_ROOT / "policies"), "--case", "simulated/*"]) == 1
    assert "--case: not for `eval replay`" in capsys.readouterr().err
    broken = policies_with(tmp_path, "max_auto_per_incident: 5", "max_auto_per_incident: -1")
    assert main(["--work-dir", str(work), "eval", "replay", "--policies", str(broken)]) == 1
    assert "max_auto_per_incident" in capsys.readouterr().err
    assert not (work / "state" / "opsloop.db").exists()
