"""The runner: starts an incident's graph thread, records what waits, resumes it on a decision."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, Interrupt

from opsloop.agents.warroom import log_to_war_room
from opsloop.crashpoints import crash_point
from opsloop.environments import Production, open_environment
from opsloop.graph.agent_run import RunInfo, build_agent_graph, is_agent_run
from opsloop.graph.build import build_graph
from opsloop.graph.checkpoint import sqlite_checkpointer
from opsloop.graph.context import LoopContext
from opsloop.graph.nodes.guardrails import guardrail_context
from opsloop.graph.thread import thread_state
from opsloop.llm.config import model_client
from opsloop.llm.ledger import incident_usage
from opsloop.models import (
    Approval,
    ApprovalRequest,
    DecisionOutcome,
    EventKind,
    Incident,
    IncidentStatus,
    ModelUsage,
    ParamValue,
    Severity,
    TimelineEvent,
    Verdict,
)
from opsloop.policy import Policies, load_policies
from opsloop.policy.changes import InvalidChange, check_changes
from opsloop.policy.guardrails import decide
from opsloop.scheduled.base import Analysis
from opsloop.settings import Settings
from opsloop.store import IncidentStore, StoreError
from opsloop.tools.notifications import Notifications
from opsloop.tools.protocols import Actuator, RunbookIndex, Telemetry
from opsloop.tools.runbook_index import RunbookIndex as ChromaRunbookIndex


@dataclass
class AgentOutcome:
    """What a scheduled run left: its analysis, and the change record when it proposed."""

    analysis: Analysis | None
    record: Incident | None


class OperateLoop:
    """One process's handle on the loop: store, checkpointer, graph, runbook index."""

    def __init__(self, settings: Settings, policies: Policies | None = None,
                 runbooks: RunbookIndex | None = None) -> None:
        self.settings = settings
        self.policies = policies or load_policies(
            settings.policies_dir, allow_unsafe=settings.allow_unsafe_policies)
        self.store = IncidentStore(settings.state_dir / "opsloop.db")
        self.checkpointer = sqlite_checkpointer(settings.state_dir / "checkpoints.sqlite")
        self.graph = build_graph(self.checkpointer)
        # Scheduled agents' runs: observe -> analyse -> the same change path (thread = run id).
        self.agent_graph = build_agent_graph(self.checkpointer)
        self._runbooks: RunbookIndex | None = runbooks  # shared when given, else built lazily
        self.notifier = Notifications(  # the outbox, then policies/notifications.yaml's backends
            settings.work_dir / "notifications.jsonl", settings.notification_spool,
            self.policies.notifications.plan(policies_dir=self.policies.source_dir),
            self.store, settings.public_url)
        self.model = model_client(settings)  # None: offline reasoner

    @property
    def runbooks(self) -> RunbookIndex:
        if self._runbooks is None:
            self._runbooks = ChromaRunbookIndex.from_settings(self.settings)
        return self._runbooks

    def close(self) -> None:
        self.store.close()
        self.checkpointer.conn.close()

    def context(self, env: Production, telemetry: Telemetry | None = None,
                actuator: Actuator | None = None) -> LoopContext:
        """The dependencies for a run against `env`; an eval may see production through a
        mask (`telemetry`) or act through a recorder (`actuator`)."""
        return LoopContext(
            settings=self.settings,
            policies=self.policies,
            telemetry=telemetry or env,
            actuator=actuator or env,
            clock=env,
            runbooks=self.runbooks,
            notifier=self.notifier,
            store=self.store,
            model=self.model,
        )

    def _graph_for(self, thread_id: str) -> Any:
        """The graph a thread belongs to: an incident's, or a scheduled agent's run."""
        return self.agent_graph if is_agent_run(thread_id) else self.graph

    def _config(self, incident_id: str) -> RunnableConfig:
        return {
            "configurable": {"thread_id": incident_id},
            "recursion_limit": self.settings.recursion_limit,
        }

    def _hold(self, incident_id: str, purpose: str) -> AbstractContextManager[str]:
        """The incident's lease for one run: LeaseHeld (a StoreError) at once while another
        run holds it."""
        return self.store.leases.hold(incident_id, purpose)

    def start(self, incident: Incident, env: Production,
              ctx: LoopContext | None = None) -> Incident:
        """Run a new incident round the loop until it finishes or waits for a human."""
        with self._hold(incident.id, "opening"):
            self.store.save_incident(incident)
            crash_point("start.saved")
            try:
                return self._run({"incident": incident}, incident.id, env, ctx)
            except Exception as exc:
                # Never leave an incident looking "open" and healthy when its run died.
                self.store.audit(incident.id, "opsloop", "run_failed", {"error": repr(exc)})
                self.store.save_incident(
                    incident.model_copy(update={"status": IncidentStatus.ESCALATED}))
                raise

    def _waiting(self, incident_id: str) -> set[str]:
        """Ids of the approval requests the incident's checkpoint is paused on."""
        snapshot = thread_state(self._graph_for(incident_id), self._config(incident_id))
        return {str(i.value.get("id")) for i in snapshot.interrupts if isinstance(i.value, dict)}

    def check_modification(self, request: ApprovalRequest, changes: dict[str, object],
                           env: Production, ctx: LoopContext | None = None
                           ) -> dict[str, ParamValue]:
        """The changes, typed, when policy would not deny the modified action; InvalidChange
        (naming the key, the allowed range or the rule) otherwise. Nothing is recorded."""
        typed = check_changes(request.action, changes, self.policies)
        action = request.action.model_copy(update={"params": {**request.action.params,
                                                              **typed}})
        incident = self.store.get_incident(request.incident_id)
        loop_ctx = ctx or self.context(env)
        decision = decide(action, incident.severity or Severity.SEV1, self.policies,
                          guardrail_context(loop_ctx, incident, action, []))
        if decision.outcome is DecisionOutcome.DENY:
            raise InvalidChange(f"the modified {action.describe()} would be denied by "
                                f"{decision.rule}: {'; '.join(decision.reasons)}")
        return typed

    def decide(
        self,
        approval_id: str,
        verdict: Verdict,
        by: str,
        reason: str = "",
        changes: dict[str, object] | None = None,
        env: Production | None = None,
        ctx: LoopContext | None = None,
    ) -> Incident:
        """Answer a waiting approval, from any process, and run the incident on.

        Exactly one decision wins: the incident's lease makes concurrent deciders wait their
        turn or be refused, and the claim in the store refuses a second answer. A modification
        is checked against policy before anything is recorded. `env` (and `ctx`) are for a
        caller that holds production in memory (the eval harness); otherwise the incident's
        environment is reopened from the work dir.
        """
        request, _ = self.store.get_request(approval_id)
        incident = self.store.get_incident(request.incident_id)
        with self._hold(incident.id, f"{verdict.past} by {by}"), ExitStack() as opened:
            request, status = self.store.get_request(approval_id)  # as it is now we hold it
            if status != "pending":
                raise StoreError(self._already_decided(approval_id, status, incident.id))
            if approval_id not in self._waiting(incident.id):
                raise StoreError(f"approval {approval_id} is not waiting in {incident.id}'s "
                                 f"graph; `opsloop show {incident.id}` shows where it stands")
            env = env or self._open(incident, opened)
            typed: dict[str, ParamValue] = {}
            if verdict is Verdict.MODIFY:
                typed = self.check_modification(request, dict(changes or {}), env, ctx)
            asked = request.asked_wall_at
            approval = Approval(
                request_id=approval_id, verdict=verdict, by=by, at=env.now(), reason=reason,
                changes=typed, waited_seconds=None if asked is None else max(
                    (datetime.now(UTC) - asked).total_seconds(), 0.0),
            )
            self.store.claim(approval)  # atomic: a second decision is refused here
            crash_point("decide.claimed")
            try:
                self.store.audit(incident.id, by, "approval", approval.model_dump(mode="json"))
                note = f"{request.action.describe()} {verdict.past} by {by}" + (
                    f": {reason}" if reason else "")
                log_to_war_room(self.settings.warrooms_dir, incident.id,
                                TimelineEvent(at=approval.at, kind=EventKind.APPROVAL,
                                              message=note))
                return self._run(Command(resume=approval.model_dump(mode="json")), incident.id,
                                 env, ctx)
            except Exception as exc:
                if approval_id in self._waiting(incident.id):
                    self.store.unclaim(approval_id)  # the answer was never used: ask again
                else:
                    # The graph consumed the answer (an action may have run): keep the
                    # decision; `resume` continues from the last checkpoint.
                    self.store.audit(incident.id, "opsloop", "run_failed",
                                     {"error": repr(exc)})
                raise

    def _already_decided(self, approval_id: str, status: str, incident_id: str) -> str:
        earlier = self.store.answer(approval_id)
        who = f" by {earlier.by}" if earlier is not None else ""
        verdict = Verdict(status).past if status in Verdict._value2member_map_ else status
        message = (f"approval {approval_id} was already decided ({verdict}{who}); "
                   f"nothing was changed")
        snapshot = self._graph_for(incident_id).get_state(self._config(incident_id))
        if snapshot.next:
            message += (f"; its run stopped before finishing: `opsloop resume {incident_id}` "
                        f"continues it")
        return message

    def resume(self, incident_id: str, by: str, env: Production | None = None) -> Incident:
        """Bring an incident whose run died (a kill, a crash, a full disk) to where it belongs:
        finished, or waiting for a human.

        Whatever the moment of death: before the first checkpoint the run starts again from
        the stored incident; between checkpoints it restarts at the node that did not finish;
        after a decision was recorded but not consumed it resumes with that decision; after
        the last checkpoint it records what the graph finished. Actions replay under their
        idempotency keys and notifications under theirs, so nothing happens twice.
        """
        with self._hold(incident_id, f"resume by {by}"), ExitStack() as opened:
            incident = self.store.get_incident(incident_id)
            config = self._config(incident_id)
            snapshot = thread_state(self._graph_for(incident_id), config)
            if not snapshot.values:  # died before the first checkpoint
                if incident.status is not IncidentStatus.OPEN:
                    raise StoreError(f"{incident_id} has nothing left to run "
                                     f"({incident.status.value})")
                self.store.audit(incident_id, by, "resumed", {"next": ["intake"]})
                env = env or self._open(incident, opened)
                return self._run({"incident": incident}, incident_id, env)
            if snapshot.interrupts:
                answered = self._answered(snapshot.interrupts)
                if answered is None:  # a human still has to decide: make sure it is listed
                    return self._record(incident_id, config)
                self.store.audit(incident_id, by, "approval_resumed",
                                 answered.model_dump(mode="json"))
                env = env or self._open(incident, opened)
                return self._run(Command(resume=answered.model_dump(mode="json")),
                                 incident_id, env)
            if not snapshot.next:  # the graph finished; the store may not know it yet
                if incident.status in (IncidentStatus.OPEN, IncidentStatus.AWAITING_APPROVAL):
                    self.store.audit(incident_id, by, "resumed", {"next": []})
                    return self._record(incident_id, config)
                raise StoreError(f"{incident_id} has nothing left to run "
                                 f"({incident.status.value})")
            env = env or self._open(incident, opened)
            self.store.audit(incident_id, by, "resumed", {"next": list(snapshot.next)})
            return self._run(None, incident_id, env)

    def _open(self, incident: Incident, opened: ExitStack) -> Production:
        """The incident's production, closed when `opened` ends."""
        env = open_environment(incident.environment, self.settings)
        opened.callback(env.close)
        return env

    def _answered(self, interrupts: Sequence[Interrupt]) -> Approval | None:
        """A recorded decision on a request the graph still waits on (the deciding run died
        after the claim, before the graph took the answer)."""
        for waiting in interrupts:
            if isinstance(waiting.value, dict):
                answer = self.store.answer(str(waiting.value.get("id")))
                if answer is not None:
                    return answer
        return None

    def recover(self, by: str) -> list[tuple[str, str]]:
        """Resume every incident a dead run left unfinished; (id, what happened) for each.
        One that fails is reported and does not stop the others."""
        outcomes = []
        for incident_id in self.store.unfinished():
            try:
                incident = self.resume(incident_id, by)
                outcomes.append((incident_id, incident.status.value))
            except StoreError as exc:
                outcomes.append((incident_id, f"skipped: {exc}"))
            except Exception as exc:  # one broken incident never stops the others
                outcomes.append((incident_id, f"failed: {exc!r}"))
        return outcomes

    def _run(self, payload: Any, incident_id: str, env: Production,
             ctx: LoopContext | None = None) -> Incident:
        config = self._config(incident_id)
        # No save here: an environment that persists itself does so on every action and wait.
        # Each step's checkpoint is on disk before the next step's side effects begin.
        out = self._graph_for(incident_id).invoke(
            payload, config, context=ctx or self.context(env), durability="sync")
        crash_point("run.invoked")
        # A run that went to the end hands back the finished incident; only a paused one is
        # read back from its checkpoints (the change path's copy and its interrupts).
        done = out.get("incident") if isinstance(out, dict) and "__interrupt__" not in out else None
        return self._record(incident_id, config, done if isinstance(done, Incident) else None)

    def _record(self, incident_id: str, config: RunnableConfig,
                finished: Incident | None = None) -> Incident:
        """Persist the incident as the graph left it (`finished` when the run went to its end),
        and any approval it now waits on."""
        waiting: list[ApprovalRequest] = []
        if finished is not None:
            incident = finished
        else:
            snapshot = thread_state(self._graph_for(incident_id), config)
            incident = snapshot.values["incident"]
            waiting = [ApprovalRequest.model_validate(i.value) for i in snapshot.interrupts]
        if waiting:
            incident = incident.model_copy(update={"status": IncidentStatus.AWAITING_APPROVAL})
            for request in waiting:
                if self.store.add_pending(request):
                    self.store.audit(incident_id, "opsloop", "approval_requested",
                                     request.model_dump(mode="json"))
        try:
            earlier = self.store.get_incident(incident_id).usage
        except StoreError:
            earlier = ModelUsage()
        ledger = self.model.ledger if self.model is not None else None
        incident = incident.model_copy(update={"usage": incident_usage(incident, earlier, ledger)})
        self.store.save_incident(incident)
        return incident

    # scheduled agents ---------------------------------------------------------------------

    def run_agent(self, run: RunInfo, env: Production, max_seconds: float | None = None,
                  by: str = "scheduler") -> AgentOutcome:
        """Run (or continue) one scheduled agent's run to its end or to a human's decision.

        The run's thread is its id: a run that died is continued from its last checkpoint,
        never started over (observations are not taken twice, proposals not opened twice).
        Its proposals travel the incidents' change path; the change record is stored like an
        incident and waits for approval like one.
        """
        with self._hold(run.run_id, f"agent run by {by}"):
            config = self._config(run.run_id)
            snapshot = thread_state(self.agent_graph, config)
            payload: Any = {"run": run}
            if snapshot.values:
                if snapshot.interrupts or not snapshot.next:  # waiting, or done
                    return self._agent_outcome(run.run_id, config)
                payload = None  # continue at the step that did not finish
            ctx = self.context(env)
            if max_seconds is not None:
                ctx.deadline = time.monotonic() + max_seconds
            self.agent_graph.invoke(payload, config, context=ctx, durability="sync")
            return self._agent_outcome(run.run_id, config)

    def _agent_outcome(self, run_id: str, config: RunnableConfig) -> AgentOutcome:
        snapshot = thread_state(self.agent_graph, config)
        record = self._record(run_id, config) if "incident" in snapshot.values else None
        return AgentOutcome(analysis=snapshot.values.get("analysis"), record=record)

    def pending(self) -> list[ApprovalRequest]:
        return self.store.pending()


__all__ = ["AgentOutcome", "InvalidChange", "OperateLoop", "StoreError"]
