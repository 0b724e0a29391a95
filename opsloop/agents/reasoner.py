"""The offline reasoner: follow runbooks, run their checks, score hypotheses on the evidence.

It sees only what the tools return. Retrieval decides which runbooks are worth testing;
the checks decide which cause is believed. Confidence of a hypothesis on one service:

    0                                    if a required check does not hold (or has no data)
    max(0, satisfied - refuting) / total otherwise

where `satisfied` is the weight of supporting checks that hold, `refuting` the weight of
`refutes: true` checks that hold, and `total` the weight of all supporting checks. A check
the tool could not answer counts as not holding: missing evidence never raises confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsloop.models import (
    Diagnosis,
    Evidence,
    Hypothesis,
    Incident,
    ParamValue,
    RemediationAction,
    RemediationProposal,
    ToolStatus,
)
from opsloop.runbooks.checks import (
    Unbound,
    fill_expect,
    parse_expect,
    render,
    render_lenient,
    resolve,
)
from opsloop.runbooks.format import HypothesisSpec, Runbook
from opsloop.tools.protocols import RunbookIndex
from opsloop.tools.toolbox import Toolbox

_MAX_HYPOTHESES = 12  # enough to explain what was ruled out without flooding the record
_PATH_DEPTH = 3  # how far below the alerting services the dependency walk goes
_PATH_SERVICES = 16  # at most this many services on the walk, alerting ones included


@dataclass
class _Scored:
    hypothesis: Hypothesis
    spec: HypothesisSpec
    runbook: Runbook
    variables: dict[str, Any]
    satisfied: float
    progress: float = 0.0  # supporting weight that held before a required check failed
    order: int = 0
    notes: list[str] = field(default_factory=list)


def incident_query(incident: Incident) -> str:
    """The text an on-call engineer would search runbooks with: alert names, labels, prose."""
    parts = [incident.title]
    for anomaly in incident.anomalies:
        parts.append(anomaly.name)
        parts += [v for k, v in sorted(anomaly.labels.items()) if k != "alertname"]
        parts += [anomaly.annotations.get(k, "") for k in ("summary", "description")]
    return "\n".join(p for p in parts if p)


def affected_services(incident: Incident) -> list[str]:
    services = list(incident.services)
    for anomaly in incident.anomalies:
        if anomaly.service and anomaly.service not in services:
            services.append(anomaly.service)
    return services


def path_services(services: list[str], toolbox: Toolbox) -> list[str]:
    """The alerting services, then what they depend on (breadth first, bounded): a fault can
    live in a service that never alerts, seen only by its callers."""
    found = list(services)
    frontier = list(services)
    for _ in range(_PATH_DEPTH):
        nxt: list[str] = []
        for name in frontier:
            info = toolbox.call("service_info", service=name)
            deps = info.data.get("dependencies") if info.status == ToolStatus.OK else None
            for dep in deps if isinstance(deps, list) else []:
                if isinstance(dep, str) and dep not in found and len(found) < _PATH_SERVICES:
                    found.append(dep)
                    nxt.append(dep)
        frontier = nxt
    return found


def candidate_runbooks(specialist: str, incident: Incident, index: RunbookIndex,
                        k: int) -> list[Runbook]:
    hits = index.search(incident_query(incident), k=k, specialist=specialist)
    ids = [h.runbook_id for h in hits]
    # Runbooks written for a firing alert are always tested: several share one alert
    # (HighErrorRate has many causes) and only the evidence can tell them apart.
    firing = {a.name for a in incident.anomalies}
    ids += [rb.id for rb in index.runbooks()
            if rb.specialist == specialist and firing & set(rb.alerts) and rb.id not in ids]
    return [index.get(i) for i in ids]


def evaluate(spec: HypothesisSpec, runbook: Runbook, service: str, toolbox: Toolbox) -> _Scored:
    """Run one hypothesis's checks against one service and score them."""
    variables: dict[str, Any] = {"service": service}
    evidence: list[Evidence] = []
    total = satisfied = refuting = 0.0
    rejected = False
    for check in spec.checks:
        expectation = check.expect or "tool answers"
        if not check.refutes:
            total += check.weight
        try:
            args = {k: render(v, variables) for k, v in check.args.items()}
            expect = fill_expect(check.expect, variables) if check.expect else None
        except Unbound as exc:
            # A refuting check about something that is not there (no dependency with
            # telemetry, no caller) cannot hold; a supporting one is simply unanswered.
            evidence.append(Evidence(check=check.id, description=check.description,
                                     tool=check.tool, args=dict(check.args),
                                     status=ToolStatus.ERROR,
                                     observed=f"not run: {exc}"
                                     + (" (nothing to examine)" if check.refutes else ""),
                                     expectation=("refuted if " if check.refutes else "")
                                     + expectation,
                                     holds=False if check.refutes else None,
                                     weight=check.weight))
            rejected = rejected or check.required
            continue
        result = toolbox.call(check.tool, args)
        holds: bool | None = None
        if result.status == ToolStatus.OK:
            holds = parse_expect(expect).holds(result.data) if expect else True
            for name, path in check.bind.items():
                value = resolve(result.data, path)
                if value is not None:
                    variables[name] = value
        evidence.append(Evidence(check=check.id, description=check.description, tool=check.tool,
                                 args=result.args, status=result.status,
                                 observed=result.summary or result.error,
                                 expectation=("refuted if " if check.refutes else "")
                                 + (expect or expectation),
                                 holds=holds, weight=check.weight))
        if check.refutes:
            refuting += check.weight if holds else 0.0
        elif holds:
            satisfied += check.weight
        elif check.required:
            rejected = True
            break  # the hypothesis is out; spend no more of the tool budget on it
    confidence = 0.0 if rejected or total <= 0 else max(0.0, satisfied - refuting) / total
    target = blamed_service(spec, variables)
    hypothesis = Hypothesis(
        id=f"{runbook.id}.{spec.id}@{target}", cause=render_lenient(spec.cause, variables),
        category=spec.category, service=target, runbook=runbook.id,
        confidence=round(min(confidence, 1.0), 4), evidence=evidence,
    )
    return _Scored(hypothesis, spec, runbook, variables, satisfied if not rejected else 0.0,
                   progress=satisfied)


def blamed_service(spec: HypothesisSpec, variables: Mapping[str, Any]) -> str:
    """Whom the hypothesis blames (e.g. `{dependency}`); the checked service if unbound."""
    try:
        return str(render(spec.service, variables))
    except Unbound:
        return str(variables["service"])


@dataclass(frozen=True)
class FilledAction:
    """A remediation template with its placeholders filled from bound values."""

    type: str
    service: str
    params: dict[str, ParamValue]
    reason: str  # "" when the template gives none


def fill_remediation(spec: HypothesisSpec, variables: Mapping[str, Any]
                     ) -> tuple[list[FilledAction], list[str]]:
    """The hypothesis's remediation, filled; a template that cannot be filled is left out and
    named in the notes (an unbound variable, or a value that is not a plain scalar)."""
    filled: list[FilledAction] = []
    notes: list[str] = []
    for template in spec.remediation:
        try:
            service = render(template.service, variables)
            params = {k: render(v, variables) for k, v in template.params.items()}
        except Unbound as exc:
            notes.append(f"dropped {template.action} for {blamed_service(spec, variables)}: "
                         f"{exc}")
            continue
        bad = [k for k, v in params.items() if not _plain(v)]
        if not isinstance(service, str) or bad:
            notes.append(f"dropped {template.action}: {bad or ['service']} is not a plain value")
            continue
        filled.append(FilledAction(template.action, service, params,
                                   render_lenient(template.reason, variables)))
    return filled, notes


def _plain(value: Any) -> bool:
    """A value an action parameter can hold: text, a whole number, a finite number, a flag."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


def _actions(scored: _Scored, incident: Incident, specialist: str,
             start: int) -> tuple[list[RemediationAction], list[str]]:
    filled, notes = fill_remediation(scored.spec, scored.variables)
    actions = [RemediationAction(
        id=f"{incident.id}-{specialist}-a{start + n}", type=f.type, service=f.service,
        params=f.params, reason=f.reason or scored.hypothesis.cause)
        for n, f in enumerate(filled, start=1)]
    return actions, notes


def diagnose(specialist: str, incident: Incident, toolbox: Toolbox, index: RunbookIndex, *,
             k_runbooks: int = 3, min_confidence: float = 0.6) -> Diagnosis:
    """Rank the causes the specialist's runbooks propose, on the evidence the tools return."""
    runbooks = candidate_runbooks(specialist, incident, index, k_runbooks)
    services = affected_services(incident)
    walk: list[str] | None = None  # the dependency walk, only when a hypothesis asks for it
    scored: list[_Scored] = []
    for rb in runbooks:
        for spec in rb.hypotheses:
            suspects = services
            if spec.suspects == "path":
                walk = path_services(services, toolbox) if walk is None else walk
                suspects = walk
            for service in suspects:
                if rb.applies_to(service):
                    item = evaluate(spec, rb, service, toolbox)
                    item.order = len(scored)
                    scored.append(item)
    # Ruled-out hypotheses that got furthest come first: they are what the record keeps to
    # explain what was considered.
    scored.sort(key=lambda s: (-s.hypothesis.confidence, -s.satisfied, -s.progress, s.order))
    unique: list[_Scored] = []
    seen: set[tuple[str, str]] = set()
    for item in scored:
        key = (item.hypothesis.category, item.hypothesis.service)
        if key not in seen:
            seen.add(key)
            unique.append(item)

    notes: list[str] = []
    proposals: list[RemediationProposal] = []
    winner = unique[0] if unique and unique[0].hypothesis.confidence > 0 else None
    if winner is not None:
        # The same fix is due wherever the same cause is confirmed (e.g. two saturated services).
        targets = [winner] + [s for s in unique[1:] if s.spec is winner.spec
                              and s.hypothesis.confidence >= min_confidence]
        described: set[str] = set()
        for item in targets:
            actions, dropped = _actions(item, incident, specialist, len(described))
            notes += dropped
            actions = [a for a in actions if a.describe() not in described]
            described |= {a.describe() for a in actions}
            item.hypothesis.remediation = actions
            if item.hypothesis.confidence < min_confidence:
                continue
            proposals += [RemediationProposal(
                action=a, specialist=specialist, hypothesis_id=item.hypothesis.id,
                confidence=item.hypothesis.confidence,
                rationale=_rationale(item.hypothesis)) for a in actions]

    summary = _summary(specialist, winner, min_confidence, runbooks, toolbox, notes)
    return Diagnosis(specialist=specialist,
                     hypotheses=[s.hypothesis for s in unique[:_MAX_HYPOTHESES]],
                     runbooks=[rb.id for rb in runbooks], proposals=proposals, summary=summary)


def _rationale(h: Hypothesis) -> str:
    held = [e.observed for e in h.evidence if e.holds and not e.expectation.startswith("refuted")]
    return f"{h.cause}. Evidence: " + "; ".join(held) if held else h.cause


def _summary(specialist: str, winner: _Scored | None, min_confidence: float,
             runbooks: list[Runbook], toolbox: Toolbox, notes: list[str]) -> str:
    calls = f"{len(runbooks)} runbook(s), {toolbox.calls} tool call(s)"
    if not runbooks:
        text = f"{specialist}: no runbook matched the alerts"
    elif winner is None:
        text = f"{specialist}: no runbook hypothesis is supported by the evidence ({calls})"
    else:
        h = winner.hypothesis
        verdict = "" if h.confidence >= min_confidence else (
            f"; below the {min_confidence:.0%} needed to propose a fix")
        text = (f"{specialist}: {h.category} on {h.service} ({h.confidence:.0%}{verdict}): "
                f"{h.cause} ({calls})")
    budget = toolbox.max_calls is not None and toolbox.calls >= toolbox.max_calls
    extra = [*notes, *(["tool budget used up; some checks went unanswered"] if budget else [])]
    return text + ("; " + "; ".join(extra) if extra else "")
