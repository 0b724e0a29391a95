"""Who acts without a human: remediation ceilings, the kill switch, SEV1 paging, rate limits.

The loop's contract: SEV1 waits for a human; SEV2 acts and tells someone; SEV3-4 act and
log. A setting that lets a SEV1 action run unattended is an error; one that loosens the
nets around unattended actions is a warning.
"""

from __future__ import annotations

from opsloop.models import Severity
from opsloop.models.catalog import ACTION_TYPES
from opsloop.policy.safety.common import AUTO, ERROR, WARN, Add, names, unattended_at
from opsloop.policy.schema import CapacityPolicy, RemediationPolicy, RollbackPolicy, SeverityPolicy

_R = "remediation.yaml"
SEV1, SEV2 = Severity.SEV1, Severity.SEV2
# The contract's one exception (see guardrails): a tripped kill switch may act before a
# human at any severity, because switching a flag off only removes exposure.
KILL_SWITCH_EXCEPTION = "disable_flag"
# Beyond this many unattended actions an incident is not routine any more, whatever the
# reason: by then a person should be looking before the next one.
ROUTINE_AUTO_PER_INCIDENT = 10


def sev1_ceiling(policy: RemediationPolicy, add: Add) -> None:
    """SEV1's ceiling is `auto`: every action without a stricter SEV1 outcome runs alone."""
    boundary = policy.severities[SEV1]
    if boundary.outcome is not AUTO:
        return
    running = [t for t, a in policy.actions.items() if SEV1 in unattended_at(policy, a)]
    who = (
        f"{names(running)} would run unattended"
        if running
        else "any action without a SEV1 outcome of its own would run unattended"
    )
    add(
        _R,
        "severities.SEV1.outcome",
        f"SEV1 lets actions run without a human ({who}), but the loop's contract is that "
        "SEV1 waits for one: set needs_approval (or deny)",
        boundary.outcome.value,
        ERROR,
    )


def sev1_actions(policy: RemediationPolicy, add: Add) -> None:
    """An action that says `auto` at SEV1, whether or not the ceiling holds it today."""
    ceiling = policy.severities[SEV1].outcome
    for action_type, action in policy.actions.items():
        if action.outcome_for(SEV1) is not AUTO:
            continue
        shorthand = all(action.outcome_for(s) is AUTO for s in Severity)
        if ceiling is AUTO:
            why = f"{action_type} runs without a human at SEV1"
        else:
            why = (
                f"today severities.SEV1 ({ceiling}) still holds it, since an action's outcome "
                f"can only tighten, but the entry says {action_type} may run unattended at "
                "SEV1, which the loop's contract forbids"
            )
        add(
            _R,
            f"actions.{action_type}.outcome" + ("" if shorthand else ".SEV1"),
            f"{why}: give SEV1 needs_approval or deny (`auto` never grants anything "
            "here; the severity ceilings decide what may run alone)",
            AUTO.value,
            ERROR,
        )


def default_outcome(policy: RemediationPolicy, add: Add) -> None:
    """Unlisted action types skip every ceiling, so `auto` there is unattended at SEV1."""
    if policy.default_outcome is not AUTO:
        return
    add(
        _R,
        "default_outcome",
        "action types not listed under `actions` would run without a human at every "
        "severity, SEV1 included: no severity ceiling, rate limit or change freeze applies "
        "to them. Set deny (or needs_approval) and list the actions you allow",
        AUTO.value,
        ERROR,
    )


def kill_switch(policy: RemediationPolicy, rollback: RollbackPolicy, add: Add) -> None:
    """A kill switch that runs anything but disabling a flag acts unattended at SEV1."""
    kill = rollback.kill_switch
    entry = policy.actions.get(kill.action)
    # An action missing from remediation.yaml is already an error in checks.py.
    if not kill.automatic or kill.action == KILL_SWITCH_EXCEPTION or entry is None:
        return
    if entry.outcome_for(SEV1) not in (None, AUTO):
        return  # the action's own SEV1 outcome still holds it for a human
    add(
        "rollback.yaml",
        "kill_switch.action",
        f"a tripped kill switch runs {kill.action} without a human at every severity, SEV1 "
        f"included (it trips at an error ratio above {kill.error_ratio_above:g} for "
        f"{kill.for_minutes} min, as most SEV1s do); the contract's only exception is "
        f"switching a flag off: use {KILL_SWITCH_EXCEPTION}, set automatic: false, or give "
        f"{kill.action} outcome {{SEV1: needs_approval}} in {_R}",
        kill.action,
        ERROR,
    )


def sev1_escalation(severity: SeverityPolicy, add: Add) -> None:
    """A SEV1 that pages nobody: the human it waits for may never hear of it."""
    escalation = severity.escalation[SEV1]
    if escalation.page:
        return
    room = " (a war room opens, but nobody is called to it)" if escalation.war_room else ""
    add(
        "severity.yaml",
        "escalation.SEV1.page",
        f"a SEV1 pages nobody{room}, so the human it waits for may never hear of it: "
        "set page: true",
        escalation.page,
        ERROR,
    )


def outside_incident(policy: RemediationPolicy, add: Add) -> None:
    if policy.outside_incident is not AUTO:
        return
    add(
        _R,
        "outside_incident",
        "an action on a service the incident never triaged is then held only by the "
        "incident's own severity, so at SEV2-SEV4 an agent may act alone on a service "
        "whose impact nobody measured: set needs_approval",
        AUTO.value,
        WARN,
    )


def sev2_silent(policy: RemediationPolicy, add: Add) -> None:
    boundary = policy.severities[SEV2]
    if boundary.outcome is not AUTO or boundary.notify:
        return
    add(
        _R,
        "severities.SEV2.notify",
        "actions run unattended at SEV2 and nobody is told (actions without notify: true "
        "of their own); SEV2 auto-remediates and notifies: set notify: true",
        boundary.notify,
        WARN,
    )


def risk_adding_unattended(policy: RemediationPolicy, add: Add) -> None:
    """An action that adds risk (change, less capacity, deletion) with nobody approving."""
    for action_type, action in policy.actions.items():
        # One the actuator cannot execute never runs; checks.py warns about it already.
        if action.risk != "adds" or action_type not in ACTION_TYPES:
            continue
        severities = unattended_at(policy, action)
        if not severities:
            continue
        add(
            _R,
            f"actions.{action_type}.outcome" if action.outcome else f"actions.{action_type}",
            f"{action_type} adds risk (risk: adds) yet runs without a human at "
            f"{names(severities)}: give it outcome: needs_approval (or deny)",
            AUTO.value,
            WARN,
        )


def rate_limits(policy: RemediationPolicy, rollback: RollbackPolicy, add: Add) -> None:
    """Limits loose enough that an agent can flap a service or act on and on."""
    limits = policy.rate_limits
    windows = [rollback.defaults.window_minutes]
    windows += [c.window_minutes for c in rollback.actions.values() if c.window_minutes]
    shortest = min(windows)
    per_hour = max(1, 60 // shortest)
    if limits.max_auto_per_service_per_hour > per_hour:
        add(
            _R,
            "rate_limits.max_auto_per_service_per_hour",
            f"allows more unattended actions on one service per hour than verification "
            f"windows fit in an hour ({per_hour} of {shortest} min, the shortest in "
            "rollback.yaml): the loop could act again before it knows whether the last "
            f"action worked, which is how an agent flaps a service; keep it at most {per_hour}",
            limits.max_auto_per_service_per_hour,
            WARN,
        )
    if limits.max_auto_per_incident > ROUTINE_AUTO_PER_INCIDENT:
        add(
            _R,
            "rate_limits.max_auto_per_incident",
            f"an incident that needs more than {ROUTINE_AUTO_PER_INCIDENT} unattended "
            "actions is not routine, and a person should look before the next one; keep it "
            f"at most {ROUTINE_AUTO_PER_INCIDENT}",
            limits.max_auto_per_incident,
            WARN,
        )


def scale_to_zero(policy: RemediationPolicy, capacity: CapacityPolicy, add: Add) -> None:
    """Unattended scale_in with a replica floor of 0: an agent may switch a service off."""
    entry = policy.actions.get("scale_in")
    if entry is None or "scale_in" not in ACTION_TYPES:
        return
    severities = unattended_at(policy, entry)
    if not severities:
        return
    replicas = capacity.replicas
    floors: list[tuple[str, str]] = []
    if replicas.defaults.min == 0:
        floors.append(("replicas.defaults.min", "every service without its own min"))
    floors += [
        (f"replicas.services.{service}.min", service)
        for service, bounds in replicas.services.items()
        if bounds.min == 0
    ]
    for field, who in floors:
        add(
            "capacity.yaml",
            field,
            f"scale_in runs without a human at {names(severities)} and may go down to 0 "
            f"replicas for {who}: an agent could switch a service off. Set min to at least "
            f"1, or give scale_in outcome: needs_approval in {_R}",
            0,
            WARN,
        )
