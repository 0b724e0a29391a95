"""Checks beyond the schema: names, references between files, numbers that look like typos,
and (opsloop/policy/safety) settings that are valid but unsafe to run with.

Each check runs when the files it reads parsed, so one broken file does not hide the
problems of another.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsloop.models.catalog import ACTION_TYPES, METRICS
from opsloop.policy.problems import PolicyProblem, ProblemLevel, display_path
from opsloop.policy.safety import safety_problems
from opsloop.policy.schema import (
    AlertsPolicy,
    CapacityPolicy,
    HealthPolicy,
    RemediationPolicy,
    RollbackPolicy,
    SeverityPolicy,
)

WARN = ProblemLevel.WARNING
ERROR = ProblemLevel.ERROR
# Impact fields that are fractions; `error_ratio_gte: 20` almost surely meant 0.2.
_FRACTIONS = ("error_ratio", "error_budget_remaining")

Add = Callable[[str, str, str, Any, ProblemLevel], None]


def semantic_problems(directory: Path, parsed: dict[str, Any]) -> list[PolicyProblem]:
    out: list[PolicyProblem] = []

    def add(file: str, field: str, message: str, value: Any, level: ProblemLevel) -> None:
        out.append(PolicyProblem(display_path(directory / file), field, message, value, level))

    if "alerts" in parsed:
        _alerts(parsed["alerts"], add)
    if "health" in parsed:
        _health(parsed["health"], parsed.get("severity"), add)
    if "severity" in parsed:
        _severity(parsed["severity"], add)
    if "remediation" in parsed:
        _remediation(parsed["remediation"], add)
        if "rollback" in parsed:
            _rollback(parsed["rollback"], parsed["remediation"], add)
    if "capacity" in parsed and "severity" in parsed:
        _capacity(parsed["capacity"], parsed["severity"], add)
    return out + safety_problems(directory, parsed)


def _alerts(alerts: AlertsPolicy, add: Add) -> None:
    names = Counter(rule.name for rule in alerts.rules)
    for i, rule in enumerate(alerts.rules):
        if alerts.quality.require_runbook_or_action and not rule.actionable:
            add(
                "alerts.yaml",
                f"rules[{i}].annotations",
                f"alert rule {rule.name!r} has no runbook or action: add annotations.runbook "
                "(a runbook id) or annotations.action (what to do)",
                rule.annotations,
                ERROR,
            )
        if names[rule.name] > 1:
            add(
                "alerts.yaml",
                f"rules[{i}].name",
                "two alert rules share this name; rename one",
                rule.name,
                ERROR,
            )
        if rule.metric not in METRICS:
            add(
                "alerts.yaml",
                f"rules[{i}].metric",
                "not a metric telemetry provides",
                rule.metric,
                WARN,
            )


def _health(health: HealthPolicy, severity: SeverityPolicy | None, add: Add) -> None:
    names = Counter(slo.name for slo in health.slos)
    for i, slo in enumerate(health.slos):
        if names[slo.name] > 1:
            add(
                "health.yaml",
                f"slos[{i}].name",
                "two SLOs share this name; alerts could not tell them apart",
                slo.name,
                ERROR,
            )
        if slo.indicator.metric not in METRICS:
            add(
                "health.yaml",
                f"slos[{i}].indicator.metric",
                "not a metric telemetry provides",
                slo.indicator.metric,
                WARN,
            )
        if severity is not None and slo.service not in severity.tiers.services:
            add(
                "health.yaml",
                f"slos[{i}].service",
                f"no tier in severity.yaml; it gets the default tier {severity.tiers.default}: "
                "add it under tiers.services",
                slo.service,
                WARN,
            )


def _severity(severity: SeverityPolicy, add: Add) -> None:
    names = Counter(rule.name for rule in severity.rules)
    for i, rule in enumerate(severity.rules):
        if names[rule.name] > 1:
            add(
                "severity.yaml",
                f"rules[{i}].name",
                "two rules share this name; decisions would be ambiguous",
                rule.name,
                ERROR,
            )
        for field, op, bound in rule.when.bounds():
            if field in _FRACTIONS and not 0 <= bound <= 1:
                add(
                    "severity.yaml",
                    f"rules[{i}].when.{field}_{op}",
                    f"{field} is a fraction from 0 to 1 (0.2 = 20%)",
                    bound,
                    ERROR,
                )


def _remediation(remediation: RemediationPolicy, add: Add) -> None:
    for action_type, action in remediation.actions.items():
        if action_type not in ACTION_TYPES and not action.denied_everywhere():
            add(
                "remediation.yaml",
                f"actions.{action_type}",
                "the actuator cannot execute this action type, so allowing it has no effect: "
                "deny it or remove it",
                action_type,
                WARN,
            )
    for action_type in ACTION_TYPES:
        if action_type not in remediation.actions:
            add(
                "remediation.yaml",
                "actions",
                f"the actuator can do {action_type!r} but no entry names it, so it falls back "
                f"to default_outcome ({remediation.default_outcome})",
                action_type,
                WARN,
            )


def _rollback(rollback: RollbackPolicy, remediation: RemediationPolicy, add: Add) -> None:
    for action_type in rollback.actions:
        if action_type not in remediation.actions:
            add(
                "rollback.yaml",
                f"actions.{action_type}",
                "not an action type in remediation.yaml",
                action_type,
                WARN,
            )
    if rollback.kill_switch.action not in remediation.actions:
        add(
            "rollback.yaml",
            "kill_switch.action",
            "not an action type in remediation.yaml: use one listed there (disable_flag)",
            rollback.kill_switch.action,
            ERROR,
        )


def _capacity(capacity: CapacityPolicy, severity: SeverityPolicy, add: Add) -> None:
    for service in capacity.replicas.services:
        if service not in severity.tiers.services:
            add(
                "capacity.yaml",
                f"replicas.services.{service}",
                "no tier in severity.yaml: a typo?",
                service,
                WARN,
            )
