"""A bare LangGraph graph shaped like the operate loop, for graph_overhead.py to compare with.

Same topology (intake -> triage -> diagnose subgraph with a Send fan-out -> change subgraph),
the same SQLite checkpointer and serializer, `durability="sync"`, and the same payload: each
node hands back exactly what the real run's node wrote (read back from its checkpoint
writes), and does nothing else. What it
costs is LangGraph plus SQLite for that state; what opsloop costs above it is its own work.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt

from opsloop.graph.checkpoint import sqlite_checkpointer
from opsloop.models import Incident

CHANGE_STEPS = ("guardrails", "approval", "act", "verify", "learn")


@dataclass(frozen=True)
class Shape:
    """Which steps one real run took: the bare graph takes the same ones."""

    specialists: tuple[str, ...]
    change_steps: tuple[str, ...] = field(default_factory=tuple)
    paused: bool = False  # the real run stopped at approval, waiting for a human
    # What the real nodes wrote, in order, per graph: its input first, then each step's.
    outer: tuple[Any, ...] = ()
    diagnose: tuple[Any, ...] = ()
    change: tuple[Any, ...] = ()
    findings: tuple[Any, ...] = ()  # one per specialist run


class BareState(TypedDict):
    incident: Incident


class BareDiagnosis(TypedDict, total=False):
    incident: Incident
    findings: Annotated[list[Any], operator.add]


def _written(graph: str, step: int) -> Any:
    """A node that writes what the real run's step `step` of `graph` wrote."""
    def run(state: BareState, runtime: Runtime[Shape]) -> dict[str, Any]:
        values = getattr(runtime.context, graph)
        return {"incident": values[min(step, len(values) - 1)]}
    return run


def _specialist(name: str) -> Any:
    def run(state: BareDiagnosis, runtime: Runtime[Shape]) -> dict[str, Any]:
        shape = runtime.context
        return {"findings": shape.findings[shape.specialists.index(name)]}
    return run


def _fan_out(state: BareDiagnosis, runtime: Runtime[Shape]) -> list[Send]:
    return [Send(name, {"incident": state["incident"]}) for name in runtime.context.specialists]


def _change_step(step: str) -> Any:
    def run(state: BareState, runtime: Runtime[Shape]) -> dict[str, Any]:
        shape = runtime.context
        if step == "approval" and shape.paused:
            interrupt({"id": "bare"})
        return _written("change", shape.change_steps.index(step) + 1)(state, runtime)
    return run


def _next_after(step: str) -> Any:
    def pick(state: BareState, runtime: Runtime[Shape]) -> str:
        steps = runtime.context.change_steps
        later = steps[steps.index(step) + 1:] if step in steps else ()
        return later[0] if later else END
    return pick


def build_bare_graph(specialists: list[str], checkpointer: Any) -> Any:
    diag = StateGraph(BareDiagnosis, context_schema=Shape)
    diag.add_node("route", _written("diagnose", 1))
    for name in specialists:
        diag.add_node(name, _specialist(name))
    diag.add_node("merge", _written("diagnose", -1))
    diag.add_edge(START, "route")
    diag.add_conditional_edges("route", _fan_out, specialists)
    for name in specialists:
        diag.add_edge(name, "merge")
    diag.add_edge("merge", END)

    change = StateGraph(BareState, context_schema=Shape)
    for step in CHANGE_STEPS:
        change.add_node(step, _change_step(step))
    change.add_edge(START, "guardrails")
    for step in CHANGE_STEPS:
        change.add_conditional_edges(step, _next_after(step), [*CHANGE_STEPS[1:], END])

    loop = StateGraph(BareState, context_schema=Shape)
    loop.add_node("intake", _written("outer", 1))
    loop.add_node("triage", _written("outer", 2))
    loop.add_node("diagnose", diag.compile(name="diagnose"))
    loop.add_node("change", change.compile(name="change"))
    loop.add_edge(START, "intake")
    loop.add_edge("intake", "triage")
    loop.add_edge("triage", "diagnose")
    loop.add_edge("diagnose", "change")
    loop.add_edge("change", END)
    return loop.compile(checkpointer=checkpointer)


def shape_of(checkpointer: Any, incident: Incident) -> Shape:
    """The steps the real run took and what each wrote, read from its checkpoint writes."""
    rows = checkpointer.conn.execute(
        "SELECT checkpoint_ns, channel, type, value FROM writes WHERE thread_id = ? "
        "ORDER BY checkpoint_id, task_id, idx", (incident.id,)).fetchall()
    written: dict[str, list[Any]] = {"": [], "diagnose": [], "change": []}
    findings: list[Any] = []
    ran: list[str] = []
    for ns, channel, kind, value in rows:
        graph = ns.split(":", 1)[0]
        if channel == "incident":
            written[graph].append(checkpointer.serde.loads_typed((kind, value)))
        elif channel == "findings":
            findings.append(checkpointer.serde.loads_typed((kind, value)))
        elif graph == "change" and channel.startswith("branch:to:"):
            ran.append(channel.removeprefix("branch:to:"))
    paused = incident.status.value == "awaiting_approval"
    return Shape(tuple(incident.specialists), tuple(s for s in CHANGE_STEPS if s in ran),
                 paused, tuple(written[""]), tuple(written["diagnose"]),
                 tuple(written["change"]), tuple(findings))


def footprint(conn: Any, thread_id: str) -> tuple[int, int]:
    """(checkpoints, bytes written in checkpoints and pending writes) for one thread."""
    count, size = conn.execute("SELECT count(*), coalesce(sum(length(checkpoint)), 0) FROM "
                               "checkpoints WHERE thread_id = ?", (thread_id,)).fetchone()
    (writes,) = conn.execute("SELECT coalesce(sum(length(value)), 0) FROM writes WHERE "
                             "thread_id = ?", (thread_id,)).fetchone()
    return int(count), int(size) + int(writes)


__all__ = ["Shape", "build_bare_graph", "footprint", "shape_of", "sqlite_checkpointer"]
