"""The runner: starts an incident's graph thread, records what waits, resumes it on a decision."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from opsloop.agents.warroom import log_to_war_room
from opsloop.environments import Production, open_environment
from opsloop.graph.build import build_graph
from opsloop.graph.checkpoint import sqlite_checkpointer
from opsloop.graph.context import LoopContext
from opsloop.llm.config import model_client
from opsloop.llm.ledger import incident_usage
from opsloop.models import (
    Approval,
    ApprovalRequest,
    Incident,
    IncidentStatus,
    ModelUsage,
    ParamValue,
    TimelineEvent,
    Verdict,
)
from opsloop.policy import Policies, load_policies
from opsloop.settings import Settings
from opsloop.store import IncidentStore, StoreError
from opsloop.tools.notify import OutboxNotifier
from opsloop.tools.protocols import Actuator, RunbookIndex, Telemetry
from opsloop.tools.runbooks import RunbookIndex as ChromaRunbookIndex


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
        self._runbooks: RunbookIndex | None = runbooks  # shared when given, else built lazily
        self.notifier = OutboxNotifier(settings.work_dir / "notifications.jsonl")
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

    def _config(self, incident_id: str) -> RunnableConfig:
        return {
            "configurable": {"thread_id": incident_id},
            "recursion_limit": self.settings.recursion_limit,
        }

    def start(self, incident: Incident, env: Production,
              ctx: LoopContext | None = None) -> Incident:
        """Run a new incident round the loop until it finishes or waits for a human."""
        self.store.save_incident(incident)
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
        snapshot = self.graph.get_state(self._config(incident_id))
        return {str(i.value.get("id")) for i in snapshot.interrupts if isinstance(i.value, dict)}

    def decide(
        self,
        approval_id: str,
        verdict: Verdict,
        by: str,
        reason: str = "",
        changes: dict[str, ParamValue] | None = None,
        env: Production | None = None,
        ctx: LoopContext | None = None,
    ) -> Incident:
        """Answer a waiting approval, from any process, and run the incident on.

        `env` (and `ctx`) are for a caller that holds production in memory (the eval
        harness); otherwise the incident's environment is reopened from the work dir.
        """
        request, status = self.store.get_request(approval_id)
        incident = self.store.get_incident(request.incident_id)
        env = env or open_environment(incident.environment, self.settings)
        waiting = approval_id in self._waiting(incident.id)
        if status != "pending":
            earlier = self.store.answer(approval_id)
            if waiting and earlier is not None and earlier.verdict is verdict:
                # The same decision was taken before, but its run died before the graph
                # checkpointed past the approval: finish that run. The actuator's
                # idempotency keys make a replayed action a no-op.
                self.store.audit(incident.id, by, "approval_resumed",
                                 earlier.model_dump(mode="json"))
                return self._run(Command(resume=earlier.model_dump(mode="json")),
                                 incident.id, env, ctx)
            hint = ""
            if self.graph.get_state(self._config(incident.id)).next:
                hint = f"; its run stopped early: `opsloop resume {incident.id}` continues it"
            raise StoreError(f"approval {approval_id} was already decided ({status}){hint}")
        if not waiting:
            raise StoreError(f"approval {approval_id} is not waiting in {incident.id}'s graph; "
                             f"`opsloop show {incident.id}` shows where it stands")
        approval = Approval(
            request_id=approval_id, verdict=verdict, by=by, at=env.now(), reason=reason,
            changes=changes or {},
        )
        self.store.claim(approval)  # atomic: a concurrent second decision is refused here
        try:
            self.store.audit(incident.id, by, "approval", approval.model_dump(mode="json"))
            note = f"{request.action.describe()} {verdict.past} by {by}" + (
                f": {reason}" if reason else "")
            log_to_war_room(self.settings.warrooms_dir, incident.id,
                            TimelineEvent(at=approval.at, kind="approval", message=note))
            return self._run(Command(resume=approval.model_dump(mode="json")), incident.id, env,
                             ctx)
        except Exception as exc:
            if approval_id in self._waiting(incident.id):
                self.store.unclaim(approval_id)  # the answer was never used: ask again
            else:
                # The graph consumed the answer (an action may have run): keep the decision;
                # `resume` continues from the last checkpoint.
                self.store.audit(incident.id, "opsloop", "run_failed", {"error": repr(exc)})
            raise

    def resume(self, incident_id: str, by: str) -> Incident:
        """Continue an incident whose run died between checkpoints (a crash, a full disk).

        The graph restarts at the node that did not finish; actions replay under their
        idempotency keys, so nothing runs twice.
        """
        incident = self.store.get_incident(incident_id)
        snapshot = self.graph.get_state(self._config(incident_id))
        if snapshot.interrupts:
            raise StoreError(f"{incident_id} waits for a human: `opsloop approvals` lists it")
        if not snapshot.next:
            raise StoreError(f"{incident_id} has nothing left to run ({incident.status.value})")
        env = open_environment(incident.environment, self.settings)
        self.store.audit(incident_id, by, "resumed", {"next": list(snapshot.next)})
        return self._run(None, incident_id, env)

    def _run(self, payload: Any, incident_id: str, env: Production,
             ctx: LoopContext | None = None) -> Incident:
        config = self._config(incident_id)
        # No save here: an environment that persists itself does so on every action and wait.
        self.graph.invoke(payload, config, context=ctx or self.context(env))
        return self._record(incident_id, config)

    def _record(self, incident_id: str, config: RunnableConfig) -> Incident:
        """Persist the incident as the graph left it, and any approval it now waits on."""
        snapshot = self.graph.get_state(config)
        values = snapshot.values
        incident: Incident = values["incident"]
        waiting = [ApprovalRequest.model_validate(i.value) for i in snapshot.interrupts]
        if waiting:
            incident = incident.model_copy(
                update={
                    "status": IncidentStatus.AWAITING_APPROVAL,
                    "timeline": list(values.get("events", [])),
                },
                deep=True,
            )
            for request in waiting:
                self.store.add_pending(request)
                self.store.audit(
                    incident_id, "opsloop", "approval_requested", request.model_dump(mode="json")
                )
        try:
            earlier = self.store.get_incident(incident_id).usage
        except StoreError:
            earlier = ModelUsage()
        ledger = self.model.ledger if self.model is not None else None
        incident = incident.model_copy(update={"usage": incident_usage(incident, earlier, ledger)})
        self.store.save_incident(incident)
        return incident

    def pending(self) -> list[ApprovalRequest]:
        return self.store.pending()


__all__ = ["OperateLoop", "StoreError"]
