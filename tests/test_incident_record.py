"""The incident record: one case per action, one timeline of known kinds, old records readable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from opsloop.models import (
    ActionCase,
    ActionResult,
    ActionStatus,
    Approval,
    DecisionOutcome,
    EventKind,
    Incident,
    PolicyDecision,
    RemediationAction,
    RemediationProposal,
    TimelineEvent,
    Verdict,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def action(action_id: str, kind: str = "restart") -> dict[str, object]:
    return {"id": action_id, "type": kind, "service": "checkout", "params": {}}


def result(action_id: str, minutes: int, key: str) -> dict[str, object]:
    return {"action_id": action_id, "action": f"x({action_id})", "idempotency_key": key,
            "status": "succeeded", "at": at(minutes)}


def stored_before_cases() -> str:
    """An incident as the store held it before ActionCase: four lists joined by action id."""
    return json.dumps({
        "id": "INC-0007", "title": "checkout errors", "environment": "sim:x",
        "group_key": "{}", "opened_at": at(0), "status": "escalated",
        "proposals": [
            {"action": action("a-1", "scale_out"), "specialist": "capacity",
             "hypothesis_id": "h", "confidence": 0.9},
            {"action": action("a-10", "rollback_deploy"), "specialist": "incident",
             "hypothesis_id": "h", "confidence": 0.9},
        ],
        "decisions": [
            {"action_id": "a-1", "outcome": "auto", "rule": "r1"},
            {"action_id": "a-10", "outcome": "needs_approval", "rule": "r10"},
        ],
        "approvals": [{"request_id": "a-10", "verdict": "approve", "by": "alice",
                       "at": at(20)}],
        "results": [result("a-1", 5, "k1"), result("a-10", 21, "k10")],
        "verification": {"passed": False, "at": at(26), "window_minutes": 5,
                         "rolled_back": True,
                         "checks": [{"name": "error_ratio_max", "service": "checkout",
                                     "observed": 0.09, "threshold": 0.05, "ok": False}],
                         "rollback_results": [result("a-10", 26, "revert:k10"),
                                              result("a-1", 26, "revert:k1")]},
        "timeline": [
            {"at": at(4), "kind": "decision", "message": "scale_out: auto",
             "data": {"action_id": "a-1", "outcome": "auto"}},
            {"at": at(4), "kind": "decision", "message": "rollback_deploy: needs_approval",
             "data": {"action_id": "a-10", "outcome": "needs_approval"}},
        ],
    })


def test_an_incident_stored_as_four_lists_reads_back_as_one_case_per_action() -> None:
    incident = Incident.model_validate_json(stored_before_cases())
    first, second = incident.actions
    assert (first.id, second.id) == ("a-1", "a-10")
    assert first.decision is not None and first.decision.outcome is DecisionOutcome.AUTO
    assert first.approval is None and first.requested_at is None  # "a-10" is not "a-1"'s
    assert second.approval is not None and second.approval.by == "alice"
    assert second.approval_wait == timedelta(minutes=16)
    assert first.result is not None and first.result.idempotency_key == "k1"
    assert second.revert is not None and second.revert.idempotency_key == "revert:k10"
    assert [r.idempotency_key for r in incident.reverts] == ["revert:k10", "revert:k1"]
    assert [c.name for c in incident.verification_checks] == ["error_ratio_max"]
    # Written back, it is the new shape, and reads back the same.
    body = json.loads(incident.model_dump_json())
    assert not {"proposals", "decisions", "approvals", "results"} & set(body)
    assert "rollback_results" not in body["verification"]
    assert Incident.model_validate_json(incident.model_dump_json()) == incident


def case(action_id: str, outcome: DecisionOutcome | None,
         verdict: Verdict | None = None) -> ActionCase:
    proposal = RemediationProposal(action=RemediationAction(id=action_id, type="restart",
                                                            service="checkout"),
                                   specialist="incident", hypothesis_id="h", confidence=1.0)
    return ActionCase(
        proposal=proposal,
        decision=None if outcome is None else PolicyDecision(action_id=action_id,
                                                              outcome=outcome, rule="r"),
        approval=None if verdict is None else Approval(request_id=action_id, verdict=verdict,
                                                       by="alice", at=T0),
    )


def test_each_action_has_exactly_one_case() -> None:
    with pytest.raises(ValidationError, match="more than one case for action id a-1"):
        Incident(id="INC-1", title="t", environment="sim:x", group_key="{}", opened_at=T0,
                 actions=[case("a-1", None), case("a-2", None), case("a-1", None)])


@pytest.mark.parametrize(("outcome", "verdict", "cleared", "waits"), [
    (None, None, False, False),
    (DecisionOutcome.AUTO, None, True, False),
    (DecisionOutcome.DENY, None, False, False),
    (DecisionOutcome.NEEDS_APPROVAL, None, False, True),
    (DecisionOutcome.NEEDS_APPROVAL, Verdict.APPROVE, True, False),
    (DecisionOutcome.NEEDS_APPROVAL, Verdict.MODIFY, True, False),
    (DecisionOutcome.NEEDS_APPROVAL, Verdict.REJECT, False, False),
    # a modification that policy then denies stays denied, whatever the human said
    (DecisionOutcome.DENY, Verdict.MODIFY, False, False),
])
def test_an_action_runs_when_policy_or_a_human_clears_it(
    outcome: DecisionOutcome | None, verdict: Verdict | None, cleared: bool, waits: bool
) -> None:
    one = case("a-1", outcome, verdict)
    assert (one.cleared, one.awaits_human) == (cleared, waits)


def test_only_a_result_that_succeeded_counts_as_done() -> None:
    one = case("a-1", DecisionOutcome.AUTO)
    assert not one.succeeded
    failed = ActionResult(action_id="a-1", action="restart(checkout)", idempotency_key="k",
                          status=ActionStatus.FAILED, at=T0)
    assert not one.model_copy(update={"result": failed}).succeeded
    ok = failed.model_copy(update={"status": ActionStatus.SUCCEEDED})
    assert one.model_copy(update={"result": ok}).succeeded


def test_the_timeline_accepts_only_kinds_the_loop_knows() -> None:
    event = TimelineEvent.model_validate({"at": at(0), "kind": "alert", "message": "x"})
    assert event.kind is EventKind.ALERT
    with pytest.raises(ValidationError, match="kind"):
        TimelineEvent.model_validate({"at": at(0), "kind": "detected", "message": "x"})
