"""The specialist nodes: each diagnoses with its own tools and its own runbooks."""

from __future__ import annotations

from typing import Protocol

from langgraph.runtime import Runtime

from opsloop.agents.llm_specialist import diagnose_with_model
from opsloop.agents.reasoner import diagnose
from opsloop.agents.specialists import SPECIALISTS
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.state import DiagnosisState, Finding, SpecialistInput
from opsloop.models import EventKind
from opsloop.tools.toolbox import Toolbox


class SpecialistNode(Protocol):
    def __call__(self, state: SpecialistInput, runtime: Runtime[LoopContext]
                 ) -> DiagnosisState: ...


def make_specialist(name: str) -> SpecialistNode:
    spec = SPECIALISTS[name]

    def specialist(state: SpecialistInput, runtime: Runtime[LoopContext]) -> DiagnosisState:
        ctx = context_of(runtime)
        incident = state["incident"]
        toolbox = Toolbox(
            ctx.telemetry,
            allowed=set(spec.tools),
            max_calls=ctx.settings.tool_calls_per_specialist,
            clock=ctx.clock,
        )
        notes: list[tuple[EventKind, str]] = []
        if ctx.model is not None:  # the model reasons; it falls back to offline by itself
            run = diagnose_with_model(name, incident, toolbox, ctx.runbooks, ctx.model,
                                      ctx.settings)
            diagnosis, notes = run.diagnosis, run.notes
        else:
            diagnosis = diagnose(
                name,
                incident,
                toolbox,
                ctx.runbooks,
                k_runbooks=ctx.settings.runbooks_per_specialist,
                min_confidence=ctx.settings.min_confidence,
            )
        top = diagnosis.top
        summary = (
            f"{name}: {top.category} on {top.service} ({top.confidence:.0%})"
            if top
            else f"{name}: no hypothesis from runbooks {diagnosis.runbooks}"
        )
        timeline = [
            *(event(ctx, kind, message, specialist=name) for kind, message in notes),
            event(ctx, EventKind.SPECIALIST, summary, specialist=name, tool_calls=toolbox.calls,
                  reasoner=diagnosis.reasoner, model_calls=len(diagnosis.model_calls)),
        ]
        return {"findings": [Finding(diagnosis=diagnosis, timeline=timeline)]}

    specialist.__name__ = f"specialist_{name}"
    return specialist
