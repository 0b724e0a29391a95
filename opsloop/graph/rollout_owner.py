"""The outcome owner's verbs on a managed flag, shared by `opsloop rollouts` and the API.

`hold`, `resume` and `answer` are decisions only the owner file keeps
(opsloop.rollouts.owner); the rollouts agent reads them on its next run. `advance` and `kill`
change production, so they take the rollouts agent's own change path: the owner's proposal
is opened as a change record of the `rollouts` agent (a run of the agent graph that starts
at `propose`, with the owner's proposal as its analysis) and is decided by the guardrails,
approved, acted on and verified like the agent's. When the only thing asking for approval is
the flag's plan (`advances: needs_approval` asks the outcome owner), the owner asking for
the advance is that approval, recorded under their identity; any other rule that asks (an
error-budget hold, a SEV1 boundary) leaves the change waiting for `opsloop approve`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from opsloop.environments import Production
from opsloop.graph.agent_run import RUN_PREFIX, RunInfo
from opsloop.graph.nodes.guardrails import guardrail_context
from opsloop.graph.runner import OperateLoop
from opsloop.graph.thread import thread_state
from opsloop.models import (
    DecisionOutcome,
    FlagState,
    Incident,
    IncidentStatus,
    RemediationAction,
    RemediationProposal,
    Severity,
    Verdict,
)
from opsloop.policy import Policies
from opsloop.policy.guardrails import decide
from opsloop.policy.schema.rollouts import FlagPlan, RolloutPlan
from opsloop.rollouts.owner import Answer, FlagOwnerState, OwnerBook, OwnerEntry
from opsloop.scheduled.agents.rollout_experiments import measure
from opsloop.scheduled.agents.rollouts import (
    NAME,
    next_step,
    observe_flag,
    owner_view,
    pending_answers,
)
from opsloop.scheduled.agents.rollouts import decide as decide_flag
from opsloop.scheduled.base import Analysis


class UnknownFlag(LookupError):
    """Not a flag rollouts.yaml manages, or not one production has (404)."""


class NotPossible(ValueError):
    """The verb cannot apply to the flag as it is now (409)."""


@dataclass(frozen=True)
class ManagedFlag:
    key: str
    managed: FlagPlan
    plan: RolloutPlan
    state: FlagState

    @property
    def percent(self) -> float:
        return self.state.rollout_percent if self.state.enabled else 0.0


@dataclass(frozen=True)
class OwnerChange:
    """What an advance or a kill did: its change record, and whether it still waits."""

    record: Incident
    waiting: str | None  # the approval id still waiting for a human, if any
    owner: FlagOwnerState


def managed_flag(policies: Policies, production: Production, key: str) -> ManagedFlag:
    managed = policies.rollouts.flags.get(key)
    plan = policies.rollouts.plan_for(key)
    if managed is None or plan is None:
        known = ", ".join(sorted(policies.rollouts.flags)) or "none"
        raise UnknownFlag(f"rollouts.yaml does not manage {key!r} (managed: {known}); add it "
                          "under flags: to run its rollout")
    try:
        state = next((f for f in production.flags(managed.service) if f.key == key), None)
    except KeyError:
        state = None
    if state is None:
        raise UnknownFlag(f"{managed.service} has no flag {key!r} in this production "
                          f"(rollouts.yaml:flags.{key}.service)")
    return ManagedFlag(key, managed, plan, state)


def flag_rows(policies: Policies, flags: list[FlagState]) -> list[dict[str, Any]]:
    """Every flag, its percent, and its plan when rollouts.yaml manages it (`list`)."""
    rows: list[dict[str, Any]] = []
    for f in sorted(flags, key=lambda f: (f.service, f.key)):
        managed = policies.rollouts.flags.get(f.key)
        plan = policies.rollouts.plan_for(f.key)
        rows.append({"key": f.key, "service": f.service, "enabled": f.enabled,
                     "percent": f.rollout_percent, "owner": f.owner or "",
                     "updated_at": f.updated_at.isoformat(), "managed": managed is not None,
                     "steps": plan.steps if plan else None,
                     "next_step": next_step(plan, f.rollout_percent) if plan else None,
                     "advances": str(plan.advances) if plan else None})
    return rows


def flag_detail(policies: Policies, production: Production, key: str, book: OwnerBook,
                answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One managed flag as the agent sees it now, with its decision, its owner's and its
    experiment's result (`show`); a flag under an experiment only has the experiment's.
    `answers`: the agent's advances waiting or rejected (`pending_answers`)."""
    experiment = policies.rollouts.experiments.get(key)
    now = production.now()
    measured = (None if experiment is None
                else measure(key, experiment, production, now))
    if experiment is not None and key not in policies.rollouts.flags:
        return {"key": key, "service": experiment.service, "managed": False,
                "experiment": measured,
                "owner_state": owner_view(book.state(key), now, killed=False)}
    flag = managed_flag(policies, production, key)
    row = {**observe_flag(key, policies, production, now, book.state(key)),
           **answers.get(key, {}), "managed": True, "experiment": measured}
    row["decision"] = vars(decide_flag(row, flag.plan))
    return row


def hold(book: OwnerBook, policies: Policies, production: Production, key: str, by: str,
         reason: str) -> FlagOwnerState:
    managed_flag(policies, production, key)
    held = book.state(key).hold
    if held is not None:
        raise NotPossible(f"{key} is already held by {held.by} since {held.at:%Y-%m-%d %H:%M}"
                          f" ({held.reason or 'no reason given'})")
    return book.hold(key, by, _reason(reason, "hold"), production.now())


def resume(book: OwnerBook, policies: Policies, production: Production, key: str, by: str,
           reason: str = "") -> FlagOwnerState:
    managed_flag(policies, production, key)
    if book.state(key).hold is None:
        raise NotPossible(f"{key} is not held: nothing to resume")
    return book.resume(key, by, production.now(), reason)


def answer(book: OwnerBook, policies: Policies, production: Production, key: str,
           kind: Answer, by: str, reason: str = "") -> FlagOwnerState:
    flag = managed_flag(policies, production, key)
    if flag.state.enabled and flag.state.rollout_percent > 0:
        raise NotPossible(f"{key} is not killed (enabled at {flag.state.rollout_percent:g}%): "
                          "an answer is to a kill")
    return book.answer_kill(key, kind, by, reason, production.now(), flag.state.updated_at)


def advance(loop: OperateLoop, production: Production, environment: str, key: str,
            to: int | None, by: str, reason: str = "") -> OwnerChange:
    """The owner moves the flag to `to` (default: its plan's next step)."""
    flag = managed_flag(loop.policies, production, key)
    book = OwnerBook(loop.settings.state_dir)
    held = book.state(key).hold
    if held is not None:
        raise NotPossible(f"{key} is held by {held.by} ({held.reason or 'no reason given'}): "
                          f"`opsloop rollouts resume {key}` first")
    current = flag.percent
    target = next_step(flag.plan, current) if to is None else to
    if target is None:
        raise NotPossible(f"{key} is at {current:g}%, past its plan's last step")
    if target not in flag.plan.steps:
        raise NotPossible(f"{target}% is not a step of {key}'s plan (steps "
                          f"{flag.plan.steps}; rollouts.yaml)")
    if target <= current:
        raise NotPossible(f"{key} is at {current:g}% already: an advance goes above it "
                          "(to narrow it, kill it)")
    waiting = pending_answers(loop.store, production.now()).get(key, {}).get("pending")
    if waiting:
        raise NotPossible(f"an advance of {key} already waits for approval: {waiting}; "
                          "answer it with `opsloop approve|reject`")
    action = _action(flag, "set_flag_rollout", {"flag": key, "percent": target}, f"to-{target}")
    change = _change(loop, production, environment, flag, action, by,
                     reason.strip() or f"the owner asked for {target}%")
    owner = book.append(key, OwnerEntry(verb="advance", by=by, at=production.now(),
                                        reason=reason, to_percent=target,
                                        record=change.record.id))
    return OwnerChange(change.record, change.waiting, owner)


def kill(loop: OperateLoop, production: Production, environment: str, key: str, by: str,
         reason: str) -> OwnerChange:
    """The owner switches the flag off now (`disable_flag`)."""
    flag = managed_flag(loop.policies, production, key)
    if not flag.state.enabled:
        raise NotPossible(f"{key} is already disabled")
    action = _action(flag, "disable_flag", {"flag": key}, "kill")
    change = _change(loop, production, environment, flag, action, by, _reason(reason, "kill"))
    owner = OwnerBook(loop.settings.state_dir).append(key, OwnerEntry(
        verb="kill", by=by, at=production.now(), reason=reason, record=change.record.id))
    return OwnerChange(change.record, change.waiting, owner)


def _reason(reason: str, verb: str) -> str:
    if not reason.strip():
        raise NotPossible(f"a {verb} needs a reason (--reason TEXT): it is recorded for the "
                          "people who come after")
    return reason.strip()


def _action(flag: ManagedFlag, kind: str, params: dict[str, str | int], what: str
            ) -> RemediationAction:
    return RemediationAction(id=f"{kind}-{flag.key}-{what}", type=kind,
                             service=flag.managed.service, params=dict(params))


@dataclass(frozen=True)
class _Opened:
    record: Incident
    waiting: str | None


def _change(loop: OperateLoop, production: Production, environment: str, flag: ManagedFlag,
            action: RemediationAction, by: str, reason: str) -> _Opened:
    now = production.now()
    stamp = now.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    # Unique (two owners in the same production minute), and ending in the time's digits,
    # by which the store orders records.
    run_id = f"{RUN_PREFIX}{NAME}-owner-{secrets.token_hex(3)}-{stamp}"
    # The approval id is the action id, unique in the store: the run id makes it so.
    action = action.model_copy(update={"id": f"{run_id}-{action.id}", "reason": reason})
    proposal = RemediationProposal(
        action=action, specialist=NAME, hypothesis_id=f"owner:{by}:{flag.key}",
        confidence=1.0, rationale=f"asked by the outcome owner {by}: {reason}")
    run = RunInfo(run_id=run_id, agent=NAME, due_at=now, environment=environment,
                  manual=True)
    analysis = Analysis(summary=f"{by} asked for {action.describe()}", proposals=[proposal])
    record = _open(loop, run, analysis, production, by)
    case = record.actions[0]
    if (record.status is IncidentStatus.AWAITING_APPROVAL and case.approval is None
            and _only_the_plan_asks(loop, production, record, flag, case.action, proposal)):
        record = loop.decide(case.id, Verdict.APPROVE, by,
                             f"the outcome owner asked for it: {reason}", env=production)
    waiting = case.id if record.status is IncidentStatus.AWAITING_APPROVAL else None
    return _Opened(record, waiting)


def _open(loop: OperateLoop, run: RunInfo, analysis: Analysis, production: Production,
          by: str) -> Incident:
    """Run the agent graph from `propose` with `analysis` (the observe and analyse steps are
    the owner's): the change record, decided, maybe acted on, or waiting for a human."""
    config = loop._config(run.run_id)
    with loop._hold(run.run_id, f"owner change by {by}"):
        if thread_state(loop.agent_graph, config).values:
            raise NotPossible(f"{run.run_id} exists already; try again")
        loop.agent_graph.update_state(config, {"run": run, "analysis": analysis},
                                      as_node="analyse")
        loop.agent_graph.invoke(None, config, context=loop.context(production),
                                durability="sync")
        record = loop._agent_outcome(run.run_id, config).record
    if record is None:  # propose always opens one for a proposal
        raise RuntimeError(f"{run.run_id}: the owner's proposal opened no change record")
    return record


def _only_the_plan_asks(loop: OperateLoop, production: Production, record: Incident,
                        flag: ManagedFlag, action: RemediationAction,
                        proposal: RemediationProposal) -> bool:
    """Would the guardrails let this run unattended if the plan did not ask its owner? Then
    the owner asking is the approval the plan wants; otherwise another rule wants a human."""
    relaxed_flag = flag.managed.model_copy(update={"advances": DecisionOutcome.AUTO})
    rollouts = loop.policies.rollouts.model_copy(
        update={"flags": {**loop.policies.rollouts.flags, flag.key: relaxed_flag}})
    relaxed = loop.policies.model_copy(update={"rollouts": rollouts})
    ctx = guardrail_context(loop.context(production), record, action, [], proposal)
    decision = decide(action, record.severity or Severity.SEV1, relaxed, ctx)
    return decision.outcome is DecisionOutcome.AUTO

