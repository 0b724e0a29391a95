"""The scheduled agents opsloop knows, by name. Adding one: a module in `agents/`, a line here,
an entry in policies/schedule.yaml, and its tests.

Modules are imported when an agent is first used, so listing agents (and starting the CLI)
does not load every agent's dependencies.
"""

from __future__ import annotations

import importlib
from functools import cache

from opsloop.scheduled.base import ScheduledAgent

AGENTS: dict[str, str] = {
    "alert-quality": "opsloop.scheduled.agents.alert_quality:AlertQuality",
    "health-review": "opsloop.scheduled.agents.health_review:HealthReview",
    "signal-triage": "opsloop.scheduled.agents.signal_triage:SignalTriage",
    "cost-review": "opsloop.scheduled.agents.cost_review:CostReview",
    "policy-review": "opsloop.scheduled.agents.policy_review:PolicyReview",
    "capacity": "opsloop.scheduled.agents.capacity:Capacity",
    "performance": "opsloop.scheduled.agents.performance:Performance",
    "cost": "opsloop.scheduled.agents.cost:Cost",
    "rollouts": "opsloop.scheduled.agents.rollouts:Rollouts",
    "security": "opsloop.scheduled.agents.security:Security",
    "resilience": "opsloop.scheduled.agents.resilience:Resilience",
}

# Tests (and embedders) may add agents; they live beside the built-in ones.
_EXTRA: dict[str, ScheduledAgent] = {}


class UnknownAgent(LookupError):
    def __init__(self, name: str) -> None:
        known = ", ".join(sorted({*AGENTS, *_EXTRA}))
        super().__init__(f"no scheduled agent named {name!r} (known: {known})")


def names() -> list[str]:
    return sorted({*AGENTS, *_EXTRA})


def register(agent: ScheduledAgent) -> None:
    _EXTRA[agent.name] = agent


def unregister(name: str) -> None:
    _EXTRA.pop(name, None)


def agent(name: str) -> ScheduledAgent:
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in AGENTS:
        raise UnknownAgent(name)
    return _load(AGENTS[name])


@cache
def _load(target: str) -> ScheduledAgent:
    module, _, cls = target.partition(":")
    made: ScheduledAgent = getattr(importlib.import_module(module), cls)()
    return made
