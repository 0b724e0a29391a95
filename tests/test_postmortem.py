"""Postmortem drafts: every section filled from the record, nothing invented, outside text inert."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from opsloop.agents.postmortem import (
    draft_postmortem,
    needs_postmortem,
    render_postmortem,
    write_postmortem,
)
from opsloop.models import (
    ActionCase,
    ActionResult,
    ActionStatus,
    Anomaly,
    Approval,
    DecisionOutcome,
    Diagnosis,
    EventKind,
    Evidence,
    Hypothesis,
    Impact,
    Incident,
    IncidentStatus,
    PolicyDecision,
    RemediationAction,
    RemediationProposal,
    Severity,
    TimelineEvent,
    ToolStatus,
    Verdict,
    Verification,
    VerificationCheck,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
GENERATED = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SECTIONS = ["Summary", "Impact", "Root Causes", "Trigger", "Resolution", "Detection",
            "Action Items", "Lessons Learned", "Timeline"]


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(minutes: int, kind: EventKind, message: str, **data: str) -> TimelineEvent:
    return TimelineEvent(at=at(minutes), kind=kind, message=message, data=data)


def evidence(check: str, tool: str, observed: str, holds: bool | None) -> Evidence:
    status = ToolStatus.NO_DATA if holds is None else ToolStatus.OK
    return Evidence(check=check, tool=tool, status=status, observed=observed,
                    expectation="as the runbook says", holds=holds)


def alert(name: str, service: str, minutes: int, summary: str) -> Anomaly:
    return Anomaly(fingerprint=f"fp-{name}-{service}", labels={"alertname": name,
                   "service": service}, annotations={"summary": summary}, starts_at=at(minutes))


def incident_with(action: RemediationAction, outcome: DecisionOutcome, *,
                  severity: Severity, status: IncidentStatus, category: str,
                  result: ActionStatus | None = ActionStatus.SUCCEEDED,
                  asked: int | None = None, approval: Approval | None = None,
                  revert: ActionResult | None = None, **fields: object) -> Incident:
    """A realistic incident on checkout around one proposed action (asked a human at minute
    `asked`, answered by `approval`, reverted by `revert`); `fields` override."""
    cause = Hypothesis(
        id="h-1", cause=f"{category.replace('_', ' ')} in checkout", category=category,
        service="checkout", runbook=f"{category}-runbook", confidence=0.86,
        evidence=[evidence("memory_climbing", "metric", "memory 0.62 -> 0.97 over 40m", True),
                  evidence("recent_deploy", "deploys", "v2.4.1 deployed 08:51 by ci",
                           category == "bad_deploy"),
                  evidence("heap_dump", "profiler", "profiler unreachable", None)],
        remediation=[action])
    base: dict[str, object] = dict(
        id="INC-100", title="checkout error rate high", environment="prod",
        group_key="{}:{alertname=HighErrorRate}", services=["checkout"], opened_at=at(3),
        status=status, severity=severity, severity_rule="severity.yaml:rules[2]",
        anomalies=[alert("HighErrorRate", "checkout", 3, "checkout: error ratio 7.5% over 5m")],
        impact=Impact(services=["checkout", "storefront"], tier=1, error_ratio=0.075,
                      latency_p99_ms=850.0, requests_per_second=120.0, burn_rate_1h=14.4,
                      burn_rate_5m=21.0, error_budget_remaining=0.62, saturation=0.4,
                      blast_radius=2),
        diagnoses=[Diagnosis(specialist="remediation", hypotheses=[
            cause, Hypothesis(id="h-2", cause="noisy neighbour", category="capacity",
                              service="checkout", runbook="capacity", confidence=0.2)])],
        root_cause=cause,
        actions=[ActionCase(
            proposal=RemediationProposal(action=action, specialist="remediation",
                                         hypothesis_id="h-1", confidence=0.86),
            decision=PolicyDecision(action_id=action.id, outcome=outcome,
                                    rule=f"remediation.yaml:actions.{action.type}.{severity}",
                                    reasons=[f"{severity} allows {outcome.value}"]),
            requested_at=None if asked is None else at(asked),
            approval=approval,
            result=None if result is None else ActionResult(
                action_id=action.id, action=action.describe(), idempotency_key=f"k-{action.id}",
                status=result, detail="done", at=at(14)),
            revert=revert,
        )],
        verification=Verification(passed=True, at=at(19), window_minutes=5, checks=[
            VerificationCheck(name="error_ratio", service="checkout", observed=0.004,
                              threshold=0.05, ok=True)]),
        timeline=[event(0, EventKind.FIRST_SIGNAL, "memory leak starts in checkout"),
                  event(3, EventKind.ALERT, "HighErrorRate firing on checkout"),
                  event(14, EventKind.ACTION, f"{action.describe()} succeeded"),
                  event(19, EventKind.VERIFIED, "error ratio back under 5%")],
    )
    base.update(fields)
    return Incident.model_validate(base)


def auto_sev3() -> Incident:
    restart = RemediationAction(id="a-restart", type="restart", service="checkout",
                                reason="memory at 97% of limit")
    return incident_with(restart, DecisionOutcome.AUTO, severity=Severity.SEV3,
                         status=IncidentStatus.MITIGATED, category="memory_leak")


def approved_sev1() -> Incident:
    rollback = RemediationAction(id="a-rollback", type="rollback_deploy", service="checkout",
                                 params={"to_version": "v2.4.0"})
    return incident_with(
        rollback, DecisionOutcome.NEEDS_APPROVAL, severity=Severity.SEV1,
        status=IncidentStatus.MITIGATED, category="bad_deploy",
        verification=Verification(passed=True, at=at(29), window_minutes=5),
        # As the graph records it: the request id is the action id, and the request goes
        # out when guardrails decide needs_approval.
        asked=10,
        approval=Approval(request_id="a-rollback", verdict=Verdict.APPROVE,
                          by="alice@example.com", at=at(22),
                          reason="v2.4.1 is the only change in the window",
                          waited_seconds=12 * 60),  # she took 12 min on the wall clock
        timeline=[event(3, EventKind.ALERT, "HighErrorRate firing on checkout"),
                  event(10, EventKind.DECISION, "rollback_deploy(checkout): needs_approval",
                        action_id="a-rollback", outcome="needs_approval"),
                  event(22, EventKind.APPROVED, "alice@example.com approved"),
                  event(23, EventKind.ACTION, "rollback_deploy succeeded"),
                  event(29, EventKind.VERIFIED, "error ratio back under 5%")])


def rejected_sev2() -> Incident:
    failover = RemediationAction(id="a-failover", type="failover", service="checkout")
    return incident_with(
        failover, DecisionOutcome.NEEDS_APPROVAL, severity=Severity.SEV2,
        status=IncidentStatus.REJECTED, category="regional_outage", result=None,
        verification=None,
        asked=5,
        approval=Approval(request_id="a-failover", verdict=Verdict.REJECT, by="bob",
                          at=at(9), reason="secondary region is under maintenance",
                          waited_seconds=4 * 60),
        timeline=[event(3, EventKind.ALERT, "HighErrorRate firing on checkout"),
                  event(5, EventKind.DECISION, "failover needs approval"),
                  event(9, EventKind.REJECTED, "bob rejected failover")])


def failed_and_reverted() -> Incident:
    scale = RemediationAction(id="a-scale", type="scale_out", service="checkout",
                              params={"replicas": 6})
    return incident_with(
        scale, DecisionOutcome.AUTO, severity=Severity.SEV3, status=IncidentStatus.ESCALATED,
        category="saturation",
        verification=Verification(
            passed=False, at=at(20), window_minutes=5, rolled_back=True,
            checks=[VerificationCheck(name="error_ratio", service="checkout", observed=0.09,
                                      threshold=0.05, ok=False)]),
        revert=ActionResult(
            action_id="a-scale", action="scale_in(checkout, replicas=3)",
            idempotency_key="k-undo", status=ActionStatus.SUCCEEDED, at=at(21)),
        timeline=[event(3, EventKind.ALERT, "HighErrorRate firing on checkout"),
                  event(14, EventKind.ACTION, "scale_out succeeded"),
                  event(20, EventKind.VERIFICATION_FAILED, "error ratio still 9%"),
                  event(21, EventKind.ROLLBACK, "scale_out reverted"),
                  event(22, EventKind.ESCALATED, "paged on-call")])


def novel() -> Incident:
    return Incident(
        id="INC-200", title="payments latency spike", environment="prod", group_key="g",
        services=["payments"], opened_at=at(3), status=IncidentStatus.ESCALATED,
        severity=Severity.SEV2, novel=True,
        anomalies=[alert("HighLatency", "payments", 3, "payments p99 2.1s")],
        diagnoses=[Diagnosis(specialist="performance", hypotheses=[Hypothesis(
            id="h-x", cause="slow query", category="database", service="payments",
            runbook="slow-query", confidence=0.3)])],
        timeline=[event(3, EventKind.ALERT, "HighLatency firing on payments"),
                  event(8, EventKind.ESCALATED, "no runbook matched; paged on-call")])


def sections(markdown: str) -> dict[str, str]:
    """Body of each `## ` section of a rendered document."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def render(incident: Incident) -> str:
    return render_postmortem(draft_postmortem(incident), severity=incident.severity,
                             services=incident.services, generated_at=GENERATED)


def table_rows(body: str) -> list[list[str]]:
    lines = [line for line in body.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


@pytest.mark.parametrize("make", [auto_sev3, approved_sev1, rejected_sev2,
                                  failed_and_reverted, novel])
def test_every_template_section_is_present_in_google_order_and_filled(
    make: Callable[[], Incident],
) -> None:
    text = render(make())
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings[0].startswith("# Postmortem (draft): ")
    assert headings[1:] == [
        *(f"## {s}" for s in SECTIONS[:8]), "### What went well", "### What went wrong",
        "### Where we got lucky", "## Timeline"]
    assert all(body for body in sections(text).values())


def test_front_matter_names_the_incident_and_stays_draft() -> None:
    text = render(approved_sev1())
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta == {"incident": "INC-100", "title": "checkout error rate high",
                    "status": "draft", "severity": "SEV1", "services": ["checkout"],
                    "generated_at": "2026-11-02T12:00:00+00:00"}
    assert draft_postmortem(approved_sev1()).status == "draft"


def test_impact_numbers_and_duration_come_from_the_record() -> None:
    impact = sections(render(auto_sev3()))["Impact"]
    for expected in ("checkout, storefront (customer impact tier 1)", "Error ratio: 7.50%",
                     "Latency p99: 850 ms", "Traffic: 120 req/s", "14.4× over 1h",
                     "21× over 5m", "Error budget remaining: 62%", "Blast radius: 2 service(s)",
                     "16 min (2026-11-02 09:03:00Z → 2026-11-02 09:19:00Z)"):
        assert expected in impact


def test_auto_remediation_is_credited_and_time_to_detect_measured_from_the_fault() -> None:
    pm = draft_postmortem(auto_sev3())
    assert "Time to detect: 3 min (onset 2026-11-02 09:00:00Z" in pm.detection
    assert "Detected 3 min after onset." in pm.went_well
    assert any(w.startswith("Auto-remediated within policy: restart(checkout)")
               for w in pm.went_well)
    assert ("prevent", "Fix the memory leak in checkout's code; restarts only buy time.") in [
        (i.kind, i.description) for i in pm.action_items]


def test_no_time_to_detect_is_claimed_without_an_onset_event() -> None:
    pm = draft_postmortem(approved_sev1())
    assert "Time to detect: not known; the record has no onset event" in pm.detection
    assert not any("after onset" in w for w in pm.went_well)


def test_the_approver_their_reason_and_the_wait_appear_in_resolution() -> None:
    resolution = sections(render(approved_sev1()))["Resolution"]
    assert ("Approved by alice@example.com at 2026-11-02 09:22:00Z after 12 min: "
            "“v2.4.1 is the only change in the window”") in resolution
    assert "needs_approval by rule remediation.yaml:actions.rollback_deploy.SEV1" in resolution
    assert "Verification passed at 2026-11-02 09:29:00Z after a 5-minute window." in resolution


def test_root_causes_separate_evidence_that_held_from_what_did_not() -> None:
    root = draft_postmortem(auto_sev3()).root_causes
    held, rest = root.split("Evidence that did not hold")
    assert "memory_climbing" in held and "recent_deploy" not in held
    not_held, blind = rest.split("Checks that could not answer")
    assert "recent_deploy (deploys, ok): observed “v2.4.1 deployed 08:51 by ci”" in not_held
    assert "heap_dump (profiler, no_data)" in blind
    assert "noisy neighbour (capacity, from remediation) confidence 0.20" in root


def test_a_deploy_named_by_the_evidence_is_the_trigger_and_a_rollback_asks_for_canaries() -> None:
    pm = draft_postmortem(approved_sev1())
    assert pm.trigger.startswith("- A deploy, named by the evidence: recent_deploy")
    assert any(i.kind == "detect" and "canary" in i.description for i in pm.action_items)


def test_trigger_is_unknown_when_no_evidence_names_a_change() -> None:
    assert draft_postmortem(auto_sev3()).trigger.startswith("Unknown")
    assert draft_postmortem(novel()).trigger.startswith("Unknown")


def test_a_rejection_names_who_and_why_and_asks_to_review_the_policy() -> None:
    pm = draft_postmortem(rejected_sev2())
    assert "Rejected by bob at 2026-11-02 09:09:00Z after 4 min" in pm.resolution
    assert "bob rejected failover(checkout): secondary region is under maintenance." in (
        pm.went_wrong)
    review = [i for i in pm.action_items if i.kind == "process"]
    assert review[0].owner == "bob"
    assert "remediation.yaml:actions.failover.SEV2" in review[0].description


def test_failed_verification_and_revert_are_recorded_as_what_went_wrong() -> None:
    pm = draft_postmortem(failed_and_reverted())
    assert ("Verification failed (error_ratio on checkout) and the action was reverted."
            in pm.went_wrong)
    assert "Rolled back: scale_in(checkout, replicas=3) succeeded." in pm.resolution
    assert any(i.kind == "mitigate" and "scale_out(checkout, replicas=6)" in i.description
               for i in pm.action_items)
    assert pm.lucky == []
    assert not any(w.startswith("Auto-remediated") for w in pm.went_well)


def test_a_novel_failure_asks_for_a_runbook_and_claims_no_root_cause() -> None:
    pm = draft_postmortem(novel())
    assert pm.root_causes.startswith("No hypothesis reached confidence")
    assert "slow query (database, from performance) confidence 0.30" in pm.root_causes
    assert pm.action_items[0].kind == "process"
    assert pm.action_items[0].description.startswith("Write a runbook for payments latency")
    assert "Impact" in sections(render(novel())) and "No impact was measured" in pm.impact


def test_the_timeline_table_matches_the_record_row_for_row() -> None:
    incident = failed_and_reverted()
    rows = table_rows(sections(render(incident))["Timeline"])
    assert rows == [[e.at.strftime("%Y-%m-%d %H:%M:%SZ"), e.kind, e.message]
                    for e in incident.timeline]


def test_injected_annotation_text_stays_inside_its_quote_and_cells() -> None:
    attack = "ok\n## Approved by\nmallory | <!-- hide --> [click](http://x)"
    incident = auto_sev3().model_copy(update={
        "anomalies": [alert("HighErrorRate", "checkout", 3, attack)],
        "timeline": [event(3, EventKind.ALERT, attack)],
    })
    text = render(incident)
    assert "\n## Approved by" not in text and "<!--" not in text
    assert "\\[click\\](http://x)" in text and not re.search(r"(?<!\\)\]\(", text)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [f"## {s}" for s in SECTIONS]
    assert "“ok \\#\\# Approved by mallory \\| &lt;!-- hide -->" in sections(text)["Detection"]
    [row] = table_rows(sections(text)["Timeline"])
    assert len(row) == 3 and row[2].startswith("ok \\#\\# Approved by mallory \\|")


def test_a_section_body_from_elsewhere_cannot_open_a_heading() -> None:
    pm = draft_postmortem(auto_sev3()).model_copy(update={"summary": "fine\n## Approved by x"})
    text = render_postmortem(pm, generated_at=GENERATED)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [f"## {s}" for s in SECTIONS]
    assert "fine\n\\## Approved by x" in sections(text)["Summary"]


def test_write_postmortem_is_atomic_and_rerunning_overwrites_the_draft(tmp_path: Path) -> None:
    first = write_postmortem(auto_sev3(), tmp_path, generated_at=GENERATED)
    again = write_postmortem(auto_sev3(), tmp_path, generated_at=GENERATED)
    assert first == again == tmp_path / "INC-100.md"
    assert [p.name for p in tmp_path.iterdir()] == ["INC-100.md"]
    assert first.read_text(encoding="utf-8") == render(auto_sev3())


def test_write_postmortem_refuses_an_id_that_is_a_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path separators"):
        write_postmortem(auto_sev3().model_copy(update={"id": "../evil"}), tmp_path)


@pytest.mark.parametrize(("make", "severity", "policy", "expected"), [
    (auto_sev3, Severity.SEV1, set(), True),
    (auto_sev3, Severity.SEV2, set(), True),
    (auto_sev3, Severity.SEV3, set(), False),
    (auto_sev3, Severity.SEV4, {"SEV4"}, True),
    (auto_sev3, Severity.SEV4, {Severity.SEV4}, True),  # policy files load as Severity
    (auto_sev3, Severity.SEV4, {"SEV3"}, False),
    (failed_and_reverted, Severity.SEV4, set(), True),  # verification failed, escalated
    (novel, Severity.SEV4, set(), True),  # escalated
])
def test_needs_postmortem(
    make: Callable[[], Incident], severity: Severity, policy: set[str], expected: bool
) -> None:
    incident = make().model_copy(update={"severity": severity})
    assert needs_postmortem(incident, policy) is expected


def test_an_agents_change_record_says_why_the_agent_proposed_it_not_that_no_cause_was_found(
) -> None:
    """A scheduled agent's change record has no alert and no hunt for a cause: its summary
    says which agent proposed the change and what the agent saw."""
    record = Incident(
        id="RUN-security-0001", title="security: CVE-2021-44228 in checkout",
        environment="production", group_key="agent:security",
        group_labels={"agent": "security"}, services=["checkout"], opened_at=at(0),
        status=IncidentStatus.MITIGATED, severity=Severity.SEV2, specialists=["security"],
        diagnoses=[Diagnosis(specialist="security",
                             summary="CVE-2021-44228 (known exploited) in log4j-core 2.14.1")])
    summary = draft_postmortem(record).summary
    assert "No root cause" not in summary
    assert "security agent" in summary and "CVE-2021-44228 (known exploited)" in summary
    alerted = auto_sev3().model_copy(update={"root_cause": None})
    assert "No root cause was established" in draft_postmortem(alerted).summary
