"""The operate loop, assembled. Reads like the flow in DESIGN.md:

intake -> triage -> supervisor -> specialist(s) -> supervisor -> guardrails -> [approval]
       -> act -> verify -> learn
"""

from __future__ import annotations

from typing import Any

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
from opsloop.graph.nodes.supervisor import supervisor
from opsloop.graph.nodes.triage import triage
from opsloop.graph.nodes.verify import verify
from opsloop.graph.state import LoopState


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[LoopState, LoopContext, LoopState, LoopState]:
    g = StateGraph(LoopState, context_schema=LoopContext)

    g.add_node("intake", intake)
    g.add_node("triage", triage)
    g.add_node("supervisor", supervisor)
    for name in SPECIALISTS:
        g.add_node(name, make_specialist(name))  # type: ignore[call-overload]
    g.add_node("guardrails", guardrails)
    g.add_node("approval", approval)
    g.add_node("act", act)
    g.add_node("verify", verify)
    g.add_node("learn", learn)

    g.add_edge(START, "intake")
    g.add_edge("intake", "triage")
    g.add_edge("triage", "supervisor")
    # supervisor fans out with Send, specialists report back, supervisor merges
    for name in SPECIALISTS:
        g.add_edge(name, "supervisor")
    # guardrails -> approval | act | learn, approval -> act | learn, act -> verify | learn:
    # each decided by the node's Command
    g.add_edge("verify", "learn")
    g.add_edge("learn", END)

    return g.compile(checkpointer=checkpointer)
