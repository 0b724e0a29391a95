"""The scheduler: which agents are due, claiming each run once, running it, catching up.

- A run is due at each cron time of its schedule (plus its fixed jitter), on production's
  clock. Due times before an agent was first scheduled here are never owed.
- A run missed while opsloop was down runs once when it comes back, if it is younger than
  schedule.yaml `catch_up_within`; it stands for every due time it skipped (`missed`).
- Each run is claimed in the ledger by (agent, due time) before it starts: a second process,
  or a second tick, never runs it again. An agent's runs never overlap: each holds the
  agent's lease (`agent:<name>`) in the store while it runs.
- A run whose process died is continued from its checkpoint by `recover` (at start), not
  started over; a run that fails is recorded as failed and never stops the other agents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsloop.environments import Production
from opsloop.graph.agent_run import RunInfo, run_id_for
from opsloop.graph.runner import AgentOutcome, OperateLoop
from opsloop.models import Incident, IncidentStatus
from opsloop.policy import Policies
from opsloop.policy.schema import AgentSchedule
from opsloop.scheduled import registry
from opsloop.scheduler.cron import due_between, jitter, next_due
from opsloop.scheduler.ledger import AgentRun, RunLedger
from opsloop.store import StoreError
from opsloop.store_lease import LeaseHeld

log = logging.getLogger("opsloop.scheduler")

EnvOpener = Callable[[], Production]


@dataclass
class Due:
    agent: str
    due_at: datetime
    trigger: str  # schedule | catch_up
    missed: int = 0


@dataclass
class AgentStatus:
    name: str
    purpose: str
    schedule: AgentSchedule | None
    last: AgentRun | None
    next_due: datetime | None


class Scheduler:
    def __init__(self, loop: OperateLoop, ledger: RunLedger, environment: str,
                 open_env: EnvOpener) -> None:
        self.loop = loop
        self.ledger = ledger
        self.environment = environment
        self.open_env = open_env
        self.policy = loop.policies.schedule

    def unknown_agents(self) -> list[str]:
        return unknown_agents(self.loop.policies)

    # what is due -------------------------------------------------------------------------

    def due(self, now: datetime) -> list[Due]:
        found = []
        for name, schedule in sorted(self.policy.agents.items()):
            if not schedule.enabled or name not in registry.names():
                continue
            after = self.ledger.last_scheduled(name) or self.ledger.anchor(name, now)
            times, dropped = due_between(schedule, after, now)
            times = [t for t in times if t + jitter(name, t, schedule) <= now]
            if not times:
                continue
            latest = times[-1]
            skipped = len(times) - 1 + dropped
            if now - latest > timedelta(minutes=self.policy.catch_up_within):
                log.warning("%s: run due %s is older than catch_up_within; awaiting the next",
                            name, latest.isoformat())
                continue
            # On time: due within the last tick or two; otherwise it is a catch-up.
            late = skipped > 0 or now - latest > timedelta(minutes=5)
            found.append(Due(name, latest, "catch_up" if late else "schedule", skipped))
        return [*found, *self._after_incidents(now)]

    def _after_incidents(self, now: datetime) -> list[Due]:
        """A run for each incident of the listed severities that ended since the agent was
        first scheduled here (and within catch_up_within); its due time is the incident's
        opening, so each incident is claimed once."""
        found = []
        for name, schedule in sorted(self.policy.agents.items()):
            if not schedule.enabled or not schedule.after_incidents:
                continue
            since = max(self.ledger.anchor(name, now),
                        now - timedelta(minutes=self.policy.catch_up_within))
            for incident_id, opened in self.loop.store.finished_since(
                    since, [s.value for s in schedule.after_incidents]):
                if self.ledger.get(run_id_for(name, opened, 'after_incident')) is None:
                    log.info("%s: due after %s ended", name, incident_id)
                    found.append(Due(name, opened, "after_incident"))
        return found

    # running -------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[AgentRun]:
        """Run every agent that is due now, one after another; what each run recorded."""
        self.settle()
        done = []
        for due in self.due(now):
            run = self._run(due.agent, due.due_at, due.trigger, now, missed=due.missed)
            if run is not None:
                done.append(run)
        return done

    def run_now(self, agent: str, now: datetime) -> AgentRun:
        """`opsloop agents run NAME`: run it at once, beside its schedule."""
        registry.agent(agent)  # UnknownAgent, naming the known ones
        run = self._run(agent, now, "manual", now)
        if run is None:
            raise StoreError(f"{agent} is running already; `opsloop agents history {agent}` "
                             f"shows it")
        return run

    def _run(self, agent: str, due_at: datetime, trigger: str, now: datetime,
             missed: int = 0) -> AgentRun | None:
        manual = trigger == "manual"
        run_id = run_id_for(agent, due_at, trigger)
        if manual:  # by hand, as often as asked: the production minute alone is not unique
            run_id += f"-{time.time_ns() // 1000 % 1_000_000:06d}"
        try:
            with self.loop.store.leases.hold(f"agent:{agent}", f"{trigger} run {run_id}"):
                if not self.ledger.claim(run_id, agent, due_at, trigger, now, missed):
                    return None  # another process, or an earlier tick, has it
                info = RunInfo(run_id=run_id, agent=agent, due_at=due_at,
                               environment=self.environment, manual=manual)
                return self._execute(info, now)
        except LeaseHeld:
            return None  # its previous run is still going: never two at once

    def _execute(self, info: RunInfo, now: datetime) -> AgentRun:
        schedule = self.policy.agents.get(info.agent)
        limit = schedule.max_run_time * 60.0 if schedule is not None else None
        began = time.monotonic()
        with ExitStack() as opened:
            try:
                env = self.open_env()
                opened.callback(env.close)
                outcome = self.loop.run_agent(info, env, max_seconds=limit)
                self._finish(info.run_id, outcome, env.now(), time.monotonic() - began)
            except Exception as exc:  # one agent's failure never stops the others
                log.exception("scheduled agent %s failed", info.agent)
                elapsed = time.monotonic() - began
                error = f"{type(exc).__name__}: {exc}"
                self.ledger.finish(info.run_id, "failed", now + timedelta(seconds=elapsed),
                                   elapsed, error=error)
                self._tell_owners(info, error)
        run = self.ledger.get(info.run_id)
        assert run is not None
        return run

    def _tell_owners(self, info: RunInfo, error: str) -> None:
        """A run that failed is news for the agent's owners, whichever phase failed (a
        failed action or verification escalates its change record, which notifies too)."""
        try:
            self.loop.notifier.notify(
                "agents", f"scheduled agent {info.agent} failed ({info.run_id}): {error}",
                {"agent": info.agent, "run": info.run_id}, key=f"{info.run_id}:failed")
        except Exception:  # the outbox failing must not hide the run's own failure
            log.exception("could not notify about the failed run %s", info.run_id)

    def _finish(self, run_id: str, outcome: AgentOutcome, ended: datetime,
                seconds: float) -> None:
        analysis = outcome.analysis
        record = outcome.record
        status = "succeeded"
        if record is not None and record.status is IncidentStatus.AWAITING_APPROVAL:
            status = "awaiting_approval"
        self.ledger.finish(
            run_id, status, ended, seconds,
            summary=analysis.summary if analysis else "",
            findings=[f.model_dump(mode="json", exclude={"data"})
                      for f in (analysis.findings if analysis else [])],
            proposals=[{"action": p.action.describe(),
                        "outcome": _outcome(record, p.action.id)}
                       for p in (analysis.proposals if analysis else [])],
            reports=[*(analysis.reports if analysis else []),
                     *(analysis.signals if analysis else [])],
            record_id=record.id if record else None)

    def settle(self) -> None:
        """Runs waiting on a human: finished once their change record is."""
        for run in self.ledger.history(limit=200):
            if run.status != "awaiting_approval" or run.record_id is None:
                continue
            try:
                record = self.loop.store.get_incident(run.record_id)
            except StoreError:
                continue
            if record.status is not IncidentStatus.AWAITING_APPROVAL:
                self.ledger.finish(run.run_id, "succeeded", run.ended_at or run.started_at,
                                   run.seconds or 0.0, summary=run.summary,
                                   findings=run.findings,
                                   proposals=[{**p, "outcome": _outcome(record, None, p)}
                                              for p in run.proposals],
                                   reports=run.reports, record_id=run.record_id)

    def recover(self) -> list[tuple[str, str]]:
        """Continue every run a dead process left unfinished, from its checkpoint."""
        outcomes = []
        for run in self.ledger.unfinished():
            try:
                with self.loop.store.leases.hold(f"agent:{run.agent}", f"recover {run.run_id}"):
                    info = RunInfo(run_id=run.run_id, agent=run.agent, due_at=run.due_at,
                                   environment=self.environment,
                                   manual=run.trigger == "manual")
                    done = self._execute(info, run.started_at)
                    outcomes.append((run.run_id, done.status))
            except LeaseHeld:
                outcomes.append((run.run_id, "still running elsewhere"))
        return outcomes

    # what people see -----------------------------------------------------------------------

    def statuses(self, now: datetime) -> list[AgentStatus]:
        return agent_statuses(self.loop.policies, self.ledger, now)


def agent_statuses(policies: Policies, ledger: RunLedger, now: datetime) -> list[AgentStatus]:
    """Every known agent: its schedule, its last run, and its next due time after `now`."""
    rows = []
    for name in registry.names():
        schedule = policies.schedule.agents.get(name)
        history = ledger.history(name, limit=1)
        upcoming = (next_due(schedule, now) if schedule is not None and schedule.enabled
                    else None)
        rows.append(AgentStatus(name, _purpose(name), schedule,
                                history[0] if history else None, upcoming))
    return rows


def status_row(row: AgentStatus) -> dict[str, object]:
    """One agent's status as JSON, for the CLI and the API alike."""
    last = row.last
    return {
        "name": row.name,
        "purpose": row.purpose,
        "cron": row.schedule.cron if row.schedule else None,
        "timezone": row.schedule.timezone if row.schedule else None,
        "enabled": bool(row.schedule and row.schedule.enabled),
        "next_run": row.next_due.isoformat() if row.next_due else None,
        "last_run": last.model_dump(mode="json") if last else None,
    }


def unknown_agents(policies: Policies) -> list[str]:
    """What the policy schema cannot see in schedule.yaml: names no agent has. `run` refuses
    to start with any, naming the entry."""
    known = ", ".join(registry.names())
    return [f"{policies.source_dir / 'schedule.yaml'}: agents.{name}: no scheduled agent by "
            f"that name (known: {known})"
            for name in policies.schedule.agents if name not in registry.names()]


def _purpose(name: str) -> str:
    try:
        return registry.agent(name).purpose
    except Exception as exc:  # an agent that cannot load is shown, not hidden
        return f"(cannot load: {exc})"


def _outcome(record: Incident | None, action_id: str | None,
             proposal: dict[str, object] | None = None) -> str:
    """Where one proposal got to on the change path."""
    if record is None:
        return "none"
    for case in record.actions:
        if action_id is not None and case.id != action_id:
            continue
        if proposal is not None and case.action.describe() != proposal.get("action"):
            continue
        if case.result is not None:
            return case.result.status.value
        if case.approval is not None:
            return case.approval.verdict.past
        if case.decision is not None:
            return case.decision.outcome.value
    return "proposed"
