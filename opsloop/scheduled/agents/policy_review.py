"""Policy evolution: proposed changes to policies/*.yaml, from what stored incidents showed.

Three kinds of evidence, each read from the incidents' action cases:

- a rule held back an action that humans then approved every time (at least
  `min_approvals` times, none modified or rejected, none failing verification): propose
  letting it run automatically, with a notification;
- a rule let an automatic action through and it failed verification (at least
  `min_failures` times): propose that the action type needs approval at that severity;
- an alert rule opened incidents (at least `min_alert_incidents`) none of which led to an
  action that ran: propose a longer `for` (a person may rather remove or rewrite it).

Each proposal is a unified diff of one policy file, checked by `check_policies` on a copy of
the policies with the change applied (a proposal that fails is reported as rejected, with its
problems) and replayed (`opsloop.policy.replay`) to show which decisions it would have
changed. Nothing under policies/ is ever written: a person merges what they agree with.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.models import (
    ActionCase,
    ActionStatus,
    DecisionOutcome,
    EventKind,
    Incident,
    Severity,
    Verdict,
)
from opsloop.models.actions import VerificationOutcome
from opsloop.policy import (
    Policies,
    PolicyError,
    PolicyProblem,
    ProblemLevel,
    check_policies,
    load_policies,
)
from opsloop.policy.replay import PolicyReplay, replay
from opsloop.scheduled.agents.policy_edits import (
    Edit,
    EditError,
    lengthen_alert,
    relax_action,
    relax_ceiling,
    tighten_action,
    unified_diff,
)
from opsloop.scheduled.base import AgentContext, Analysis, Finding

_R = "remediation.yaml"


@dataclass(frozen=True)
class ReviewLimits:
    """How much evidence a proposal needs, and how far back the review reads."""

    min_approvals: int = 3  # approved N of N times, N at least this, before relaxing
    min_failures: int = 1  # automatic actions that failed verification, before tightening
    min_alert_incidents: int = 3  # incidents an alert opened without any action
    lookback_days: int = 90
    for_factor: int = 2  # a noisy alert's `for` is multiplied by this


@dataclass
class Candidate:
    """One proposal before it is checked: the evidence and the edit that follows from it."""

    kind: str  # relax | tighten | alert
    subject: str
    rule: str
    summary: str
    incidents: list[str]
    counts: dict[str, int]
    edit: Edit | None  # None: the evidence is reported, but no edit follows from the rule
    why_no_edit: str = ""
    result: dict[str, Any] = field(default_factory=dict)


def failed_verification(incident: Incident, case: ActionCase) -> bool:
    """The action ran and verification judged it (or the incident's fix) failed."""
    if case.result is None or case.result.status is not ActionStatus.SUCCEEDED:
        return False
    if case.revert is not None or any(not c.ok for c in case.checks):
        return True
    return incident.verification is not None and not incident.verification.passed


def _severity(incident: Incident) -> Severity:
    return incident.severity or Severity.SEV1


def approved_always(incidents: Iterable[Incident], limits: ReviewLimits) -> list[Candidate]:
    """needs_approval rules whose every answered request was approved, with fixes that held."""
    groups: dict[tuple[str, str, Severity], list[tuple[Incident, ActionCase]]] = {}
    for incident in incidents:
        for case in incident.actions:
            d = case.decision
            if (d is None or d.outcome is not DecisionOutcome.NEEDS_APPROVAL
                    or case.approval is None):
                continue
            key = (d.rule, case.action.type, _severity(incident))
            groups.setdefault(key, []).append((incident, case))
    out = []
    for (rule, action_type, severity), cases in sorted(groups.items()):
        verdicts = [c.approval.verdict for _, c in cases if c.approval is not None]
        approved = sum(1 for v in verdicts if v is Verdict.APPROVE)
        failed = sum(1 for i, c in cases if failed_verification(i, c))
        if approved != len(cases) or approved < limits.min_approvals or failed:
            continue
        edit, why = _relaxing_edit(rule, action_type, severity)
        out.append(Candidate(
            kind="relax", subject=f"{action_type} at {severity}", rule=rule,
            summary=f"{rule} held back {action_type} at {severity} {len(cases)} times; humans "
                    f"approved all {approved} unchanged and every fix passed verification",
            incidents=sorted({i.id for i, _ in cases}),
            counts={"held": len(cases), "approved": approved, "failed_verification": 0},
            edit=edit, why_no_edit=why))
    return out


def _relaxing_edit(rule: str, action_type: str, severity: Severity) -> tuple[Edit | None, str]:
    if rule == f"{_R}:actions.{action_type}.outcome.{severity}":
        return relax_action(action_type, severity), ""
    if rule == f"{_R}:severities.{severity}":
        return relax_ceiling(severity), ""
    return None, (f"{rule} is a bound or a limit, not an outcome: a person sizes a new value "
                  "from the evidence")


def failed_automatic(incidents: Iterable[Incident], policies: Policies,
                     limits: ReviewLimits) -> list[Candidate]:
    """Automatic actions that failed verification, by action type and severity."""
    groups: dict[tuple[str, Severity], list[tuple[Incident, ActionCase]]] = {}
    for incident in incidents:
        for case in incident.actions:
            d = case.decision
            if d is None or d.outcome is not DecisionOutcome.AUTO:
                continue
            if failed_verification(incident, case):
                groups.setdefault((case.action.type, _severity(incident)), []).append(
                    (incident, case))
    out = []
    for (action_type, severity), cases in sorted(groups.items()):
        if len(cases) < limits.min_failures:
            continue
        rules = sorted({c.decision.rule for _, c in cases if c.decision is not None})
        # Better but not healthy (rollback.yaml outcomes) still failed: counted, and said.
        partial = sum(1 for i, _ in cases if i.verification is not None
                      and i.verification.outcome is VerificationOutcome.PARTIAL)
        edit: Edit | None = tighten_action(action_type, severity)
        why = ""
        if action_type not in policies.remediation.actions:
            edit, why = None, (f"{action_type} has no entry in remediation.yaml (it falls to "
                               "default_outcome): add one")
        elif rules == ["rollback.yaml:kill_switch"]:
            edit, why = None, ("the kill switch acts without a human by design: review its "
                               "criteria in rollback.yaml instead")
        out.append(Candidate(
            kind="tighten", subject=f"{action_type} at {severity}", rule=", ".join(rules),
            summary=f"{', '.join(rules)} let {action_type} at {severity} run automatically "
                    f"{len(cases)} time(s) and it failed verification",
            incidents=sorted({i.id for i, _ in cases}),
            counts={"failed_verification": len(cases), "partial": partial},
            edit=edit, why_no_edit=why))
    return out


def alerts_without_action(incidents: Iterable[Incident], policies: Policies,
                          limits: ReviewLimits) -> list[Candidate]:
    """Alert rules whose incidents never led to an action that ran."""
    opened: dict[str, list[Incident]] = {}
    for incident in incidents:
        for name in {a.name for a in incident.anomalies if a.source != "detector"}:
            opened.setdefault(name, []).append(incident)
    out = []
    for rule in policies.alerts.rules:
        seen = opened.get(rule.name, [])
        acted = [i for i in seen if any(c.succeeded for c in i.actions)]
        if len(seen) < limits.min_alert_incidents or acted:
            continue
        minutes = max(rule.for_minutes * limits.for_factor, rule.for_minutes + 1)
        statuses: dict[str, int] = {}
        for i in seen:
            statuses[i.status.value] = statuses.get(i.status.value, 0) + 1
        out.append(Candidate(
            kind="alert", subject=rule.name, rule=f"alerts.yaml:rules.{rule.name}",
            summary=f"{rule.name} opened {len(seen)} incident(s) and none led to an action "
                    f"({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))}); "
                    f"proposed: `for` {rule.for_minutes}m -> {minutes}m (or review or "
                    "remove the rule)",
            incidents=sorted(i.id for i in seen), counts={"incidents": len(seen), "acted": 0},
            edit=lengthen_alert(rule.name, minutes)))
    return out


def merged(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates that propose the same edit (two action types held by one severity
    ceiling) become one proposal with their evidence together."""
    out: dict[tuple[str, str], Candidate] = {}
    for c in candidates:
        key = (c.kind, c.edit.describe if c.edit is not None else f"{c.subject} {c.rule}")
        prior = out.get(key)
        if prior is None:
            out[key] = c
            continue
        prior.subject += f", {c.subject}"
        prior.summary += f"; {c.summary}"
        prior.incidents = sorted({*prior.incidents, *c.incidents})
        prior.counts = {k: prior.counts.get(k, 0) + c.counts.get(k, 0)
                        for k in dict.fromkeys([*prior.counts, *c.counts])}
    return list(out.values())


def _problem_key(problem: PolicyProblem) -> tuple[str, str, str, str]:
    """A problem without its directory, so the copy's problems compare with the source's."""
    return Path(problem.file).name, problem.field, problem.message, problem.level.value


def _shown(problem: PolicyProblem) -> str:
    where = f"{Path(problem.file).name}" + (f":{problem.line}" if problem.line else "")
    return f"{where}: {str(problem).split(': ', 1)[1]}"


def check_and_replay(candidate: Candidate, policies: Policies,
                     incidents: list[Incident]) -> dict[str, Any]:
    """The diff, `check_policies` on a copy with it applied, and the replay of its effect."""
    if candidate.edit is None:
        return {}
    source = policies.source_dir
    try:
        original = (source / candidate.edit.file).read_text(encoding="utf-8")
        edited = candidate.edit.apply(original)
    except (OSError, EditError, ValueError) as exc:
        return {"status": "not_editable", "problems": [str(exc)], "diff": ""}
    baseline = {_problem_key(p) for p in check_policies(source)}
    with tempfile.TemporaryDirectory(prefix="policy-review-") as tmp:
        copy = Path(tmp) / "policies"
        shutil.copytree(source, copy)
        (copy / candidate.edit.file).write_text(edited, encoding="utf-8")
        found = check_policies(copy)
        new = [p for p in found if _problem_key(p) not in baseline]
        errors = [_shown(p) for p in new if p.level is ProblemLevel.ERROR]
        warnings = [_shown(p) for p in new if p.level is ProblemLevel.WARNING]
        effect: PolicyReplay | None = None
        try:  # an unsafe proposal still replays: its effect is part of why it is refused
            effect = replay(incidents, policies, load_policies(copy, allow_unsafe=True))
        except PolicyError:
            effect = None
    return {
        "status": "rejected" if errors else "proposed",
        "problems": errors,
        "warnings": warnings,
        "diff": unified_diff(candidate.edit.file, original, edited),
        "replay": None if effect is None else {
            "transitions": effect.transitions(),
            "drift": sum(1 for a in effect.actions if a.drift),
            "changed": [a.to_dict() for a in effect.changed],
        },
    }


def _slim(incident: Incident) -> dict[str, Any]:
    """What the review reads of an incident; diagnoses and most of the timeline stay out of
    the checkpoint."""
    kept = [e for e in incident.timeline if e.kind is EventKind.DECISION]
    return incident.model_copy(update={"diagnoses": [], "timeline": kept}).model_dump(
        mode="json")


class PolicyReview:
    """Proposed changes to policies/*.yaml with their evidence, checks and replay."""

    name = "policy-review"
    purpose = ("Policy evolution: proposed changes to policies/*.yaml from evidence (rules "
               "that held back fixes humans always approved, automatic actions that failed "
               "verification, alerts that never led to action), each a checked, replayed "
               "diff. Proposals only.")
    tools = ("incident_history", "policy_check", "policy_replay")

    def __init__(self, limits: ReviewLimits | None = None) -> None:
        self.limits = limits or ReviewLimits()

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        since = ctx.due_at - timedelta(days=self.limits.lookback_days)
        problems: list[str] = []
        incidents = ctx.store.incidents(problems, since=since)
        return {"since": since.isoformat(), "incidents": [_slim(i) for i in incidents],
                "unreadable": problems}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        incidents = [Incident.model_validate(i) for i in observed["incidents"]]
        candidates = [
            *approved_always(incidents, self.limits),
            *failed_automatic(incidents, ctx.policies, self.limits),
            *alerts_without_action(incidents, ctx.policies, self.limits),
        ]
        candidates = merged(candidates)
        for c in candidates:
            if c.edit is not None:
                c.result = check_and_replay(c, ctx.policies, incidents)
        return self._write(ctx, observed, incidents, candidates)

    def _write(self, ctx: AgentContext, observed: dict[str, Any], incidents: list[Incident],
               candidates: list[Candidate]) -> Analysis:
        stem = f"policy-{ctx.due_at.date().isoformat()}"
        directory = ctx.reports_dir / stem
        for old in directory.glob("*.diff"):  # a re-run for the same day replaces, never adds
            old.unlink()
        findings: list[Finding] = []
        rows: list[dict[str, Any]] = []
        reports: list[str] = []
        n = 0
        for c in candidates:
            diff_path = None
            if c.result.get("diff"):
                n += 1
                diff_path = directory / f"{n}-{c.edit.file if c.edit else 'none'}.diff"
                atomic_write(diff_path, c.result["diff"])
                reports.append(str(diff_path))
            status = c.result.get("status", "evidence_only")
            row = {"n": n if diff_path else None, "kind": c.kind, "subject": c.subject,
                   "rule": c.rule, "summary": c.summary, "incidents": c.incidents,
                   "counts": c.counts, "status": status,
                   "change": c.edit.describe if c.edit else None,
                   "why_no_edit": c.why_no_edit or None,
                   "diff_file": None if diff_path is None else str(diff_path),
                   **{k: v for k, v in c.result.items() if k not in ("status", "diff")}}
            rows.append(row)
            findings.append(Finding(
                kind=f"policy_{c.kind}", subject=c.subject,
                summary=f"{status}: {c.summary}" + (f" — {c.edit.describe}" if c.edit else ""),
                evidence=[*c.incidents, *c.result.get("problems", [])],
                level="warning" if status in ("rejected", "not_editable") else "info",
                data={k: v for k, v in row.items() if k != "summary"}))
        data = {"agent": self.name, "run_id": ctx.run_id, "due_at": ctx.due_at.isoformat(),
                "since": observed["since"], "policies": str(ctx.policies.source_dir),
                "incidents": len(incidents), "unreadable": observed.get("unreadable", []),
                "limits": self.limits.__dict__, "proposals": rows}
        md = ctx.reports_dir / f"{stem}.md"
        js = ctx.reports_dir / f"{stem}.json"
        atomic_write(js, json.dumps(data, indent=2, default=str) + "\n")
        atomic_write(md, render(data))
        proposed = sum(1 for r in rows if r["status"] == "proposed")
        return Analysis(
            summary=f"{proposed} policy change(s) proposed, "
                    f"{sum(1 for r in rows if r['status'] == 'rejected')} rejected by the "
                    f"policy check, {sum(1 for r in rows if r['status'] == 'evidence_only')} "
                    f"evidence without an edit; from {len(incidents)} incident(s)",
            findings=findings, reports=[str(md), str(js), *reports])


def render(data: dict[str, Any]) -> str:
    """The report a person reads before merging (or not) each diff."""
    lines = [f"# Policy review {data['due_at'][:10]}", "",
             f"From {data['incidents']} incident(s) opened since {data['since'][:10]}; "
             f"policies read from `{data['policies']}`. Proposals only: nothing under "
             "policies/ was changed. Each diff applies to today's file on its own; to see "
             "its effect again, apply it to a copy and run `opsloop eval replay --policies "
             "<copy>`.", ""]
    limits = data["limits"]
    lines += [f"Evidence needed: relax after {limits['min_approvals']} approvals of "
              f"{limits['min_approvals']}+ with none failing; tighten after "
              f"{limits['min_failures']} failed automatic action(s); review an alert after "
              f"{limits['min_alert_incidents']} incidents without action.", ""]
    for problem in data["unreadable"]:
        lines.append(f"- skipped (unreadable): {problem}")
    if not data["proposals"]:
        lines += ["No rule has enough evidence for a change.", ""]
    for row in data["proposals"]:
        head = f"## {row['n']}. " if row["n"] else "## "
        lines += [f"{head}{row['kind']}: {row['subject']} — {row['status']}", "",
                  row["summary"] + ".", "",
                  f"- rule: `{row['rule']}`",
                  f"- incidents: {', '.join(row['incidents'])}",
                  f"- counts: {', '.join(f'{k} {v}' for k, v in row['counts'].items())}"]
        if row["change"]:
            lines.append(f"- change: {row['change']}")
        if row["why_no_edit"]:
            lines.append(f"- no edit: {row['why_no_edit']}")
        for problem in row.get("problems", []):
            lines.append(f"- policy check: {problem}")
        for warning in row.get("warnings", []):
            lines.append(f"- new warning: {warning}")
        effect = row.get("replay")
        if effect is not None:
            moves = ", ".join(f"{k}: {v}" for k, v in sorted(effect["transitions"].items()))
            lines.append(f"- replayed: {moves or 'no outcome would change'}")
            for a in effect["changed"]:
                lines.append(f"  - {a['incident']} {a['action']}: {a['before']['outcome']} "
                             f"({a['before']['rule']}) -> {a['after']['outcome']} "
                             f"({a['after']['rule']})")
        if row["diff_file"]:
            diff = Path(row["diff_file"])
            lines += ["", f"`{diff.parent.name}/{diff.name}`:", "", "```diff",
                      diff.read_text(encoding="utf-8").rstrip(), "```"]
        lines.append("")
    return "\n".join(lines)
