"""The rollouts agent: every interval, each flag rollouts.yaml manages is analysed at its
current step and moved on, held or killed.

`decide` is a pure function that names the rule that decided, strictest first:

1. **kill** — the step's analysis is Failed (opsloop.rollouts.analysis: Argo Rollouts'
   semantics): a `disable_flag` proposal, made as soon as the failure shows, whatever the
   step's age, so a bad step is killed within one run of the agent. Decided like any action
   (schedule.yaml severity SEV2: automatic, people told) and verified by rollback.yaml.
2. **waiting** — the step has run less than its `interval` (few points yet: only a failure
   decides early).
3. **hold** — Inconclusive over a whole interval (no data counts here unless the plan says
   failed): no change; a warning finding and a signal ask the outcome owner to look.
4. **blocked** — Successful, but the service is in error-budget hold or freeze (health.yaml
   `error_budget_policy`): no advance while the budget is going.
5. **waiting** — Successful, but the owner has not yet answered the last advance, or
   rejected this very advance.
6. **advance** — Successful over a whole interval: a `set_flag_rollout` proposal to the next
   step, as sure as a kill. Whether it waits for the owner is the guardrails' call: a plan
   with `advances: needs_approval` makes them ask (rule `rollouts.yaml:...advances`).

The outcome owner's own decisions (opsloop.rollouts.owner, `opsloop rollouts hold|resume|
answer`) come in between: a flag its owner **holds** is `held` (rule `owner hold by <who> at
<when>`) right after the kill check — a Failed analysis still kills it. A killed flag whose
owner answered **rework** is left alone and reported for cleanup (`rework`); **temporary**
means the owner re-enables it (`idle`, naming the answer).

A flag that is disabled, at 0% or already at 100% is left alone (`idle`/`complete`).
Flags under an experiment (rollouts.yaml `experiments`) have their control and treatment
compared each run (opsloop.scheduled.agents.rollout_experiments): a clear result is a finding,
a report and a signal; an ambiguous one asks the owner through the change path.
Every flag (managed or not) is also checked for staleness (rollouts.yaml `stale`,
opsloop.rollouts.stale): a stale one is a finding and a cleanup signal to its owner, whose
decision is recorded on the signal.
The agent keeps no state of its own: the flag's percent and `updated_at`, the change records
in the store and the owner file are what it reads, so a restart of `opsloop run` changes
nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsloop.agents.signals import signal_id, write_signals
from opsloop.models import (
    FlagState,
    IncidentStatus,
    RemediationAction,
    RemediationProposal,
    Signal,
    Verdict,
)
from opsloop.policy import Policies
from opsloop.policy.health import budget_state
from opsloop.policy.schema.rollouts import RolloutPlan
from opsloop.rollouts.analysis import AnalysisResult, Phase, analyse
from opsloop.rollouts.owner import FlagOwnerState, OwnerBook
from opsloop.rollouts.stale import Staleness, stale
from opsloop.scheduled.agents.rollout_experiments import judge, measure, write_report
from opsloop.scheduled.base import AgentContext, Analysis, Finding
from opsloop.store import IncidentStore
from opsloop.tools.protocols import Telemetry

NAME = "rollouts"
SURE = 0.95  # a kill or an advance: the analysis decided; the guardrails say who acts
ANSWERS_WITHIN = timedelta(days=30)  # how far back the owner's answers are read


@dataclass(frozen=True)
class Decision:
    """What to do about one flag now, and the rule that decided."""

    action: str  # kill | held | hold | blocked | waiting | advance | idle | rework | complete
    rule: str
    reason: str
    to_percent: int | None = None


def next_step(plan: RolloutPlan, percent: float) -> int | None:
    return next((s for s in plan.steps if s > percent), None)


def decide(row: dict[str, Any], plan: RolloutPlan) -> Decision:
    """The decision for one observed flag (see the module docstring)."""
    key = row["key"]
    where = f"rollouts.yaml:flags.{key}"
    percent = float(row["percent"])
    owner = row.get("owner_state") or {}
    if not row["enabled"] or percent <= 0:
        answer = owner.get("answer")
        if answer is not None and answer.get("answer") == "rework":
            return Decision("rework", _owner_rule(answer),
                            f"{key} was killed and its owner sent it back for rework "
                            f"({answer.get('reason') or 'no reason given'}): left alone; "
                            "remove or rework the flag")
        if answer is not None:
            return Decision("idle", _owner_rule(answer),
                            f"{key} was killed temporarily: its owner re-enables it "
                            f"(`opsloop rollouts advance {key} --to STEP`)")
        return Decision("idle", where, f"{key} is disabled or at 0%: the owner decides when "
                                       "it starts again")
    if percent >= 100:
        return Decision("complete", f"{where}.steps", f"{key} serves everyone (100%)")
    result = AnalysisResult.model_validate(row["analysis"])
    if result.phase is Phase.FAILED:
        return Decision("kill", f"{where}.analysis", f"analysis Failed at {percent:g}%: "
                                                     f"{result.reason}")
    hold = owner.get("hold")
    if hold is not None:  # after the kill: a hold never keeps a failing step running
        return Decision("held", _owner_rule(hold),
                        f"held by its owner ({hold.get('reason') or 'no reason given'}): no "
                        f"advance until `opsloop rollouts resume {key}`")
    if row["elapsed_minutes"] < plan.interval:
        # A young step has few points yet: only a failure decides early (the kill above).
        return Decision("waiting", f"{where}.interval",
                        f"step {percent:g}% has run {row['elapsed_minutes']} of its "
                        f"{plan.interval} minutes (analysis so far: {result.phase})")
    if result.phase is Phase.INCONCLUSIVE:
        return Decision("hold", f"{where}.analysis", f"analysis Inconclusive at {percent:g}%: "
                                                     f"{result.reason}; the owner decides")
    budget = row["budget"]
    if budget["state"] in ("hold", "freeze"):
        return Decision("blocked", budget["rule"],
                        f"error-budget {budget['state']} on {row['service']}: "
                        f"{budget['reason']}; no advance while the budget is going")
    target = next_step(plan, percent)
    if target is None:  # past the plan's last step but under 100: the plan ends at 100
        return Decision("complete", f"{where}.steps", f"{key} is past its plan's steps")
    if row.get("pending"):
        return Decision("waiting", f"{where}.advances",
                        f"the owner has not yet answered {row['pending']}")
    if target in row.get("rejected", []):
        return Decision("waiting", f"{where}.advances",
                        f"the owner rejected the advance to {target}%; held at {percent:g}%")
    return Decision("advance", f"{where}.advances.{plan.advances}",
                    f"analysis Successful over {plan.interval} minutes at {percent:g}%: "
                    f"{result.reason}", to_percent=target)


def _owner_rule(entry: dict[str, Any]) -> str:
    verb = "hold" if entry["verb"] == "hold" else f"answer {entry.get('answer')}"
    return f"owner {verb} by {entry['by']} at {str(entry['at'])[:16].replace('T', ' ')}"


class Rollouts:
    name = NAME
    purpose = ("Run each managed feature flag's progressive rollout (rollouts.yaml): analyse "
               "the step, propose the next one, kill a failing one at once, hold and ask "
               "when the signals are unclear or the error budget is going.")
    tools = ("flags", "metric_history", "error_budget")

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        answers = pending_answers(ctx.store, ctx.now)
        owners = OwnerBook(ctx.settings.state_dir).states()  # a corrupt file stops the run
        rows = [{**observe_flag(key, ctx.policies, ctx.telemetry, ctx.now, owners.get(key)),
                 **answers.get(key, {})} for key in sorted(ctx.policies.rollouts.flags)]
        every = [f.model_dump(mode="json") for f in ctx.telemetry.flags()]
        experiments = [measure(key, spec, ctx.telemetry, ctx.now)
                       for key, spec in sorted(ctx.policies.rollouts.experiments.items())]
        return {"at": ctx.now.isoformat(), "flags": rows, "all_flags": every,
                "experiments": experiments, "answers": answers}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        policy = ctx.policies.rollouts
        findings, proposals, signals = [], [], []
        for row in observed.get("flags", []):
            key = row["key"]
            plan = policy.plan_for(key)
            if row.get("missing") or plan is None:
                findings.append(Finding(
                    kind="rollout_flag_missing", subject=key, level="warning",
                    summary=f"{key}: rollouts.yaml manages it but {row['service']} has no "
                            "such flag",
                    evidence=[f"rollouts.yaml:flags.{key}.service = {row['service']}"]))
                continue
            d = decide(row, plan)
            row["decision"] = vars(d)
            if d.action == "kill":
                proposals.append(_proposal(ctx.run_id, row, "disable_flag", {"flag": key},
                                           SURE, d))
            elif d.action == "advance" and d.to_percent is not None:
                proposals.append(_proposal(ctx.run_id, row, "set_flag_rollout",
                                           {"flag": key, "percent": d.to_percent}, SURE, d))
            level = {"kill": "critical", "hold": "warning", "blocked": "warning",
                     "rework": "warning"}.get(
                d.action, "info")
            findings.append(Finding(
                kind=f"rollout_{d.action}", subject=key, level=level,
                summary=f"{key} ({row['service']}, {row['percent']:g}%): {d.action}",
                evidence=[d.reason, f"rule {d.rule}"],
                data={k: row.get(k) for k in ("service", "owner", "percent", "decision",
                                              "analysis", "budget", "owner_state")}))
            if d.action in ("hold", "kill"):
                ask = ("Decide: resume, roll back, or change the plan" if d.action == "hold"
                       else f"Answer the kill: `opsloop rollouts answer {key} temporary "
                            f"--reason TEXT --environment REF` (you re-enable it later with "
                            f"`opsloop rollouts advance {key} --to STEP`) or `opsloop "
                            f"rollouts answer {key} rework --reason TEXT --environment REF` "
                            "(it goes back to its team; the agent leaves it alone), or POST "
                            f"/api/v1/rollouts/{key}/answer")
                # One signal per flag, step and decision: the numbers change every run, so
                # they stay in the finding; the signal's evidence must not grow each run.
                step = f"{row['percent']:g}% (step began {row['updated_at'][:16]})"
                signals.append(Signal(
                    id=signal_id(f"rollout_{d.action}", key, step), kind=f"rollout_{d.action}",
                    title=f"{key}: {d.action} at {step}",
                    evidence=[f"analysis {row['analysis']['phase']} at {step}",
                              f"rule {d.rule}"],
                    suggested_mission=f"{ask} for {key} (owner: {row.get('owner') or '?'})",
                    created_at=ctx.now))
        for found in _stale(ctx, observed.get("all_flags", [])):
            findings.append(Finding(
                kind="rollout_stale", subject=found.key, level="info", summary=found.reason,
                evidence=[*found.evidence, f"rule rollouts.yaml:stale.{found.rule}"],
                data={"service": found.service, "kind": found.kind}))
            signals.append(Signal(
                id=signal_id("flag_stale", found.service, found.key), kind="flag_stale",
                title=found.reason, evidence=[*found.evidence,
                                              f"rule rollouts.yaml:stale.{found.rule}"],
                suggested_mission=f"Remove flag {found.key} from {found.service}'s code and "
                                  f"flag file, or say why it stays ({found.evidence[-1]} "
                                  "decides)",
                created_at=ctx.now))
        tried = observed.get("experiments", [])
        noted, asks, told = judge(tried, ctx.run_id, ctx.now,
                                  {str(p.action.params.get("flag")) for p in proposals},
                                  observed.get("answers", {}))
        findings, proposals, signals = findings + noted, proposals + asks, signals + told
        reports = (write_report(ctx.reports_dir / f"rollout-experiments-"
                                f"{ctx.due_at.date().isoformat()}", tried, ctx.now)
                   if tried else [])
        written = write_signals(signals, ctx.signals_dir) if signals else []
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.kind.removeprefix("rollout_")] = counts.get(
                f.kind.removeprefix("rollout_"), 0) + 1
        summary = (", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                   or "no managed flags")
        return Analysis(summary=f"rollouts: {summary}", findings=findings,
                        proposals=proposals, signals=[str(p) for p in written],
                        reports=[str(p) for p in reports])


def observe_flag(key: str, policies: Policies, telemetry: Telemetry, now: datetime,
                 owner: FlagOwnerState | None = None) -> dict[str, Any]:
    """One managed flag now: its state, the analysis of its current step (the points since
    the step began, at most one interval), its service's error-budget state and what its
    owner decided (the hold in force, the answer to its last kill). JSON-able."""
    managed = policies.rollouts.flags[key]
    plan = policies.rollouts.plan_for(key)
    try:
        state = next((f for f in telemetry.flags(managed.service) if f.key == key), None)
    except KeyError:
        state = None
    if state is None or plan is None:
        return {"key": key, "service": managed.service, "missing": True}
    elapsed = max(0, int((now - state.updated_at).total_seconds() // 60))
    window = max(1, min(elapsed, plan.interval))
    series: dict[str, list[float] | None] = {}
    for check in plan.analysis.metrics:
        try:
            points = telemetry.metric(managed.service, check.metric, window).points
            series[check.metric] = [p.value for p in points]
        except KeyError:
            series[check.metric] = None
    budget = budget_state(managed.service, policies, telemetry)
    return {
        "key": key, "service": managed.service, "owner": managed.owner or state.owner,
        "enabled": state.enabled, "percent": state.rollout_percent,
        "updated_at": state.updated_at.isoformat(), "elapsed_minutes": elapsed,
        "window_minutes": window, "steps": plan.steps, "interval_minutes": plan.interval,
        "advances": str(plan.advances),
        "analysis": analyse(plan.analysis, series).model_dump(mode="json"),
        "budget": budget.model_dump(mode="json"),
        "owner_state": owner_view(owner or FlagOwnerState(), state.updated_at,
                                  not state.enabled or state.rollout_percent <= 0),
    }


def owner_view(owner: FlagOwnerState, changed_at: datetime, killed: bool) -> dict[str, Any]:
    """The owner's hold in force and the answer that still applies to the flag's last
    change (a kill answered, not re-enabled since), with the history, JSON-able."""
    answer = owner.answer_for(changed_at, killed)
    return {"hold": owner.hold.model_dump(mode="json") if owner.hold else None,
            "answer": answer.model_dump(mode="json") if answer else None,
            "history": [e.model_dump(mode="json", exclude_none=True) for e in owner.history]}


def _proposal(run_id: str, row: dict[str, Any], action: str, params: dict[str, Any],
              confidence: float, d: Decision, extra: str = "") -> RemediationProposal:
    key = row["key"]
    suffix = "kill" if action == "disable_flag" else f"to-{params['percent']}"
    # Approval ids are the action ids, unique across the store: the run id makes a second
    # kill of the same flag (or the same step proposed again later) a new request.
    return RemediationProposal(
        action=RemediationAction(id=f"{run_id}-{key}-{suffix}", type=action,
                                 service=row["service"], params=params, reason=d.reason),
        specialist=NAME, hypothesis_id=f"rollout:{key}:{row['percent']:g}",
        confidence=confidence, rationale=f"{d.reason} [{d.rule}]{extra}")


def _stale(ctx: AgentContext, flags: list[dict[str, Any]]) -> list[Staleness]:
    policy = ctx.policies.rollouts.stale
    found = []
    for raw in flags:
        flag = FlagState.model_validate(raw)
        kind = policy.kind_of(flag.key)
        verdict = stale(flag, kind, policy.lifetimes.get(kind), policy.unchanged_for, ctx.now)
        if verdict is not None:
            found.append(verdict)
    return found


def pending_answers(store: IncidentStore, now: datetime) -> dict[str, dict[str, Any]]:
    """Per flag: an advance still awaiting its approval, and the step percents the owner
    rejected — read from this agent's change records, so a restart forgets nothing."""
    out: dict[str, dict[str, Any]] = {}
    for record in store.incidents(since=now - ANSWERS_WITHIN):
        if record.group_key != f"agent:{NAME}":
            continue
        for case in record.actions:
            if case.action.type != "set_flag_rollout":
                continue
            key = str(case.action.params.get("flag"))
            mine = out.setdefault(key, {"rejected": []})
            percent = case.action.params.get("percent")
            if case.approval is not None and case.approval.verdict is Verdict.REJECT:
                if isinstance(percent, int | float) and math.isfinite(percent):
                    mine["rejected"].append(int(percent))
            elif (record.status in (IncidentStatus.AWAITING_APPROVAL, IncidentStatus.OPEN)
                  and case.result is None):
                mine["pending"] = f"{record.id} ({case.action.describe()})"
    return out
