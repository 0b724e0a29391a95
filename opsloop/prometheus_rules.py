"""Prometheus alerting rules generated from policies/alerts.yaml, so the alerts Prometheus
fires are the ones opsloop's own evaluator (`opsloop.observe`) would fire.

Each rule becomes `<agg>_over_time((<metric query>)[window:step]) <op> threshold`, divided
by the same aggregate `offset` the baseline when the rule compares against one, with
`for:` set to `for_minutes`. Durations scale with `minute_seconds`, so a simulator whose
minute lasts a second gets rules whose minute lasts a second too.
"""

from __future__ import annotations

import re
from typing import Any

from opsloop.policy.schema.alerts import AlertRule
from opsloop.tools.promql import PromQLMap, duration, regex_literal

_FIELD = re.compile(r"\{(\w+)(?::([^{}]*))?\}")


def _services_regex(rule: AlertRule) -> str:
    if "*" in rule.services:
        return ".+"
    # regex_literal escapes for a PromQL string; the map inserts it verbatim.
    return "|".join(regex_literal(s) for s in rule.services)


def rule_expr(rule: AlertRule, promql: PromQLMap, minute_seconds: float = 60.0) -> str:
    """The PromQL expression whose every result series is one firing alert."""
    services = _services_regex(rule)
    template = promql.template(rule.metric)
    query = template.replace("{service}", services)
    window = duration(rule.window_minutes * minute_seconds)
    step = duration(minute_seconds)
    if rule.aggregate == "last":
        current = f"({query})"
    else:
        current = f"{rule.aggregate}_over_time(({query})[{window}:{step}])"
    if rule.baseline_offset_minutes is None:
        return f"{current} {rule.op} {rule.threshold!r}"
    offset = duration(rule.baseline_offset_minutes * minute_seconds)
    if rule.aggregate == "last":
        base = f"({query} offset {offset})"
    else:
        base = f"{rule.aggregate}_over_time(({query})[{window}:{step}] offset {offset})"
    # A zero baseline has no ratio; opsloop's evaluator says no data there, and so does this.
    return f"({current} / ({base} > 0)) {rule.op} {rule.threshold!r}"


def _annotation(template: str, rule: AlertRule) -> str:
    """opsloop's `{service}` / `{value:.1%}` placeholders in Prometheus' Go templating."""

    def one(match: re.Match[str]) -> str:
        name, spec = match.group(1), match.group(2) or ""
        if name == "service":
            return "{{ $labels.service }}"
        if name == "metric":
            return rule.metric
        if name == "threshold":
            return f"{rule.threshold:g}"
        if name != "value":
            return match.group(0)
        if spec.endswith("%"):
            return "{{ $value | humanizePercentage }}"
        if spec:
            return '{{ printf "%' + spec + '" $value }}'
        return "{{ $value }}"

    return _FIELD.sub(one, template)


def alerting_rules(rules: list[AlertRule], promql: PromQLMap, minute_seconds: float = 60.0,
                   labels: dict[str, str] | None = None,
                   group: str = "opsloop-alerts", interval: float | None = None) -> dict[str, Any]:
    """A Prometheus rule file (as a dict ready for YAML) holding one group of alert rules."""
    out = []
    for rule in rules:
        entry: dict[str, Any] = {
            "alert": rule.name,
            "expr": rule_expr(rule, promql, minute_seconds),
            "labels": {**(labels or {}), **rule.labels},
            "annotations": {k: _annotation(v, rule) for k, v in rule.annotations.items()},
        }
        # opsloop fires on the for_minutes-th consecutive minute the condition holds, i.e.
        # after it has been pending for_minutes - 1 minutes: Prometheus' `for` counts those.
        if rule.for_minutes > 1:
            entry["for"] = duration((rule.for_minutes - 1) * minute_seconds)
        out.append(entry)
    spec: dict[str, Any] = {"name": group, "rules": out}
    if interval is not None:
        spec["interval"] = duration(interval)
    return {"groups": [spec]}
