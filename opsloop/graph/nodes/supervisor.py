"""supervisor: routes the incident to specialists, then merges what they found."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from opsloop.agents.reasoner import incident_query
from opsloop.agents.specialists import SPECIALISTS
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import LoopState
from opsloop.models import Diagnosis, Hypothesis, Incident
from opsloop.models.catalog import SpecialistName


def route(incident: Incident, ctx: LoopContext) -> list[str]:
    """Specialists in the order the best-matching runbooks name them."""
    hits = ctx.runbooks.search(incident_query(incident), k=2 * ctx.settings.max_specialists)
    chosen: list[str] = []
    for hit in hits:
        if hit.specialist in SPECIALISTS and hit.specialist not in chosen:
            chosen.append(hit.specialist)
        if len(chosen) == ctx.settings.max_specialists:
            break
    return chosen or ["incident"]


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


def supervisor(
    state: LoopState, runtime: Runtime[LoopContext]
) -> Command[SpecialistName | Literal["guardrails"]]:
    ctx = context_of(runtime)
    incident = state["incident"]
    if not incident.specialists:
        chosen = route(incident, ctx)
        incident = incident.model_copy(update={"specialists": chosen}, deep=True)
        return Command(
            update={
                "incident": incident,
                "events": [
                    event(ctx, "routed", f"routed to {', '.join(chosen)}", specialists=chosen)
                ],
            },
            goto=[Send(name, {"incident": incident}) for name in chosen],
        )

    findings = state.get("findings", [])
    winner = best_hypothesis(findings, incident.specialists)
    update: dict[str, object] = {"diagnoses": findings}
    if winner is None or winner[0].confidence < ctx.settings.min_confidence:
        update.update(novel=True, root_cause=winner[0] if winner else None, proposals=[])
        message = "no runbook hypothesis reached the confidence threshold: novel failure"
    else:
        hypothesis, specialist = winner
        diagnosis = next(d for d in findings if d.specialist == specialist)
        update.update(root_cause=hypothesis, proposals=diagnosis.proposals)
        message = f"root cause ({specialist}, {hypothesis.confidence:.0%}): {hypothesis.cause}"
    incident = incident.model_copy(update=update, deep=True)
    return Command(
        update={"incident": incident, "events": [event(ctx, "diagnosed", message)]},
        goto="guardrails",
    )
