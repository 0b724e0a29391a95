"""Where an incident's graph thread stands, read through the subgraph it is inside."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot

from opsloop.store import StoreError


def thread_state(graph: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> StateSnapshot:
    """The thread's snapshot with the values and interrupts of the innermost subgraph still
    running (the change path, paused for a human or cut short by a crash).

    The outer snapshot alone is not enough: it holds the incident as the subgraph received it,
    and it keeps reporting the subgraph's interrupt after the subgraph has consumed the
    answer, until the subgraph finishes. `next` stays the outer one, so a thread whose
    subgraph is done but not yet recorded by its parent still reads as unfinished.
    """
    _refuse_other_graphs(graph, config)
    outer = graph.get_state(config, subgraphs=True)
    inner = outer
    for _ in range(8):  # subgraphs nest one level today; the bound holds whatever the graph
        running = next((t.state for t in inner.tasks if isinstance(t.state, StateSnapshot)),
                       None)
        if running is None or not running.values:
            break
        inner = running
    if inner is outer:
        return outer
    # The inner values win (the incident as the change path has it); keys only the outer
    # graph holds (a scheduled run's analysis) stay readable.
    return outer._replace(values={**outer.values, **inner.values}, interrupts=inner.interrupts)


def _refuse_other_graphs(graph: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> None:
    """A thread that steps this graph does not have ran under an earlier shape of the loop
    (before the diagnosis and change subgraphs): this graph would read it as finished."""
    saver = graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        return
    saved = saver.get_tuple(config)
    if saved is None:
        return
    strangers = sorted(name for name in saved.checkpoint["versions_seen"]
                       if not name.startswith("__") and name not in graph.nodes)
    if strangers:
        thread = config.get("configurable", {}).get("thread_id", "this incident")
        raise StoreError(
            f"{thread} was run by an earlier opsloop whose graph had steps this one lacks "
            f"({', '.join(strangers)}); this version can neither resume nor decide it. Its "
            f"record, audit log and pending approval are kept (`opsloop show {thread}`): a "
            f"person finishes it by hand")
