"""Safety checks: settings the schema accepts but an operator should not run with unawares.

Errors are ways a SEV1 action could run without a human, which the loop's contract rules
out; warnings are legal settings that remove a safety net (rate limits, triage that can
never say SEV1, a silence over every alert). Every problem is marked `unsafe`, so an
operator who really means it can accept the errors (`accept_unsafe`) and still see them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from opsloop.policy.problems import PolicyProblem, ProblemLevel, display_path
from opsloop.policy.safety import intake, remediation, triage
from opsloop.policy.safety.common import Add

# (the parsed files a check reads, the check). A check runs only when all of them parsed.
_CHECKS: tuple[tuple[tuple[str, ...], Callable[..., None]], ...] = (
    (("remediation",), remediation.sev1_ceiling),
    (("remediation",), remediation.sev1_actions),
    (("remediation",), remediation.default_outcome),
    (("remediation", "rollback"), remediation.kill_switch),
    (("severity",), remediation.sev1_escalation),
    (("remediation",), remediation.outside_incident),
    (("remediation",), remediation.sev2_silent),
    (("remediation",), remediation.risk_adding_unattended),
    (("remediation", "rollback"), remediation.rate_limits),
    (("remediation", "capacity"), remediation.scale_to_zero),
    (("severity",), triage.reachable_severities),
    (("intake",), intake.long_silences),
    (("intake", "alerts", "health", "severity"), intake.broad_silences),
    (("intake", "alerts", "health", "severity"), intake.inhibit_rules),
)


def safety_problems(directory: Path, parsed: dict[str, Any]) -> list[PolicyProblem]:
    """Every unsafe setting in the files that parsed, each marked `unsafe`."""
    out: list[PolicyProblem] = []

    def add(file: str, field: str, message: str, value: Any, level: ProblemLevel) -> None:
        out.append(
            PolicyProblem(
                display_path(directory / file), field, message, value, level, unsafe=True
            )
        )

    report: Add = add
    for needs, check in _CHECKS:
        if all(name in parsed for name in needs):
            check(*(parsed[name] for name in needs), report)
    return out


def accept_unsafe(problems: list[PolicyProblem]) -> list[PolicyProblem]:
    """The same problems, with unsafe errors downgraded to warnings marked `allowed`."""
    return [
        replace(p, level=ProblemLevel.WARNING, allowed=True)
        if p.unsafe and p.level is ProblemLevel.ERROR
        else p
        for p in problems
    ]


__all__ = ["accept_unsafe", "safety_problems"]
