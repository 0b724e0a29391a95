"""Triage: the severity of an incident from its measured impact, by severity.yaml's rules,
capped when nothing corroborates the impact."""

from __future__ import annotations

from opsloop.models import Impact, Severity
from opsloop.policy.schema import Escalation, SeverityPolicy

CORROBORATION_RULE = "severity.yaml:corroboration"


def classify(impact: Impact, policy: SeverityPolicy) -> tuple[Severity, str]:
    """The severity and the rule that decided it, e.g. `severity.yaml:rules[0] sev1-tier1-outage`.

    Rules are checked in file order and the first match wins, so authors order them from
    the worst case down.
    """
    for index, rule in enumerate(policy.rules):
        if rule.when.matches(impact):
            return rule.severity, f"severity.yaml:rules[{index}] {rule.name}"
    return policy.default, "severity.yaml:default"


def cap_uncorroborated(
    severity: Severity, rule: str, uncorroborated: bool, policy: SeverityPolicy
) -> tuple[Severity, str]:
    """`severity` and `rule`, unless nothing corroborates the impact and it is more severe
    than the policy's cap: then the cap, under a rule naming it and the rule it overrode."""
    cap = policy.corroboration.cap if policy.corroboration is not None else None
    if cap is None or not uncorroborated or severity.rank >= cap.rank:
        return severity, rule
    return cap, (f"{CORROBORATION_RULE} cap {cap.value} "
                 f"(uncorroborated; {rule} said {severity.value})")


def escalation_for(severity: Severity, policy: SeverityPolicy) -> Escalation:
    """Who to page, whether to open a war room, where to notify for this severity."""
    return policy.escalation[severity]
