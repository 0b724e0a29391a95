"""What the safety checks share: how they report, and when an action runs unattended."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opsloop.models import DecisionOutcome, Severity
from opsloop.policy.problems import ProblemLevel
from opsloop.policy.schema import ActionPolicy, RemediationPolicy, strictest

# (file, field path, why it is unsafe and what to do, the value, level)
Add = Callable[[str, str, str, Any, ProblemLevel], None]

ERROR = ProblemLevel.ERROR
WARN = ProblemLevel.WARNING
AUTO = DecisionOutcome.AUTO


def unattended_at(policy: RemediationPolicy, action: ActionPolicy) -> list[Severity]:
    """The severities at which this listed action can run without a human.

    As in the guardrails: the severity's ceiling and the action's own outcome, strictest
    wins. Other constraints (parameters, freeze, rate limits) only bite in some moments,
    so an action auto here does run unattended whenever they are quiet.
    """
    return [
        severity
        for severity in Severity
        if strictest(policy.severities[severity].outcome, action.outcome_for(severity) or AUTO)
        is AUTO
    ]


def names(items: Iterable[str], limit: int = 6) -> str:
    """`a, b, c` or `a, b, c and 4 more`: enough to act on, short enough to read."""
    listed = list(items)
    shown = ", ".join(listed[:limit])
    return shown if len(listed) <= limit else f"{shown} and {len(listed) - limit} more"
