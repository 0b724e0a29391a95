"""Runs one scheduled agent's case: simulated production, the real scheduler, a scripted human.

The agent runs `agent.times` times, `agent.every` simulated minutes apart, through
`Scheduler.run_now` — the same ledger, operate loop, guardrails, approval, act and verify as
`opsloop run` — in the case's own work dir. Between runs the case's human answers what the
change path asked (the oracle approves exactly the actions the key accepts), and production
moves on. The actuator is wrapped, so the harness knows what really ran.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.environments import Origin, opaque_ref, record_origin
from opsloop.evals.cases import AgentSpec, Case, CaseError
from opsloop.evals.driver import (
    HUMAN,
    MAX_APPROVAL_ROUNDS,
    ActuatorLog,
    CaseRun,
    Harness,
    human_answer,
)
from opsloop.graph.agent_run import RunInfo
from opsloop.graph.runner import AgentOutcome, OperateLoop
from opsloop.models import Incident, IncidentStatus
from opsloop.policy import Policies
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.simulator import SimEnvironment
from opsloop.simulator.variants import MaskedMetrics
from opsloop.tools.protocols import Production


@dataclass
class AgentRunSeen:
    """One run of the agent as the harness saw it."""

    run_id: str
    at: datetime  # production's clock when it ran
    minute: int  # simulated minutes after the first run
    status: str
    findings: list[dict[str, Any]]  # with their data, which the ledger leaves out
    proposals: list[str]
    signals: list[str]
    record_id: str | None
    error: str = ""


class _RecordingLoop(OperateLoop):
    """The operate loop, keeping each agent run's full analysis for the scorer."""

    outcomes: dict[str, AgentOutcome]

    def run_agent(self, run: RunInfo, env: Production, max_seconds: float | None = None,
                  by: str = "scheduler") -> AgentOutcome:
        outcome = super().run_agent(run, env, max_seconds=max_seconds, by=by)
        self.outcomes[run.run_id] = outcome
        return outcome


def _borrowed(production: Production) -> Production:
    """A view the scheduler may close after each run without closing the case's production."""
    return Production(metrics=production.metrics, changes=production.changes,
                      clock=production.clock, actuator=production.actuator, closers=[])


def _seed_open_incidents(loop: OperateLoop, spec: AgentSpec, ref: str, start: datetime) -> None:
    """The case's open incidents, in the store before the first run."""
    for n, seed in enumerate(spec.open_incidents, start=1):
        loop.store.save_incident(Incident(
            id=loop.store.next_incident_id(), title=seed.title, environment=ref,
            group_key=f"case-open:{n}", services=seed.services,
            opened_at=start - timedelta(minutes=seed.opened_minutes_before),
            status=IncidentStatus(seed.status), severity=seed.severity,
            severity_rule="open before the run (case)"))


def run_agent_case(case: Case, harness: Harness, policies: Policies, workdir: Path,
                   out: CaseRun) -> None:
    spec, variant = case.agent, case.simulation
    assert spec is not None and variant is not None  # load_case guarantees both
    try:
        env = SimEnvironment(variant.build(f"eval:{case.id}"))
    except ValueError as exc:
        raise CaseError(f"{case.folder / 'case.yaml'}: simulation: {exc}") from None
    actuator = ActuatorLog(env.actuator)
    masked = MaskedMetrics(env.metrics, variant.hidden_metrics) if variant.hidden_metrics else None
    production = env.swap(metrics=masked, actuator=actuator)
    settings = harness.settings.model_copy(update={"work_dir": workdir})
    if spec.state is not None:  # e.g. planned activity people recorded before the run
        shutil.copytree(case.folder / spec.state, settings.state_dir, dirs_exist_ok=True)
    loop = _RecordingLoop(settings, policies, runbooks=harness.runbooks)
    loop.outcomes = {}
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        ref = opaque_ref("sim")
        record_origin(Origin(ref=ref, case=case.id, scenario=variant.base, seed=variant.seed),
                      settings)
        scheduler = Scheduler(loop, ledger, ref, lambda: _borrowed(production))
        production.wait(spec.start_minute)
        start = production.now()
        out.fault_at = start
        _seed_open_incidents(loop, spec, ref, start)
        for i in range(spec.times):
            if i:
                production.wait(spec.every)
            now = production.now()
            run = scheduler.run_now(spec.name, now)
            outcome = loop.outcomes.get(run.run_id)
            analysis = outcome.analysis if outcome is not None else None
            out.agent_runs.append(AgentRunSeen(
                run_id=run.run_id, at=now, minute=int((now - start).total_seconds() // 60),
                status=run.status, record_id=run.record_id, error=run.error,
                findings=[f.model_dump(mode="json") for f in analysis.findings]
                if analysis is not None else run.findings,
                proposals=[p["action"] for p in run.proposals],
                signals=list(analysis.signals) if analysis is not None else []))
            _answer_pending(case, loop, production, harness.approver)
            scheduler.settle()
        out.incidents = [r for r in loop.store.incidents()
                         if r.group_key == f"agent:{spec.name}"]
        out.flags = {f"{f.service}/{f.key}": {"enabled": f.enabled,
                                              "percent": f.rollout_percent}
                     for f in production.flags()}
    finally:
        out.executed = actuator.calls
        ledger.close()
        loop.close()
        production.close()


def _answer_pending(case: Case, loop: OperateLoop, production: Production,
                    approver: str) -> None:
    ctx = loop.context(production)
    for _ in range(MAX_APPROVAL_ROUNDS):
        waiting = loop.pending()
        if not waiting:
            return
        verdict, reason = human_answer(case, waiting[0], approver)
        loop.decide(waiting[0].id, verdict, HUMAN, reason, env=production, ctx=ctx)
