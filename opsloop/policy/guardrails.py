"""Guardrails: auto / needs_approval / deny for one proposed action, from policy alone.

The decision reads only the action's type, target service and parameters, the incident's
severity, the policies and a `GuardrailContext` that code (never a model) fills in. Each
constraint that applies yields an outcome; the decision is the strictest, so adding a
constraint can never loosen the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from opsloop.models import DecisionOutcome, PolicyDecision, RemediationAction, Severity
from opsloop.policy.health import BudgetState
from opsloop.policy.resilience import RUN_EXPERIMENT, ResilienceFacts, refusals
from opsloop.policy.schema import ActionPolicy, ParamSpec, Policies, strictest


@dataclass(frozen=True)
class DiagnosisFacts:
    """What the diagnosis behind one action says about itself, read from the record by code."""

    confidence: float  # of the hypothesis (or agent proposal) that proposed the action
    rival: str | None = None  # "category on service (confidence)" of the closest other cause
    rival_confidence: float | None = None
    blamed_service: str | None = None
    blamed_alerted: bool = True  # the blamed service is one the incident's alerts named
    uncorroborated: bool = False  # triage: one metric of one service, nothing backing it


@dataclass(frozen=True)
class GuardrailContext:
    """Facts about production the guardrails need, gathered by code before deciding."""

    auto_actions_last_hour: int = 0  # auto actions already taken on this service
    auto_actions_this_incident: int = 0  # auto actions already taken in this incident
    budget_exhausted: bool = False  # the target is in remediation.yaml's change freeze
    # The target's error-budget policy state (health.yaml); None: not measured (normal).
    budget: BudgetState | None = None
    current_replicas: int | None = None  # of the target service (scale bounds)
    flag_percent: float | None = None  # current rollout percent (set_flag_rollout)
    kill_switch_tripped: bool = False  # rollback.yaml kill_switch criteria hold now
    target_in_incident: bool = True  # the action's service is one the incident is about
    diagnosis: DiagnosisFacts | None = None  # None: not from a diagnosis (no rules apply)
    # A person took the incident over (`opsloop takeover`): nothing runs without their yes.
    taken_over_by: str | None = None
    # For run_chaos_experiment: what resilience.yaml is checked against (None: not gathered).
    resilience: ResilienceFacts | None = None


@dataclass(frozen=True)
class _Constraint:
    outcome: DecisionOutcome
    rule: str
    reason: str


AUTO, APPROVAL, DENY = (
    DecisionOutcome.AUTO,
    DecisionOutcome.NEEDS_APPROVAL,
    DecisionOutcome.DENY,
)
_R = "remediation.yaml"


def decide(
    action: RemediationAction, severity: Severity, policies: Policies, ctx: GuardrailContext
) -> PolicyDecision:
    """What policy allows for this action; `rule` names the constraint that decided."""
    remediation = policies.remediation
    entry = remediation.actions.get(action.type)
    if entry is None:
        found = [
            _Constraint(
                remediation.default_outcome,
                f"{_R}:default_outcome",
                f"{action.type!r} is not listed under actions; "
                f"unlisted actions get {remediation.default_outcome}",
            )
        ]
    else:
        found = _severity_constraints(action, entry, severity, policies, ctx)
        found += _param_constraints(action, entry)
        found += _replica_constraints(action, entry, policies, ctx)
        found += _budget_constraints(action, entry, policies, ctx)
        found += _freeze_constraints(action, entry, policies, ctx)
        found += _diagnosis_constraints(policies, ctx)
        found += _rollout_constraints(action, policies, ctx)
        found += _resilience_constraints(action, policies, ctx)
        if ctx.taken_over_by is not None:
            found.append(_Constraint(
                APPROVAL, "people:take_over",
                f"{ctx.taken_over_by} took the incident over: a person decides each action",
            ))
        if not ctx.target_in_incident:
            found.append(_Constraint(
                remediation.outside_incident, f"{_R}:outside_incident",
                f"{action.service} is not among the incident's services; its impact was "
                "never triaged",
            ))
        # Rate limits only bite on what would otherwise run unattended, and never on the
        # kill switch: a flapping guard must not keep a broken feature switched on.
        if strictest(*(c.outcome for c in found)) is AUTO and not _kill_switch(
            action, policies, ctx
        ):
            found += _rate_constraints(action, policies, ctx)

    outcome = strictest(*(c.outcome for c in found))
    deciding = next(c for c in found if c.outcome is outcome)
    boundary = remediation.severities[severity]
    notify = outcome is not DENY and (boundary.notify or (entry is not None and entry.notify))
    return PolicyDecision(
        action_id=action.id,
        outcome=outcome,
        rule=deciding.rule,
        reasons=[f"{c.outcome}: {c.reason} [{c.rule}]" for c in found],
        notify=notify,
    )


def _severity_constraints(
    action: RemediationAction,
    entry: ActionPolicy,
    severity: Severity,
    policies: Policies,
    ctx: GuardrailContext,
) -> list[_Constraint]:
    boundary = policies.remediation.severities[severity]
    if _kill_switch(action, policies, ctx):
        # The kill switch is the one thing that acts before a human at any severity.
        ceiling = _Constraint(
            AUTO,
            "rollback.yaml:kill_switch",
            "kill switch tripped: disabling the flag is automatic",
        )
    else:
        ceiling = _Constraint(
            boundary.outcome,
            f"{_R}:severities.{severity}",
            f"{severity} allows at most {boundary.outcome}",
        )
    out = [ceiling]
    specific = entry.outcome_for(severity)
    if specific is not None:
        out.append(
            _Constraint(
                specific,
                f"{_R}:actions.{action.type}.outcome.{severity}",
                f"{action.type} at {severity} is {specific}",
            )
        )
    return out


def _diagnosis_constraints(policies: Policies, ctx: GuardrailContext) -> list[_Constraint]:
    facts, rules = ctx.diagnosis, policies.remediation.diagnosis
    if facts is None:
        return []
    where = f"{_R}:diagnosis"
    out: list[_Constraint] = []
    if not facts.confidence >= rules.min_confidence:  # NaN is below
        out.append(_Constraint(DecisionOutcome(rules.below_confidence), f"{where}.min_confidence",
                               f"the diagnosis is {facts.confidence:.0%} sure, under the "
                               f"{rules.min_confidence:.0%} an unattended action needs"))
    if (facts.rival is not None and facts.rival_confidence is not None
            and facts.rival_confidence >= facts.confidence - rules.rival_margin):
        out.append(_Constraint(DecisionOutcome(rules.conflicting), f"{where}.rival_margin",
                               f"conflicting evidence: {facts.rival} fits almost as well"))
    if not facts.blamed_alerted:
        out.append(_Constraint(DecisionOutcome(rules.blames_silent_service),
                               f"{where}.blames_silent_service",
                               f"the diagnosis blames {facts.blamed_service}, which no alert "
                               f"named"))
    if facts.uncorroborated:
        out.append(_Constraint(DecisionOutcome(rules.possible_telemetry_failure),
                               f"{where}.possible_telemetry_failure",
                               "triage found the impact in one metric only: possibly a "
                               "telemetry failure, not an outage"))
    return out


def _rollout_constraints(action: RemediationAction, policies: Policies, ctx: GuardrailContext
                         ) -> list[_Constraint]:
    """rollouts.yaml: a plan whose advances need approval makes every widening of its flag's
    rollout wait for a human, whoever proposed it (`auto` plans add nothing); a flag under an
    experiment has its split changed only by a human, either way: the outcome is the
    experiment owner's call."""
    if action.type != "set_flag_rollout":
        return []
    key = str(action.params.get("flag", ""))
    new, current = action.params.get("percent"), ctx.flag_percent
    now = "unknown" if current is None else f"{current:g}%"
    out: list[_Constraint] = []
    experiment = policies.rollouts.experiments.get(key)
    if experiment is not None and experiment.service == action.service:
        out.append(_Constraint(APPROVAL, f"rollouts.yaml:experiments.{key}",
                               f"{key} is an experiment: changing its split ({now} -> "
                               f"{new}%) is its owner's decision "
                               f"({experiment.owner or 'owner not named'})"))
    managed = policies.rollouts.flags.get(key)
    plan = policies.rollouts.plan_for(key)
    if managed is None or plan is None or managed.service != action.service:
        return out
    widens = current is None or not isinstance(new, int | float) or not new <= current
    if widens and plan.advances is APPROVAL:
        where = ("rollouts.yaml:defaults.advances" if managed.advances is None
                 else f"rollouts.yaml:flags.{key}.advances")
        out.append(_Constraint(APPROVAL, where,
                               f"{key}'s rollout plan asks its outcome owner to approve every "
                               f"advance ({now} -> {new}%)"))
    return out


def _resilience_constraints(action: RemediationAction, policies: Policies,
                            ctx: GuardrailContext) -> list[_Constraint]:
    """resilience.yaml: every rule a GameDay's start would break is a deny (never looser)."""
    if action.type != RUN_EXPERIMENT:
        return []
    if ctx.resilience is None:
        return [_Constraint(DENY, "resilience.yaml", "no resilience facts were gathered for "
                                                     "this start: never run blind")]
    return [_Constraint(DENY, r.rule, r.reason)
            for r in refusals(policies.resilience, ctx.resilience)]


def _kill_switch(action: RemediationAction, policies: Policies, ctx: GuardrailContext) -> bool:
    kill = policies.rollback.kill_switch
    return ctx.kill_switch_tripped and kill.automatic and action.type == kill.action


def _param_constraints(action: RemediationAction, entry: ActionPolicy) -> list[_Constraint]:
    out: list[_Constraint] = []
    where = f"{_R}:actions.{action.type}.params"
    for name, value in sorted(action.params.items()):
        spec = entry.params.get(name)
        if spec is None:
            allowed = ", ".join(sorted(entry.params)) or "none"
            out.append(
                _Constraint(
                    DENY, f"{where}", f"unknown parameter {name}={value!r} (allowed: {allowed})"
                )
            )
            continue
        problem = param_problem(value, spec)
        if problem is not None:
            out.append(
                _Constraint(DENY, f"{where}.{name}{problem[0]}", f"{name}={value!r} {problem[1]}")
            )
    for name, spec in entry.params.items():
        if spec.required and name not in action.params:
            out.append(
                _Constraint(
                    DENY, f"{where}.{name}.required", f"required parameter {name} is missing"
                )
            )
    return out


def param_problem(value: object, spec: ParamSpec) -> tuple[str, str] | None:
    """(rule suffix, what is wrong) or None when the value is within its spec."""
    if spec.type == "string":
        return None if isinstance(value, str) else (".type", "is not text")
    if spec.type == "bool":
        return None if isinstance(value, bool) else (".type", "is not true/false")
    # bool is an int in Python; `replicas: true` is never meant as 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ".type", f"is not a {'whole ' if spec.type == 'int' else ''}number"
    if not math.isfinite(value):  # NaN compares false with every bound; inf is no amount
        return ".type", "is not a finite number"
    if spec.type == "int" and not float(value).is_integer():
        return ".type", "is not a whole number"
    if spec.min is not None and value < spec.min:
        return ".min", f"is below the minimum {spec.min:g}"
    if spec.max is not None and value > spec.max:
        return ".max", f"is above the maximum {spec.max:g}"
    return None


def _replica_constraints(
    action: RemediationAction, entry: ActionPolicy, policies: Policies, ctx: GuardrailContext
) -> list[_Constraint]:
    raw = action.params.get("replicas")
    # A float like 40.0 passes the int check above; it must not slip past the bounds here.
    if (
        action.type not in ("scale_out", "scale_in")
        or isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or not float(raw).is_integer()
    ):
        return []
    target = int(raw)
    replicas = policies.capacity.replicas
    bounds = replicas.bounds_for(action.service)
    cap = "capacity.yaml:replicas"
    out: list[_Constraint] = []
    if action.type == "scale_in" and target < bounds.min:
        out.append(
            _Constraint(
                DENY,
                f"{cap}.min",
                f"{target} replicas is below {action.service}'s minimum of {bounds.min}",
            )
        )
    if target > bounds.max:
        out.append(
            _Constraint(
                APPROVAL,
                f"{cap}.max",
                f"{target} replicas is above {action.service}'s maximum of {bounds.max}",
            )
        )
    current = ctx.current_replicas
    if current is None:
        # Without the current count no step or factor can be checked: a human looks.
        out.append(
            _Constraint(
                APPROVAL,
                f"{_R}:actions.{action.type}",
                "current replica count unknown, so the change cannot be bounded",
            )
        )
        return out
    if action.type == "scale_out" and target <= current:
        out.append(
            _Constraint(
                DENY,
                f"{_R}:actions.scale_out",
                f"scale_out to {target} but {current} already run; use scale_in to shrink",
            )
        )
    if action.type == "scale_in" and target >= current:
        out.append(
            _Constraint(
                DENY,
                f"{_R}:actions.scale_in",
                f"scale_in to {target} but {current} run now; use scale_out to grow",
            )
        )
    if abs(target - current) > replicas.max_scale_step:
        out.append(
            _Constraint(
                APPROVAL,
                f"{cap}.max_scale_step",
                f"a step of "
                f"{abs(target - current)} replicas exceeds the max step "
                f"{replicas.max_scale_step}",
            )
        )
    limits = entry.auto_limits
    where = f"{_R}:actions.{action.type}.auto_limits"
    if limits is not None and limits.max_replicas is not None and target > limits.max_replicas:
        out.append(
            _Constraint(
                APPROVAL,
                f"{where}.max_replicas",
                f"{target} replicas is above the auto limit {limits.max_replicas}",
            )
        )
    if (
        limits is not None
        and limits.max_factor is not None
        and target > current * limits.max_factor
    ):
        out.append(
            _Constraint(
                APPROVAL,
                f"{where}.max_factor",
                f"{target} replicas is more than {limits.max_factor:g}x the current {current}",
            )
        )
    return out


def _adds_risk(action: RemediationAction, entry: ActionPolicy, ctx: GuardrailContext) -> bool:
    """remediation.yaml's `risk` of this action, with its parameters and production's state."""
    if entry.risk == "adds_when_increasing" and entry.risk_param is not None:
        new = action.params.get(entry.risk_param)
        current = ctx.flag_percent
        # Unknown current value: assume the change widens exposure.
        return current is None or not isinstance(new, int | float) or new > current
    return entry.risk == "adds"


def _budget_constraints(
    action: RemediationAction, entry: ActionPolicy, policies: Policies, ctx: GuardrailContext
) -> list[_Constraint]:
    """health.yaml error_budget_policy: in hold or freeze, risk-adding actions get the
    state's `risk_adding`; risk-reducing ones are how the budget recovers, so they pass."""
    budget = ctx.budget
    if budget is None:
        return []
    line = policies.health.error_budget_policy.line(budget.state)
    if line is None:  # normal
        return []
    if not _adds_risk(action, entry, ctx):
        return [_Constraint(
            AUTO, budget.rule,
            f"{action.service} in error-budget {budget.state} ({budget.reason}), but "
            f"{action.type} reduces risk: allowed")]
    return [_Constraint(
        DecisionOutcome(line.risk_adding), budget.rule,
        f"{action.service} in error-budget {budget.state} ({budget.reason}): risk-adding "
        f"{action.type} is {line.risk_adding}")]


def _freeze_constraints(
    action: RemediationAction, entry: ActionPolicy, policies: Policies, ctx: GuardrailContext
) -> list[_Constraint]:
    if not ctx.budget_exhausted:
        return []
    if not _adds_risk(action, entry, ctx):
        return [
            _Constraint(
                AUTO,
                f"{_R}:change_freeze",
                f"error budget of {action.service} "
                f"exhausted, but {action.type} reduces risk: allowed",
            )
        ]
    outcome = DecisionOutcome(policies.remediation.change_freeze.risk_adding)
    return [
        _Constraint(
            outcome,
            f"{_R}:change_freeze.risk_adding",
            f"error budget of "
            f"{action.service} exhausted: change freeze blocks risk-adding "
            f"{action.type}",
        )
    ]


def _rate_constraints(
    action: RemediationAction, policies: Policies, ctx: GuardrailContext
) -> list[_Constraint]:
    limits = policies.remediation.rate_limits
    outcome = DecisionOutcome(limits.when_exceeded)
    where = f"{_R}:rate_limits"
    out: list[_Constraint] = []
    if ctx.auto_actions_last_hour >= limits.max_auto_per_service_per_hour:
        out.append(
            _Constraint(
                outcome,
                f"{where}.max_auto_per_service_per_hour",
                f"{ctx.auto_actions_last_hour} auto actions on "
                f"{action.service} in the last hour (limit "
                f"{limits.max_auto_per_service_per_hour})",
            )
        )
    if ctx.auto_actions_this_incident >= limits.max_auto_per_incident:
        out.append(
            _Constraint(
                outcome,
                f"{where}.max_auto_per_incident",
                f"{ctx.auto_actions_this_incident} auto actions in this incident "
                f"(limit {limits.max_auto_per_incident})",
            )
        )
    return out
