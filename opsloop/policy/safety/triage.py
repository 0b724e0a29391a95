"""Which severities severity.yaml can actually produce, reasoned over its rules.

Each rule's `when` is a box of impacts: an interval per measured field and a set of tiers
(only the tiers severity.yaml assigns exist). A rule can decide only if its box is not
empty and no earlier rule's box contains it (first match wins). Both tests are exact for
one earlier rule; a rule hidden only by several earlier ones together is not detected, so
every "can never" below is certain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from opsloop.models import Severity
from opsloop.policy.safety.common import WARN, Add, names
from opsloop.policy.schema import SeverityPolicy, SeverityRule

_S = "severity.yaml"
_INF = math.inf
# What each measured field can be (policy/impact.py): ratios are 0..1, the budget left can
# be overspent (below 0) but never above 1, counts and rates are never negative.
_DOMAIN: dict[str, tuple[float, float]] = {
    "error_ratio": (0.0, 1.0),
    "error_budget_remaining": (-_INF, 1.0),
    "latency_p99_ms": (0.0, _INF),
    "requests_per_second": (0.0, _INF),
    "burn_rate_1h": (0.0, _INF),
    "burn_rate_5m": (0.0, _INF),
    "saturation": (0.0, _INF),
    "blast_radius": (0.0, _INF),
}


@dataclass(frozen=True)
class _Box:
    tiers: frozenset[int]
    ranges: dict[str, tuple[float, float]]  # only the fields a rule bounds
    services: frozenset[str] | None  # services_any; None: any service

    def span(self, field: str) -> tuple[float, float]:
        return self.ranges.get(field, _DOMAIN.get(field, (-_INF, _INF)))

    def why_empty(self, all_tiers: frozenset[int]) -> str | None:
        if not self.tiers:
            return f"no service has a tier it accepts (tiers in use: {_tiers(all_tiers)})"
        for field, (low, high) in self.ranges.items():
            if low > high:
                return f"{field} would have to be at least {low:g} and at most {high:g}"
        if self.services is not None and not self.services:
            return "services_any is empty"
        return None

    def within(self, other: _Box) -> bool:
        """Every impact in this box is also in `other`."""
        if not self.tiers <= other.tiers:
            return False
        for field in {*self.ranges, *other.ranges}:
            low, high = self.span(field)
            other_low, other_high = other.span(field)
            if low < other_low or high > other_high:
                return False
        if other.services is None:
            return True
        return self.services is not None and self.services <= other.services


def _tiers(tiers: frozenset[int]) -> str:
    return ", ".join(str(t) for t in sorted(tiers))


def _box(rule: SeverityRule, tiers: frozenset[int]) -> _Box:
    allowed = set(tiers)
    ranges: dict[str, tuple[float, float]] = {}
    for field, op, bound in rule.when.bounds():
        if field == "tier":
            allowed = {t for t in allowed if (t >= bound if op == "gte" else t <= bound)}
            continue
        low, high = ranges.get(field, _DOMAIN.get(field, (-_INF, _INF)))
        ranges[field] = (max(low, bound), high) if op == "gte" else (low, min(high, bound))
    services = rule.when.services_any
    return _Box(frozenset(allowed), ranges, None if services is None else frozenset(services))


def reachable_severities(policy: SeverityPolicy, add: Add) -> None:
    """Triage that can never say SEV1 or SEV2 (or only ever SEV4), and rules hidden behind
    milder ones."""
    tiers = frozenset({policy.tiers.default, *policy.tiers.services.values()})
    everything = _Box(tiers, {}, None)
    live: list[tuple[int, _Box]] = []  # rules that can decide, with their boxes
    dead: dict[int, str] = {}  # rule index -> why it never decides
    catch_all: int | None = None  # the first rule that matches every incident
    for index, rule in enumerate(policy.rules):
        box = _box(rule, tiers)
        empty = box.why_empty(tiers)
        cover = next((i for i, earlier in live if box.within(earlier)), None)
        if empty is not None:
            dead[index] = f"it can never match: {empty}"
            if rule.severity.rank <= 2:
                _dead_rule(add, index, rule, dead[index])
        elif cover is not None:
            earlier = policy.rules[cover]
            dead[index] = f"rules[{cover}] {earlier.name!r} matches first"
            # Behind a catch-all every later rule is dead: said once, below, not per rule.
            if cover != catch_all and rule.severity.rank < earlier.severity.rank:
                _dead_rule(
                    add,
                    index,
                    rule,
                    f"rules[{cover}] {earlier.name!r} ({earlier.severity}) comes first and "
                    "matches every incident this rule would, so they get "
                    f"{earlier.severity}: move this rule above it",
                )
        else:
            live.append((index, box))
            if catch_all is None and everything.within(box):
                catch_all = index
    produced = {policy.rules[i].severity for i, _ in live}
    if catch_all is None:
        produced.add(policy.default)
    else:
        _catch_all(policy, catch_all, add)
    if produced == {Severity.SEV4}:
        add(
            _S,
            "rules",
            "every incident would be SEV4: no page, no war room, no human before acting"
            + _why_missing(policy, dead, catch_all, {Severity.SEV1, Severity.SEV2, Severity.SEV3}),
            Severity.SEV4.value,
            WARN,
        )
        return
    for severity in (Severity.SEV1, Severity.SEV2):
        if severity not in produced:
            add(
                _S,
                "rules",
                f"no incident can ever be {severity}, so its escalation and remediation "
                f"boundary never apply{_why_missing(policy, dead, catch_all, {severity})}: "
                f"add a {severity} rule a real outage matches",
                severity.value,
                WARN,
            )


def _dead_rule(add: Add, index: int, rule: SeverityRule, why: str) -> None:
    add(_S, f"rules[{index}]", f"this {rule.severity} rule never decides: {why}", rule.name, WARN)


def _catch_all(policy: SeverityPolicy, index: int, add: Add) -> None:
    """A rule whose bounds hold for any impact: worth a word if it hides anything worse."""
    rule = policy.rules[index]
    worse = [
        f"rules[{i}] {r.name!r} ({r.severity})"
        for i, r in enumerate(policy.rules[index + 1 :], start=index + 1)
        if r.severity.rank < rule.severity.rank
    ]
    if policy.default.rank < rule.severity.rank:
        worse.append(f"the default ({policy.default})")
    if not worse:
        return
    add(
        _S,
        f"rules[{index}]",
        f"this rule matches every incident (its bounds hold for any impact and tier), so "
        f"everything is {rule.severity} and {names(worse, 3)} never decide: tighten its "
        "`when` or move it last",
        rule.name,
        WARN,
    )


def _why_missing(
    policy: SeverityPolicy, dead: dict[int, str], catch_all: int | None, wanted: set[Severity]
) -> str:
    """Why no rule yields the `wanted` severities: a catch-all, or those rules are dead."""
    if catch_all is not None:
        return f" (rules[{catch_all}] {policy.rules[catch_all].name!r} matches every incident)"
    notes = [
        f"rules[{i}] {policy.rules[i].name!r}: {reason}"
        for i, reason in dead.items()
        if policy.rules[i].severity in wanted
    ]
    return f" ({names(notes, 3)})" if notes else ""
