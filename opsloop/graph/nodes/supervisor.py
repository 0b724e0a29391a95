"""The supervisor: routes the incident to specialists, fans out to them, merges what they found.

These are the two ends of the diagnosis subgraph: `route` picks the specialists, `fan_out`
sends the incident to each in parallel, `merge` settles the root cause and the proposals.
"""

from __future__ import annotations

from langgraph.runtime import Runtime
from langgraph.types import Send

from opsloop.agents.reasoner import incident_query
from opsloop.agents.specialists import SPECIALISTS
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import DiagnosisState, Finding, SpecialistInput
from opsloop.models import ActionCase, Diagnosis, EventKind, Hypothesis, Incident

_REPORTED = 4  # candidates, findings and ruled-out causes named in a novel failure's report


def answered_alerts(incident: Incident, ctx: LoopContext) -> set[str]:
    """The alert names the incident is about: its own, and those of the runbooks its alerts
    link to (a detector's MetricAnomaly on error_ratio links high-error-rate, which answers
    HighErrorRate)."""
    names = {a.name for a in incident.anomalies}
    for anomaly in incident.anomalies:
        linked = anomaly.annotations.get("runbook")
        if linked:
            try:
                names |= set(ctx.runbooks.get(linked).alerts)
            except KeyError:
                continue  # a link to a runbook this index does not have
    return names


def choose_specialists(incident: Incident, ctx: LoopContext) -> list[str]:
    """Specialists whose runbooks answer the incident's alerts first, each group in the
    order its best-matching runbook ranks; then the others by search. Text similarity
    alone let a specialist with many wordy runbooks (or none for these alerts) crowd out
    the one whose runbook is written for the alert."""
    hits = ctx.runbooks.search(incident_query(incident), k=len(ctx.runbooks.runbooks()))
    alerts = answered_alerts(incident, ctx)
    answering = {rb.specialist for rb in ctx.runbooks.runbooks()
                 if rb.specialist and rb.hypotheses and alerts & set(rb.alerts)}
    ranked: list[str] = []
    for hit in hits:
        if hit.specialist in SPECIALISTS and hit.specialist not in ranked:
            ranked.append(hit.specialist)
    chosen = ([s for s in ranked if s in answering] + [s for s in ranked if s not in answering])
    return chosen[:ctx.settings.max_specialists] or ["incident"]


def best_hypothesis(findings: list[Diagnosis], order: list[str]) -> tuple[Hypothesis, str] | None:
    """Highest confidence wins; ties go to the specialist routed first."""
    ranked = [
        (
            h.confidence,
            -order.index(d.specialist) if d.specialist in order else -99,
            h,
            d.specialist,
        )
        for d in findings
        for h in d.hypotheses[:1]
    ]
    if not ranked:
        return None
    _, _, hypothesis, specialist = max(ranked, key=lambda r: (r[0], r[1]))
    return hypothesis, specialist


def _why_out(h: Hypothesis) -> str | None:
    """What ruled a hypothesis out: a refuting check that held, else the check it failed."""
    refuted = [e for e in h.evidence if e.holds and e.expectation.startswith("refuted")]
    if refuted:
        return f"refuted: {refuted[0].description or refuted[0].check}"
    failed = [e for e in h.evidence if e.holds is not True
              and not e.expectation.startswith("refuted")]
    if failed and h.confidence == 0:
        return f"not shown: {failed[-1].description or failed[-1].check}"
    return None


def novel_report(findings: list[Diagnosis], min_confidence: float) -> str:
    """What an on-call engineer needs when no runbook explains the failure: the best
    candidates and how far they got, the evidence that did hold, and what ruled the
    catalogue's causes out."""
    pool = [h for d in findings for h in d.hypotheses]  # each list is ranked, best first
    parts = [f"no runbook hypothesis reached {min_confidence:.0%}: novel failure, escalated"]
    near = sorted((h for h in pool if h.confidence > 0), key=lambda h: (-h.confidence, h.id))
    if near:
        parts.append("closest: " + ", ".join(f"{h.category}@{h.service} ({h.confidence:.0%})"
                                             for h in near[:_REPORTED]))
    found: dict[str, str] = {}  # one observation per check: what was seen, not repeats
    for h in pool:
        for e in h.evidence:
            if e.holds and e.weight > 0 and not e.expectation.startswith("refuted"):
                found.setdefault(e.check, e.observed)
    if found:
        parts.append("evidence found: " + "; ".join(list(found.values())[:_REPORTED + 1]))
    ruled: dict[str, str] = {}
    for h in pool:
        why = _why_out(h)
        key = f"{h.category}@{h.service}"
        if why and key not in ruled and any(e.holds for e in h.evidence):
            ruled[key] = why
    if ruled:
        parts.append("ruled out: " + "; ".join(f"{k} ({v})" for k, v in
                                               list(ruled.items())[:_REPORTED + 1]))
    return ". ".join(parts)


def route(state: DiagnosisState, runtime: Runtime[LoopContext]) -> DiagnosisState:
    ctx = context_of(runtime)
    incident = state["incident"]
    chosen = choose_specialists(incident, ctx)
    routed = event(ctx, EventKind.ROUTED, f"routed to {', '.join(chosen)}", specialists=chosen)
    return {"incident": incident.model_copy(
        update={"specialists": chosen, "timeline": [*incident.timeline, routed]})}


def fan_out(state: DiagnosisState) -> list[Send]:
    """One specialist run per chosen specialist, in parallel, each with the routed incident."""
    incident = state["incident"]
    return [Send(name, SpecialistInput(incident=incident)) for name in incident.specialists]


def merge(state: DiagnosisState, runtime: Runtime[LoopContext]) -> DiagnosisState:
    ctx = context_of(runtime)
    incident = state["incident"]
    found: list[Finding] = state.get("findings", [])
    findings = [f.diagnosis for f in found]
    winner = best_hypothesis(findings, incident.specialists)
    update: dict[str, object] = {"diagnoses": findings}
    if winner is None or winner[0].confidence < ctx.settings.min_confidence:
        update.update(novel=True, root_cause=winner[0] if winner else None, actions=[])
        message = novel_report(findings, ctx.settings.min_confidence)
    else:
        hypothesis, specialist = winner
        diagnosis = next(d for d in findings if d.specialist == specialist)
        update.update(root_cause=hypothesis,
                      actions=[ActionCase(proposal=p) for p in diagnosis.proposals])
        message = f"root cause ({specialist}, {hypothesis.confidence:.0%}): {hypothesis.cause}"
    update["timeline"] = [*incident.timeline, *(e for f in found for e in f.timeline),
                          event(ctx, EventKind.DIAGNOSED, message)]
    return {"incident": incident.model_copy(update=update)}
