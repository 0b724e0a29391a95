"""Alerts that never reach anyone: silences over everything or for months, inverted inhibition.

Matchers are tried on the alerts these policies themselves raise: each alerts.yaml rule on
each service it watches, and each SLO's burn-rate alert per window. The `env` label is left
out on purpose: a silence scoped only to an environment still mutes everything there.
"""

from __future__ import annotations

from datetime import timedelta

from opsloop.policy.safety.common import WARN, Add
from opsloop.policy.schema import AlertsPolicy, HealthPolicy, IntakePolicy, Matcher, SeverityPolicy

_I = "intake.yaml"
# Longer than this a silence is not a maintenance window but an alert switched off, which
# belongs in alerts.yaml where it is reviewed, not in a silence nobody remembers.
LONGEST_SILENCE = timedelta(days=30)
# The alert opsloop.policy.health.burn_rate_anomalies raises for a burning SLO.
BURN_ALERT = "ErrorBudgetBurn"

Labels = dict[str, str]


def long_silences(intake: IntakePolicy, add: Add) -> None:
    for index, silence in enumerate(intake.silences):
        length = silence.ends_at - silence.starts_at
        if length <= LONGEST_SILENCE:
            continue
        add(
            _I,
            f"silences[{index}].endsAt",
            f"this silence lasts {length.days} days (from {silence.starts_at:%Y-%m-%d}); "
            f"beyond {LONGEST_SILENCE.days} days it hides whatever breaks meanwhile. Silence "
            "a maintenance window, or fix or remove the alert rule itself",
            silence.ends_at.isoformat(),
            WARN,
        )


def broad_silences(
    intake: IntakePolicy,
    alerts: AlertsPolicy,
    health: HealthPolicy,
    severity: SeverityPolicy,
    add: Add,
) -> None:
    known = known_alerts(alerts, health, severity)
    paging = [labels for labels in known if labels.get("severity") == "page"]
    for index, silence in enumerate(intake.silences):
        muted = [labels for labels in known if _match(silence.matchers, labels)]
        if len(muted) == len(known):
            scope = "every alert these policies raise, on every service"
        elif paging and all(_match(silence.matchers, labels) for labels in paging):
            scope = "every paging alert, on every service"
        else:
            continue
        add(
            _I,
            f"silences[{index}].matchers",
            f"this silence mutes {scope}, so incidents would open for nothing until "
            f"{silence.ends_at:%Y-%m-%d}: narrow it with alertname and service matchers",
            [_text(m) for m in silence.matchers],
            WARN,
        )


def inhibit_rules(
    intake: IntakePolicy,
    alerts: AlertsPolicy,
    health: HealthPolicy,
    severity: SeverityPolicy,
    add: Add,
) -> None:
    known = known_alerts(alerts, health, severity)
    for index, rule in enumerate(intake.inhibit_rules):
        paging_targets = [
            labels
            for labels in known
            if labels.get("severity") == "page" and _match(rule.target_matchers, labels)
        ]
        if not paging_targets:
            continue
        sources = [labels.get("severity") for labels in known
                   if _match(rule.source_matchers, labels)]
        if "ticket" in sources and "page" not in sources:
            add(
                _I,
                f"inhibit_rules[{index}]",
                "a ticket-level alert mutes paging alerts here (the sources are only "
                "severity=ticket alerts, the targets include severity=page ones): a minor "
                "alert would hide a page. Swap source_matchers and target_matchers",
                [_text(m) for m in rule.source_matchers],
                WARN,
            )
        if not rule.equal:
            add(
                _I,
                f"inhibit_rules[{index}]",
                "without `equal` labels, one source alert firing on any service mutes these "
                "paging alerts on every service: add equal: [service] (or the labels that "
                "tie a cause to its symptoms)",
                [_text(m) for m in rule.target_matchers],
                WARN,
            )


def known_alerts(alerts: AlertsPolicy, health: HealthPolicy, severity: SeverityPolicy
                 ) -> list[Labels]:
    """The label sets of every alert these policies can raise (without `env`)."""
    services = sorted({*severity.tiers.services, *(slo.service for slo in health.slos)})
    out: list[Labels] = []
    for rule in alerts.rules:
        watched = services if "*" in rule.services else rule.services
        for service in watched or ["any-service"]:
            out.append({**rule.labels, "alertname": rule.name, "service": service})
    detectors = alerts.detectors
    if detectors is not None:
        for service in [s for s in services if detectors.applies_to(s)]:
            for detected in detectors.metrics:
                out.append({**detectors.labels, "alertname": detectors.alertname,
                            "service": service, "metric": detected.metric})
    for slo in health.slos:
        for window in health.burn_rate_windows:
            out.append(
                {
                    "alertname": BURN_ALERT,
                    "service": slo.service,
                    "slo": slo.name,
                    "window": window.label,
                    "severity": window.severity,
                }
            )
    return out


def _match(matchers: list[Matcher], labels: Labels) -> bool:
    return all(m.matches(labels) for m in matchers if m.name != "env")


def _text(matcher: Matcher) -> str:
    op = {(True, False): "=", (False, False): "!=", (True, True): "=~", (False, True): "!~"}
    return f'{matcher.name}{op[(matcher.is_equal, matcher.is_regex)]}"{matcher.value}"'
