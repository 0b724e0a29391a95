"""Replay stored incidents' actions through the guardrails under two sets of policies.

What would a policy change have decided differently? Every proposed action of every incident
is decided again with `decide`, once under the current policies and once under the proposed
ones, with the same `GuardrailContext` rebuilt from what the incident recorded. Only the
policies differ between the two runs, so a difference between them is the change's effect.

The context comes from the record, never from today's production:

- `target_in_incident`: the action's service among the incident's services;
- `auto_actions_this_incident` / `auto_actions_last_hour`: the actions earlier in the same
  incident that the replayed policies let run automatically, plus the automatic actions that
  really ran on that service in the other given incidents (same environment) in the hour
  before the decision;
- `budget_exhausted`, `kill_switch_tripped`: the recorded decision named a change-freeze or
  kill-switch rule;
- `current_replicas` / `flag_percent`: what the actuator recorded it replaced (`undo`), or
  the numbers the recorded decision's reasons quote. When neither says, the fact is unknown
  (`unknown` names it) and the guardrails treat it as they do live (unknown replicas: a
  human looks).

Where the replay under the current policies disagrees with what was recorded (`drift`),
either the policies changed since or a fact could not be rebuilt: the report shows both.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsloop.models import (
    ActionCase,
    ActionStatus,
    DecisionOutcome,
    EventKind,
    Incident,
    PolicyDecision,
    RemediationAction,
    Severity,
)
from opsloop.policy.guardrails import GuardrailContext, decide
from opsloop.policy.schema import Policies

_RULE = re.compile(r"\[([^\[\]]+)\]\s*$")  # decide() ends every reason with "[rule]"
_REPLICAS_QUOTED = (
    re.compile(r"but (\d+) (?:already run|run now)"),
    re.compile(r"x the current (\d+)\b"),
)
_STEP = re.compile(r"a step of (\d+) replicas")


@dataclass(frozen=True)
class ReplayedAction:
    """One proposed action: what was recorded, and what each set of policies decides."""

    incident_id: str
    action_id: str
    action: str  # RemediationAction.describe()
    action_type: str
    service: str
    severity: str
    recorded: PolicyDecision | None  # None: the incident never reached the guardrails
    before: PolicyDecision  # under the current policies
    after: PolicyDecision  # under the proposed policies
    unknown: tuple[str, ...] = ()  # context facts the record did not hold

    @property
    def outcome_changed(self) -> bool:
        return self.before.outcome is not self.after.outcome

    @property
    def changed(self) -> bool:
        return self.outcome_changed or self.before.rule != self.after.rule

    @property
    def drift(self) -> bool:
        """The current policies, replayed, disagree with the recorded outcome."""
        return self.recorded is not None and self.recorded.outcome is not self.before.outcome

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident": self.incident_id,
            "action_id": self.action_id,
            "action": self.action,
            "type": self.action_type,
            "service": self.service,
            "severity": self.severity,
            "recorded": None if self.recorded is None else {
                "outcome": self.recorded.outcome.value, "rule": self.recorded.rule},
            "before": {"outcome": self.before.outcome.value, "rule": self.before.rule},
            "after": {"outcome": self.after.outcome.value, "rule": self.after.rule},
            "changed": self.changed,
            "outcome_changed": self.outcome_changed,
            "drift": self.drift,
            "unknown": list(self.unknown),
        }


@dataclass(frozen=True)
class PolicyReplay:
    """Every replayed action, in incident and proposal order."""

    actions: tuple[ReplayedAction, ...]

    @property
    def changed(self) -> list[ReplayedAction]:
        return [a for a in self.actions if a.changed]

    def moved(self, before: DecisionOutcome, after: DecisionOutcome) -> list[ReplayedAction]:
        """Actions whose outcome goes from `before` to `after`."""
        return [a for a in self.actions if a.before.outcome is before
                and a.after.outcome is after]

    def transitions(self) -> dict[str, int]:
        """How many actions move between outcomes, e.g. {"needs_approval -> auto": 3}."""
        out: dict[str, int] = {}
        for a in self.actions:
            if a.outcome_changed:
                key = f"{a.before.outcome.value} -> {a.after.outcome.value}"
                out[key] = out.get(key, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": len(self.actions),
            "changed": len(self.changed),
            "outcome_changed": sum(1 for a in self.actions if a.outcome_changed),
            "transitions": self.transitions(),
            "drift": sum(1 for a in self.actions if a.drift),
            "rows": [a.to_dict() for a in self.actions],
        }


def replay(incidents: Iterable[Incident], current: Policies, proposed: Policies) -> PolicyReplay:
    """Each incident's proposed actions decided under `current` and under `proposed`."""
    ordered = sorted(incidents, key=lambda i: (i.opened_at, i.id))
    ledger = AutoLedger(ordered)
    rows: list[ReplayedAction] = []
    for incident in ordered:
        severity = incident.severity or Severity.SEV1  # untriaged: the worst, as live
        auto_before: list[RemediationAction] = []
        auto_after: list[RemediationAction] = []
        for case in incident.actions:
            facts, unknown = recorded_facts(incident, case, ledger)
            before = decide(case.action, severity, current,
                            _with_earlier(facts, case.action, auto_before))
            after = decide(case.action, severity, proposed,
                           _with_earlier(facts, case.action, auto_after))
            if before.outcome is DecisionOutcome.AUTO:
                auto_before.append(case.action)
            if after.outcome is DecisionOutcome.AUTO:
                auto_after.append(case.action)
            rows.append(ReplayedAction(
                incident_id=incident.id, action_id=case.id, action=case.action.describe(),
                action_type=case.action.type, service=case.action.service,
                severity=severity.value, recorded=case.decision, before=before, after=after,
                unknown=tuple(unknown)))
    return PolicyReplay(tuple(rows))


def _with_earlier(facts: GuardrailContext, action: RemediationAction,
                  earlier_auto: list[RemediationAction]) -> GuardrailContext:
    """The context with this incident's earlier automatic actions counted, as the live
    guardrails node counts them."""
    same_service = sum(1 for a in earlier_auto if a.service == action.service)
    return GuardrailContext(
        auto_actions_last_hour=facts.auto_actions_last_hour + same_service,
        auto_actions_this_incident=len(earlier_auto),
        budget_exhausted=facts.budget_exhausted,
        current_replicas=facts.current_replicas,
        flag_percent=facts.flag_percent,
        kill_switch_tripped=facts.kill_switch_tripped,
        target_in_incident=facts.target_in_incident,
    )


def recorded_facts(incident: Incident, case: ActionCase,
                   ledger: AutoLedger | None = None) -> tuple[GuardrailContext, list[str]]:
    """The guardrails' facts as the incident recorded them (earlier automatic actions of the
    same incident not counted: `replay` adds those), and the names of facts it did not hold."""
    rules = recorded_rules(case.decision)
    reasons = " ".join(case.decision.reasons) if case.decision is not None else ""
    unknown: list[str] = []
    action = case.action
    undo = case.result.undo if case.result is not None else {}
    replicas: int | None = None
    if action.type in ("scale_out", "scale_in"):
        replicas = _replicas_before(action, undo, reasons)
        if replicas is None:
            unknown.append("current_replicas")
    percent: float | None = None
    if action.type == "set_flag_rollout":
        raw = undo.get("percent") if undo.get("kind") == "flag" else None
        percent = float(raw) if isinstance(raw, int | float) else None
        if percent is None:
            unknown.append("flag_percent")
    if case.decision is None:
        unknown.append("decision")
    context = GuardrailContext(
        auto_actions_last_hour=0 if ledger is None else ledger.count(
            incident, action.service, decided_at(incident, case)),
        auto_actions_this_incident=0,
        budget_exhausted=any(r.startswith("remediation.yaml:change_freeze") for r in rules),
        current_replicas=replicas,
        flag_percent=percent,
        kill_switch_tripped="rollback.yaml:kill_switch" in rules,
        target_in_incident=action.service in incident.services,
    )
    return context, unknown


def recorded_rules(decision: PolicyDecision | None) -> list[str]:
    """Every rule the recorded decision's reasons name (the deciding one first)."""
    if decision is None:
        return []
    found = [m.group(1) for r in decision.reasons if (m := _RULE.search(r))]
    return [decision.rule, *(r for r in found if r != decision.rule)]


def decided_at(incident: Incident, case: ActionCase) -> datetime:
    """When the guardrails decided this case: its decision event, else the closest record."""
    for ev in reversed(incident.timeline):
        if ev.kind is EventKind.DECISION and ev.data.get("action_id") == case.id:
            return ev.at
    if case.requested_at is not None:
        return case.requested_at
    if case.result is not None:
        return case.result.at
    return incident.opened_at


def _replicas_before(action: RemediationAction, undo: dict[str, Any], reasons: str) -> int | None:
    if undo.get("kind") == "scale" and isinstance(undo.get("replicas"), int):
        return int(undo["replicas"])
    for pattern in _REPLICAS_QUOTED:
        m = pattern.search(reasons)
        if m:
            return int(m.group(1))
    step = _STEP.search(reasons)
    target = action.params.get("replicas")
    if step and isinstance(target, int) and not isinstance(target, bool):
        size = int(step.group(1))
        return target - size if action.type == "scale_out" else target + size
    return None


class AutoLedger:
    """The automatic actions that really ran, by production and service: what the store's
    ledger counts for the rate limits live, rebuilt from the given incidents."""

    def __init__(self, incidents: Iterable[Incident]) -> None:
        self._ran: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
        for incident in incidents:
            for c in incident.actions:
                if (c.decision is not None and c.decision.outcome is DecisionOutcome.AUTO
                        and c.result is not None and not c.result.replayed
                        and c.result.status is ActionStatus.SUCCEEDED):
                    key = (incident.environment, c.action.service)
                    self._ran.setdefault(key, []).append((c.result.at, incident.id))
        for ran in self._ran.values():
            ran.sort()

    def count(self, incident: Incident, service: str, at: datetime) -> int:
        """Automatic actions on `service` in the hour before `at`, in other incidents."""
        ran = self._ran.get((incident.environment, service), [])
        lo = bisect_left(ran, (at - timedelta(hours=1), ""))
        return sum(1 for when, owner in ran[lo:] if when <= at and owner != incident.id)
