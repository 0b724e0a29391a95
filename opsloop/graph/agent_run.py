"""A scheduled agent's run, as a graph of its own:

observe -> analyse -> propose -> [change] -> END
                                  guardrails -> [approval] -> act -> verify -> learn

`change` is the incidents' own change path (`build_change_path`): a proposal from an agent
is opened as a change record (an `Incident` with no alerts, its severity from
schedule.yaml) and is decided, approved, acted on and verified exactly like an incident's.
The thread id is the run id; the change record carries the same id, so `opsloop approve`,
`resume` and the API reach it like any incident.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel

from opsloop.graph.build import Checkpointer, build_change_path
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.common import context_of, event
from opsloop.graph.nodes.triage import escalate
from opsloop.graph.run_report import write_run_report
from opsloop.models import (
    ActionCase,
    Diagnosis,
    EventKind,
    Incident,
    IncidentStatus,
    Severity,
)
from opsloop.scheduled import registry
from opsloop.scheduled.base import AgentContext, Analysis

RUN_PREFIX = "run-"


def is_agent_run(thread_id: str) -> bool:
    return thread_id.startswith(RUN_PREFIX)


def run_id_for(agent: str, due_at: datetime, trigger: str = "schedule") -> str:
    """Deterministic per (agent, due time, kind of trigger): the same scheduled run always
    has the same id; a manual run or one after an incident never shares a cron run's."""
    stamp = due_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")  # the store orders by its digits
    kind = {"manual": "manual-", "after_incident": "after-"}.get(trigger, "")
    return f"{RUN_PREFIX}{agent}-{kind}{stamp}"


class RunInfo(BaseModel):
    run_id: str
    agent: str
    due_at: datetime
    environment: str
    manual: bool = False  # `opsloop agents run NAME`, not the schedule


class AgentRunTimeout(RuntimeError):
    pass


class AgentRunState(TypedDict, total=False):
    run: RunInfo
    observed: dict[str, Any]
    analysis: Analysis
    incident: Incident  # the change record, only when the agent proposed something


AgentGraph = CompiledStateGraph[AgentRunState, LoopContext, AgentRunState, AgentRunState]


def build_agent_graph(checkpointer: Checkpointer = None) -> AgentGraph:
    g = StateGraph(AgentRunState, context_schema=LoopContext)
    g.add_node("observe", observe)
    g.add_node("analyse", analyse)
    g.add_node("propose", propose)
    g.add_node("change", build_change_path())

    g.add_edge(START, "observe")
    g.add_edge("observe", "analyse")
    g.add_edge("analyse", "propose")
    g.add_conditional_edges("propose", after_propose, ["change", END])
    g.add_edge("change", END)
    return g.compile(checkpointer=checkpointer)


def after_propose(state: AgentRunState) -> Literal["change", "__end__"]:
    return "change" if "incident" in state else "__end__"


def agent_context(state: AgentRunState, ctx: LoopContext) -> AgentContext:
    run = state["run"]
    if ctx.deadline is not None and time.monotonic() > ctx.deadline:
        raise AgentRunTimeout(f"{run.agent} ran past its max_run_time (schedule.yaml "
                              f"agents.{run.agent}.max_run_time); stopped before its next step")
    return AgentContext(run_id=run.run_id, agent=run.agent, due_at=run.due_at,
                        now=ctx.clock.now(), settings=ctx.settings, policies=ctx.policies,
                        telemetry=ctx.telemetry, store=ctx.store)


def observe(state: AgentRunState, runtime: Runtime[LoopContext]) -> AgentRunState:
    actx = agent_context(state, context_of(runtime))
    return {"observed": registry.agent(actx.agent).observe(actx)}


def analyse(state: AgentRunState, runtime: Runtime[LoopContext]) -> AgentRunState:
    actx = agent_context(state, context_of(runtime))
    analysis = registry.agent(actx.agent).analyse(actx, state.get("observed", {}))
    if not analysis.reports:  # every run leaves a readable record, whatever it found
        path = write_run_report(actx.reports_dir, actx.agent, actx.due_at, analysis)
        analysis = analysis.model_copy(update={"reports": [str(path)]})
    return {"analysis": analysis}


def propose(state: AgentRunState, runtime: Runtime[LoopContext]) -> AgentRunState:
    """Open a change record for the agent's proposals (none: the run ends here)."""
    ctx = context_of(runtime)
    analysis = state["analysis"]
    if not analysis.proposals:
        return {}
    run = state["run"]
    schedule = ctx.policies.schedule.agents.get(run.agent)
    severity = schedule.severity if schedule is not None else Severity.SEV4
    rule = (f"schedule.yaml:agents.{run.agent}.severity" if schedule is not None
            else "schedule.yaml: agent not scheduled, least urgent severity")
    raised = analysis.severity is not None and analysis.severity.rank < severity.rank
    if raised and analysis.severity is not None:
        # Only ever stricter: an agent's own rule can raise the record, never lower it.
        severity, rule = analysis.severity, analysis.severity_rule
    services = sorted({p.action.service for p in analysis.proposals})
    summary = analysis.summary or f"{len(analysis.proposals)} change(s) proposed"
    record = Incident(
        id=run.run_id,
        title=f"{run.agent}: {summary}",
        environment=run.environment,
        group_key=f"agent:{run.agent}",
        group_labels={"agent": run.agent},
        services=services,
        opened_at=ctx.clock.now(),
        status=IncidentStatus.OPEN,
        severity=severity,
        severity_rule=rule,
        specialists=[run.agent],
        diagnoses=[Diagnosis(specialist=run.agent, proposals=analysis.proposals,
                             summary=summary)],
        actions=[ActionCase(proposal=p) for p in analysis.proposals],
        timeline=[event(ctx, EventKind.OPENED,
                        f"scheduled agent {run.agent} proposed "
                        f"{', '.join(p.action.describe() for p in analysis.proposals)}")],
    )
    if raised:  # escalated like a triaged incident of that severity (page, war room)
        record.timeline = [*record.timeline, *escalate(ctx, record, severity)]
    ctx.store.save_incident(record)
    return {"incident": record}
