"""Small helpers every node uses."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from opsloop.graph.context import LoopContext
from opsloop.models import EventKind, TimelineEvent


def event(ctx: LoopContext, kind: EventKind, message: str, **data: Any) -> TimelineEvent:
    """A timeline entry stamped with the environment's clock."""
    return TimelineEvent(at=ctx.clock.now(), kind=kind, message=message, data=data)


def context_of(runtime: Runtime[LoopContext]) -> LoopContext:
    ctx = runtime.context
    if ctx is None:  # a graph invoked without its dependencies is a programming error
        raise RuntimeError("the operate loop needs a LoopContext: invoke with context=...")
    return ctx
