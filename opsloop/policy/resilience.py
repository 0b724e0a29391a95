"""Whether a chaos experiment may start now, from resilience.yaml and facts code gathered.

A pure function over `ResilienceFacts` (measured by code, never taken from a proposal): each
rule that is broken is a refusal naming its rule. The guardrails turn every refusal into a
deny, so this module can only make a decision stricter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsloop.chaos.actuator import RUN_EXPERIMENT
from opsloop.chaos.experiments import BlastRadius
from opsloop.models import Severity
from opsloop.policy.schema.base import format_minutes
from opsloop.policy.schema.resilience import ResiliencePolicy

__all__ = ["RUN_EXPERIMENT", "Refusal", "ResilienceFacts", "refusals"]

_R = "resilience.yaml"


@dataclass(frozen=True)
class ResilienceFacts:
    """What production and history say, gathered before deciding one experiment's start."""

    experiment: str
    now: datetime
    blast_radius: BlastRadius | None  # None: the experiment could not be loaded
    problem: str | None = None  # why it could not
    replicas: dict[str, int] = field(default_factory=dict)  # of each service it targets
    earlier_runs: tuple[datetime, ...] = ()  # starts of this experiment's earlier runs
    runs_today: int = 0  # GameDays of any experiment started this UTC day
    open_incidents: tuple[tuple[str, Severity], ...] = ()  # (id, severity), still open
    steady_state_met: bool | None = None  # None: not measured (refused: never start blind)
    steady_state_detail: str = ""
    budget_left: dict[str, float | None] = field(default_factory=dict)  # per target service


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str


def refusals(policy: ResiliencePolicy, facts: ResilienceFacts) -> list[Refusal]:
    """Every resilience.yaml rule this start would break (empty: policy allows it)."""
    radius = facts.blast_radius
    if radius is None:
        return [Refusal(f"{_R}:experiment", f"experiment {facts.experiment!r} cannot be run: "
                                            f"{facts.problem or 'not found'}")]
    out = _blast_radius(policy, facts, radius)
    out += _timing(policy, facts)
    out += _production(policy, facts, radius)
    return out


def _blast_radius(policy: ResiliencePolicy, facts: ResilienceFacts, radius: BlastRadius
                  ) -> list[Refusal]:
    limits, where = policy.blast_radius, f"{_R}:blast_radius"
    out: list[Refusal] = []
    if len(radius.services) > limits.max_services:
        out.append(Refusal(f"{where}.max_services",
                           f"{facts.experiment} touches {len(radius.services)} services "
                           f"({', '.join(radius.services)}); at most {limits.max_services}"))
    if radius.duration_minutes > limits.max_duration_minutes:
        out.append(Refusal(f"{where}.max_duration_minutes",
                           f"{facts.experiment} holds its fault {radius.duration_minutes} min; "
                           f"at most {limits.max_duration_minutes}"))
    for service in radius.services:
        own = policy.services.get(service)
        if own is not None and not own.allowed:
            out.append(Refusal(f"{_R}:services.{service}.allowed",
                               f"{service} never takes part in a GameDay"))
            continue
        share_limit = (own.max_instance_share if own is not None
                       and own.max_instance_share is not None else limits.max_instance_share)
        rule = (f"{_R}:services.{service}.max_instance_share"
                if own is not None and own.max_instance_share is not None
                else f"{where}.max_instance_share")
        replicas = facts.replicas.get(service)
        if not replicas:
            out.append(Refusal(rule, f"{service}'s replica count is unknown, so the share of "
                                     "instances the experiment takes cannot be bounded"))
        elif radius.instances / replicas > share_limit:
            out.append(Refusal(rule, f"{radius.instances} of {service}'s {replicas} instances "
                                     f"is {radius.instances / replicas:.0%}; at most "
                                     f"{share_limit:.0%}"))
    return out


def _timing(policy: ResiliencePolicy, facts: ResilienceFacts) -> list[Refusal]:
    out: list[Refusal] = []
    hours = policy.allowed_hours
    if not hours.allows(facts.now):
        out.append(Refusal(f"{_R}:allowed_hours",
                           f"{facts.now:%a %H:%M} UTC is outside {', '.join(hours.days)} "
                           f"{hours.start}-{hours.end} {hours.timezone}"))
    last = max((t for t in facts.earlier_runs if t <= facts.now), default=None)
    if last is not None and facts.now - last < timedelta(minutes=policy.min_interval):
        out.append(Refusal(f"{_R}:min_interval",
                           f"{facts.experiment} last ran {last:%Y-%m-%d %H:%M}; runs are at "
                           f"least {format_minutes(policy.min_interval)} apart"))
    if facts.runs_today >= policy.max_runs_per_day:
        out.append(Refusal(f"{_R}:max_runs_per_day",
                           f"{facts.runs_today} GameDays already started today; at most "
                           f"{policy.max_runs_per_day}"))
    return out


def _production(policy: ResiliencePolicy, facts: ResilienceFacts, radius: BlastRadius
                ) -> list[Refusal]:
    out: list[Refusal] = []
    limit = policy.refuse_during_incidents_at
    serious = [f"{i} ({s})" for i, s in facts.open_incidents if s.rank <= limit.rank]
    if serious:
        out.append(Refusal(f"{_R}:refuse_during_incidents_at",
                           f"open incident at {limit} or worse: {', '.join(serious)}"))
    if facts.steady_state_met is not True:
        detail = facts.steady_state_detail or ("not measured" if facts.steady_state_met is None
                                               else "a probe is outside its tolerance")
        out.append(Refusal(f"{_R}:steady_state", f"the steady state is not met before the "
                                                 f"start ({detail})"))
    for service in radius.services:
        left = facts.budget_left.get(service)
        if left is not None and left < policy.min_error_budget_left:
            out.append(Refusal(f"{_R}:min_error_budget_left",
                               f"{service} has {left:.0%} of its error budget left; an "
                               f"experiment needs {policy.min_error_budget_left:.0%}"))
    return out
