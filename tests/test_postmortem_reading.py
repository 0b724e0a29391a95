"""What a reader of a postmortem draft must see: facts or words, never a template's holes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from test_postmortem import at, event, incident_with, render, sections

from opsloop.agents.narrative import record_facts
from opsloop.agents.postmortem import draft_postmortem
from opsloop.agents.warroom import close_war_room, log_to_war_room, open_war_room
from opsloop.models import (
    Approval,
    DecisionOutcome,
    Diagnosis,
    EventKind,
    Hypothesis,
    Incident,
    IncidentStatus,
    RemediationAction,
    Severity,
    Verdict,
)
from opsloop.runbooks.markdown import split_front_matter

LONE_MARK = re.compile(r"(?<![\w?])\?(?![\w])")


def rollback(version: str = "v2.4.0") -> RemediationAction:
    return RemediationAction(id="a-rollback", type="rollback_deploy", service="checkout",
                             params={"to_version": version},
                             reason="roll checkout back from v2.4.1 to v2.4.0")


def sev1_bad_deploy(approval: Approval | None = None,
                    notifications: tuple[str, ...] = ()) -> Incident:
    return incident_with(rollback(), DecisionOutcome.NEEDS_APPROVAL, severity=Severity.SEV1,
                         status=IncidentStatus.MITIGATED, category="bad_deploy", asked=10,
                         approval=approval, notifications=list(notifications))


def unfilled(cause: str, category: str, service: str, confidence: float) -> Hypothesis:
    return Hypothesis(id=f"{category}@{service}", cause=cause, category=category,
                      service=service, runbook=category, confidence=confidence)


def test_hypotheses_whose_facts_were_never_found_read_as_words_not_question_marks() -> None:
    incident = sev1_bad_deploy()
    extra = Diagnosis(specialist="rollout", hypotheses=[
        unfilled("Flag ? on web, ramped to ?% ? min ago, fails its cohort", "flag_rollout",
                 "web", 0.0),
        unfilled("Flag ? on search, ramped to ?% ? min ago, fails its cohort", "flag_rollout",
                 "search", 0.0),
        unfilled("Version ? of api, deployed ? min ago", "bad_deploy", "api", 0.3),
    ])
    incident = incident.model_copy(update={"diagnoses": [*incident.diagnoses, extra]})
    text = render(incident)
    assert not LONE_MARK.search(text), LONE_MARK.findall(text)
    causes = sections(text)["Root Causes"]
    assert "flag_rollout on web, search (from rollout)" in causes  # grouped, once
    assert "bad_deploy on api (some of the facts it names were not found)" in causes
    assert "noisy neighbour (capacity, from remediation) confidence 0.20" in causes


def test_a_person_s_response_time_is_the_wall_clock_s_not_the_simulation_s() -> None:
    # The simulated clock stood still while the person thought: the record must not praise
    # an answer "in 0 s"; with the wall-clock wait recorded, that is what is said.
    still = Approval(request_id="a-rollback", verdict=Verdict.APPROVE, by="alice",
                     at=at(10))
    pm = draft_postmortem(sev1_bad_deploy(still))
    assert not any("0 s" in line for line in [*pm.went_well, pm.resolution])
    assert not any("answered" in line for line in pm.went_well)
    timed = still.model_copy(update={"waited_seconds": 95.0})
    pm = draft_postmortem(sev1_bad_deploy(timed))
    assert any(line.startswith("alice answered the approval request in 2 min")
               for line in pm.went_well), pm.went_well


def test_repeated_notifications_are_listed_once_with_their_count() -> None:
    incident = sev1_bad_deploy(notifications=("#ops via outbox", "page via outbox",
                                              "#ops via outbox"))
    resolution = draft_postmortem(incident).resolution
    notified = next(p for p in resolution.split("\n\n") if p.startswith("Notified"))
    assert notified.count("ops via outbox") == 1 and "(2 messages)" in notified
    assert notified.count("page via outbox") == 1


def test_what_went_wrong_names_the_diagnosed_cause_of_a_sev1_bad_deploy() -> None:
    pm = draft_postmortem(sev1_bad_deploy())
    assert pm.went_wrong, "a SEV1 with a diagnosis has something that went wrong"
    first = pm.went_wrong[0]
    assert first.startswith("bad deploy in checkout (bad deploy on checkout, confidence 0.86)")
    assert "Errors reached 7.50%" in first


def test_a_person_s_modification_is_never_quoted_as_the_agent_s_proposal() -> None:
    typo = rollback("v2.4.9")
    incident = sev1_bad_deploy(Approval(request_id="a-rollback", verdict=Verdict.MODIFY,
                                        by="alice", at=at(12), changes={"to_version": "v2.4.9"}))
    case = incident.actions[0]
    # As the approval node records a modification: what runs is the person's, the agent's
    # own action is kept beside it.
    case = case.model_copy(update={
        "proposal": case.proposal.model_copy(update={"action": typo}),
        "proposed": rollback()})
    incident = incident.model_copy(update={"actions": [case]})
    resolution = draft_postmortem(incident).resolution
    assert resolution.startswith("- rollback_deploy(checkout, to_version=v2.4.0), proposed by "
                                 "remediation")
    assert ("Changed: to_version=v2.4.9, so what ran was "
            "rollback_deploy(checkout, to_version=v2.4.9).") in resolution


def test_a_war_room_is_closed_with_its_status_and_when_and_keeps_its_log(
        tmp_path: Path) -> None:
    incident = sev1_bad_deploy()
    open_war_room(incident, tmp_path, ["on-call"])
    log_to_war_room(tmp_path, "INC-100", event(12, EventKind.APPROVED, "alice is on it"))
    close_war_room(tmp_path, "INC-100", "mitigated", at(29))
    meta, body = split_front_matter((tmp_path / "INC-100.md").read_text())
    assert meta["status"] == "mitigated"
    assert meta["closed_at"] == "2026-11-02T09:29:00+00:00"
    assert "alice is on it" in body and body.startswith("# War room")
    close_war_room(tmp_path, "INC-404", "mitigated", at(29))  # no war room: nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["INC-100.md"]
    assert yaml.safe_load((tmp_path / "INC-100.md").read_text().split("---")[1])


def test_a_model_writing_the_narrative_is_told_the_agent_s_proposal_and_the_wall_clock_wait(
        ) -> None:
    answer = Approval(request_id="a-rollback", verdict=Verdict.MODIFY, by="alice", at=at(12),
                      changes={"to_version": "v2.4.9"}, waited_seconds=95.0)
    incident = sev1_bad_deploy(answer)
    [case] = incident.actions
    case = case.model_copy(update={
        "proposal": case.proposal.model_copy(update={"action": rollback("v2.4.9")}),
        "proposed": rollback()})
    [facts] = record_facts(incident.model_copy(update={"actions": [case]}))["actions"]
    assert facts["action"] == "rollback_deploy(checkout, to_version=v2.4.9)"
    assert facts["agent_proposed"] == "rollback_deploy(checkout, to_version=v2.4.0)"
    assert facts["answer_seconds_wall_clock"] == 95.0
