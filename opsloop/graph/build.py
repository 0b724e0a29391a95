"""The operate loop, assembled. Reads like the flow in DESIGN.md:

intake -> triage -> diagnose -> change
  diagnose: route -> specialist(s), in parallel -> merge
  change:   guardrails -> [approval] -> act -> verify -> learn

`diagnose` and `change` are compiled subgraphs; the change path is built on its own so that
any graph with an incident to act on (the scheduled agents) adds the same one.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from opsloop.agents.specialists import SPECIALISTS
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.act import act
from opsloop.graph.nodes.approval import approval
from opsloop.graph.nodes.guardrails import guardrails
from opsloop.graph.nodes.intake import intake
from opsloop.graph.nodes.learn import learn
from opsloop.graph.nodes.specialist import make_specialist
from opsloop.graph.nodes.supervisor import fan_out, merge, route
from opsloop.graph.nodes.triage import triage
from opsloop.graph.nodes.verify import verify
from opsloop.graph.state import DiagnosisState, LoopState, SpecialistInput

Checkpointer = BaseCheckpointSaver[Any] | None  # None: a subgraph shares its parent's
LoopGraph = CompiledStateGraph[LoopState, LoopContext, LoopState, LoopState]


def build_graph(checkpointer: Checkpointer = None) -> LoopGraph:
    """One incident, start to finish: its thread pauses inside `change` while a human decides."""
    g = StateGraph(LoopState, context_schema=LoopContext)
    g.add_node("intake", intake)
    g.add_node("triage", triage)
    g.add_node("diagnose", build_diagnosis())
    g.add_node("change", build_change_path())

    g.add_edge(START, "intake")
    g.add_edge("intake", "triage")
    g.add_edge("triage", "diagnose")
    g.add_edge("diagnose", "change")
    g.add_edge("change", END)
    return g.compile(checkpointer=checkpointer)


def build_diagnosis(
    checkpointer: Checkpointer = None,
) -> CompiledStateGraph[DiagnosisState, LoopContext, LoopState, LoopState]:
    """route -> the chosen specialists in parallel (Send) -> merge; incident in, incident out."""
    g = StateGraph(DiagnosisState, context_schema=LoopContext, input_schema=LoopState,
                   output_schema=LoopState)
    g.add_node("route", route)
    for name in SPECIALISTS:
        g.add_node(name, make_specialist(name), input_schema=SpecialistInput)
    g.add_node("merge", merge)

    g.add_edge(START, "route")
    g.add_conditional_edges("route", fan_out, list(SPECIALISTS))
    for name in SPECIALISTS:
        g.add_edge(name, "merge")
    g.add_edge("merge", END)
    return g.compile(checkpointer=checkpointer, name="diagnose")


def build_change_path(checkpointer: Checkpointer = None) -> LoopGraph:
    """guardrails -> [approval] -> act -> verify -> learn, for an incident with proposals."""
    g = StateGraph(LoopState, context_schema=LoopContext)
    g.add_node("guardrails", guardrails)
    g.add_node("approval", approval)
    g.add_node("act", act)
    g.add_node("verify", verify)
    g.add_node("learn", learn)

    g.add_edge(START, "guardrails")
    g.add_conditional_edges("guardrails", after_guardrails, ["approval", "act", "learn"])
    g.add_conditional_edges("approval", after_approval, ["act", "learn"])
    g.add_conditional_edges("act", after_act, ["verify", "learn"])
    g.add_edge("verify", "learn")
    g.add_edge("learn", END)
    return g.compile(checkpointer=checkpointer, name="change")


# Where the change path goes after each step: pure functions of the incident's action cases.


def after_guardrails(state: LoopState) -> Literal["approval", "act", "learn"]:
    """A human first if policy wants one for any action; else act on what policy cleared."""
    cases = state["incident"].actions
    if any(case.awaits_human for case in cases):
        return "approval"
    return "act" if any(case.cleared for case in cases) else "learn"


def after_approval(state: LoopState) -> Literal["act", "learn"]:
    return "act" if any(case.cleared for case in state["incident"].actions) else "learn"


def after_act(state: LoopState) -> Literal["verify", "learn"]:
    """Only a change that took effect has anything to verify."""
    return "verify" if any(case.succeeded for case in state["incident"].actions) else "learn"
