"""The learn step: a postmortem draft in Google's template, from the incident record alone.

Everything here is deterministic and reads only the `Incident`: no model, no telemetry.
What the record does not say is written as "not known", never guessed.

Text in the draft has two shapes. Section bodies (`summary`, `impact`, ...) are markdown
built from escaped fragments; list items (action items, lessons, timeline messages) are
plain text that `render_postmortem` escapes. Either way, quoted outside text stays data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from opsloop.agents.markdown import (
    atomic_write,
    bullets,
    fmt_duration,
    fmt_percent,
    fmt_time,
    inline,
    one_line,
    render_postmortem,
)
from opsloop.agents.record import (
    ESCALATED_KINDS,
    escalated,
    event_times,
    verification_failed,
)
from opsloop.models import (
    ActionCase,
    ActionItem,
    ActionStatus,
    DecisionOutcome,
    Hypothesis,
    Incident,
    IncidentStatus,
    Postmortem,
    Verdict,
)

__all__ = [
    "draft_postmortem", "escalated", "needs_postmortem",
    "render_postmortem", "verification_failed", "write_postmortem",
]

# Words in a check's name or tool that say the evidence is about a change to production.
_CHANGE_WORDS = (("deploy", "deploy"), ("flag", "feature-flag change"),
                 ("experiment", "chaos experiment"), ("chaos", "chaos experiment"),
                 ("config", "config change"), ("migration", "migration"))

_OUTCOME = {
    IncidentStatus.OPEN: "The incident is still open.",
    IncidentStatus.AWAITING_APPROVAL: "The incident is waiting for a human to approve an action.",
    IncidentStatus.MITIGATED: "Mitigated: remediation ran and verification passed.",
    IncidentStatus.ESCALATED: "Escalated to a human: no automated fix was left to try.",
    IncidentStatus.REJECTED: "A human rejected every proposed action.",
    IncidentStatus.RESOLVED: "Closed with nothing to do.",
}

_VERDICT = {Verdict.APPROVE: "Approved", Verdict.MODIFY: "Modified", Verdict.REJECT: "Rejected"}

# A runbook's fact the diagnosis never found is left as a lone `?` in a hypothesis' text
# (opsloop.runbooks.checks.render_lenient); a question mark ending a word is prose.
_UNFILLED = re.compile(r"(?<![\w?])\?(?![\w])")


def needs_postmortem(incident: Incident, policy_severities: Collection[str]) -> bool:
    """SEV1-2 always; severities the policy lists; anything that escalated or failed to verify."""
    severity = incident.severity
    if severity is not None and (severity.rank <= 2 or severity.value in policy_severities):
        return True
    return escalated(incident) or verification_failed(incident)


def draft_postmortem(incident: Incident, *, slow_approval_minutes: float = 30) -> Postmortem:
    """A draft postmortem in Google's template; status stays "draft" until a human reviews it."""
    records = incident.actions
    onset, detected, mitigated = event_times(incident)
    lessons = _lessons(incident, records, onset, detected,
                       timedelta(minutes=slow_approval_minutes))
    return Postmortem(
        incident_id=incident.id,
        title=one_line(incident.title, 200),
        summary=_summary(incident, records),
        impact=_impact(incident, detected, mitigated),
        root_causes=_root_causes(incident),
        trigger=_trigger(incident, detected),
        resolution=_resolution(incident, records),
        detection=_detection(incident, onset, detected),
        action_items=lessons.items,
        went_well=lessons.well,
        went_wrong=lessons.wrong,
        lucky=lessons.lucky,
        timeline=sorted(incident.timeline, key=lambda e: e.at),  # stable: ties keep record order
    )


def _summary(incident: Incident, records: list[ActionCase]) -> str:
    severity = incident.severity.value if incident.severity else "unclassified"
    services = ", ".join(inline(s) for s in incident.services) or "no named service"
    lines = [
        f"{inline(incident.title)}: a {severity} incident in {inline(incident.environment)} "
        f"affecting {services}, opened {fmt_time(incident.opened_at)}."
    ]
    cause = incident.root_cause
    if cause is not None:
        lines.append(f"Root cause (draft): {inline(cause.cause)} — {inline(cause.category)}, "
                     f"confidence {cause.confidence:.2f}.")
    elif not incident.anomalies and incident.diagnoses:
        # A scheduled agent's change record: no alert, no failure to find a cause for; what
        # the agent saw is why the change was proposed.
        agent = incident.diagnoses[0]
        lines.append(f"Proposed by the {inline(agent.specialist)} agent, not raised by an "
                     f"alert: {inline(agent.summary)}.")
    else:
        lines.append("No root cause was established" +
                     (": no runbook covered this failure." if incident.novel else "."))
    ran = [inline(r.action.describe()) for r in records if r.result is not None]
    if ran:
        lines.append(f"Actions run: {', '.join(ran)}.")
    verification = incident.verification
    if (incident.status is IncidentStatus.ESCALATED and verification is not None
            and verification.mitigation_kept):
        lines.append("Partly recovered: the mitigation was kept and a human took over.")
    elif (incident.status is IncidentStatus.ESCALATED and verification is not None
            and not verification.passed):
        lines.append("Escalated to a human: the fix did not hold.")
    else:
        lines.append(_OUTCOME[incident.status])
    return " ".join(lines)


def _impact(incident: Incident, detected: datetime, mitigated: datetime | None) -> str:
    if mitigated is not None:
        duration = (f"{fmt_duration(mitigated - detected)} "
                    f"({fmt_time(detected)} → {fmt_time(mitigated)})")
    else:
        duration = f"not known: detected {fmt_time(detected)}, no mitigated or verified event"
    impact = incident.impact
    if impact is None:
        return bullets(["No impact was measured in the record.",
                        f"Duration, detected to mitigated: {duration}"])
    services = ", ".join(inline(s) for s in impact.services) or "none named"
    return bullets([
        f"Services: {services} (customer impact tier {impact.tier})",
        f"Error ratio: {fmt_percent(impact.error_ratio)}",
        f"Latency p99: {impact.latency_p99_ms:g} ms",
        f"Traffic: {impact.requests_per_second:g} req/s",
        f"Error-budget burn rate: {impact.burn_rate_1h:g}× over 1h, "
        f"{impact.burn_rate_5m:g}× over 5m",
        f"Error budget remaining: {fmt_percent(impact.error_budget_remaining)}",
        f"Saturation: {fmt_percent(impact.saturation)}",
        f"Blast radius: {impact.blast_radius} service(s), including callers",
        f"Duration, detected to mitigated: {duration}",
    ])


def _root_causes(incident: Incident) -> str:
    cause = incident.root_cause
    parts: list[str] = []
    if cause is None:
        parts.append("No hypothesis reached confidence; the root cause is not established."
                     + (" This was a novel failure." if incident.novel else ""))
    else:
        parts.append(bullets([
            f"Cause: {inline(cause.cause)}",
            f"Category: {inline(cause.category)}; service {inline(cause.service)}; "
            f"runbook {inline(cause.runbook) or 'none'}",
            f"Confidence: {cause.confidence:.2f}",
        ]))
        for title, holds in (("Evidence that held", True), ("Evidence that did not hold", False),
                             ("Checks that could not answer", None)):
            found = [
                f"{inline(e.check)} ({inline(e.tool)}, {e.status.value}): observed "
                f"“{inline(e.observed, 200)}”, expected {inline(e.expectation, 200)}"
                for e in cause.evidence if e.holds is holds
            ]
            if found:
                parts.append(f"{title}:\n\n{bullets(found)}")
    others, ruled_out = _considered(incident, cause.id if cause else None)
    if others:
        parts.append(f"Also considered:\n\n{bullets(others)}")
    if ruled_out:
        parts.append(f"Ruled out (no evidence for them):\n\n{bullets(ruled_out)}")
    return "\n\n".join(parts)


def _considered(incident: Incident, chosen: str | None) -> tuple[list[str], list[str]]:
    """The other hypotheses, in words: those with some support one by one, those with none
    grouped by cause and specialist (their texts name facts that were never found)."""
    others: list[str] = []
    ruled_out: dict[tuple[str, str], list[str]] = {}
    for d in incident.diagnoses:
        for h in d.hypotheses:
            if h.id == chosen:
                continue
            if h.confidence <= 0:
                services = ruled_out.setdefault((h.category, d.specialist), [])
                if h.service not in services:
                    services.append(h.service)
                continue
            what = (inline(h.cause) if not _UNFILLED.search(h.cause) else
                    f"{inline(h.category)} on {inline(h.service)} (some of the facts it names "
                    "were not found)")
            others.append(f"{what} ({inline(h.category)}, from {inline(d.specialist)}) "
                          f"confidence {h.confidence:.2f}")
    grouped = [f"{inline(category)} on {', '.join(inline(s) for s in services)} "
               f"(from {inline(specialist)})"
               for (category, specialist), services in ruled_out.items()]
    return others, grouped


def _trigger(incident: Incident, detected: datetime) -> str:
    named = []
    if incident.root_cause is not None:
        for e in incident.root_cause.evidence:
            words = f"{e.check} {e.tool}".lower()
            label = next((lbl for word, lbl in _CHANGE_WORDS if word in words), None)
            if e.holds and label:
                named.append(f"A {label}, named by the evidence: {inline(e.check)} observed "
                             f"“{inline(e.observed, 200)}”")
    text = (bullets(named) if named else
            "Unknown: the evidence names no deploy, flag change, experiment or other change.")
    changes = [
        f"{fmt_time(e.at)} {inline(e.kind)}: {inline(e.message, 200)}"
        for e in incident.timeline
        if e.at <= detected and any(word in e.kind for word, _ in _CHANGE_WORDS)
    ]
    if changes:
        text += ("\n\nChanges recorded before detection (not confirmed by the evidence):\n\n"
                 + bullets(changes))
    return text


def _resolution(incident: Incident, records: list[ActionCase]) -> str:
    lines = []
    for r in records:
        proposed = r.proposed or r.action  # the agent's words, never a person's change
        text = (f"{inline(proposed.describe())}, proposed by {inline(r.specialist)}"
                + (f" because {inline(proposed.reason, 200)}" if proposed.reason else "") + ".")
        if r.decision is not None:
            reasons = "; ".join(inline(x, 200) for x in r.decision.reasons)
            text += (f" Policy: {r.decision.outcome.value} by rule {inline(r.decision.rule)}"
                     + (f" ({reasons})" if reasons else "")
                     + (", with a notification" if r.decision.notify else "") + ".")
        if r.approval is not None:
            a = r.approval
            waited = (f" after {_wait_words(r.human_wait)}" if r.human_wait is not None
                      else "")
            text += f" {_VERDICT[a.verdict]} by {inline(a.by)} at {fmt_time(a.at)}{waited}"
            text += f": “{inline(a.reason, 200)}”." if a.reason else "."
            if a.changes:
                text += " Changed: " + ", ".join(f"{inline(k)}={inline(v)}"
                                                 for k, v in sorted(a.changes.items()))
                text += (f", so what ran was {inline(r.action.describe())}."
                         if r.proposed is not None else ".")
        if r.result is not None:
            text += (f" Result: {r.result.status.value}"
                     + (" (replayed from an earlier run)" if r.result.replayed else "")
                     + (f": {inline(r.result.detail, 200)}" if r.result.detail else "") + ".")
        elif r.decision is not None and r.decision.outcome is DecisionOutcome.DENY:
            text += " Not run: policy denied it."
        else:
            text += " Not run."
        lines.append(text)
    parts = [bullets(lines) if lines else "No remediation was proposed."]
    if (v := incident.verification) is not None:
        checks = "; ".join(
            f"{inline(c.name)} on {inline(c.service)} observed {c.observed:g} against "
            f"{c.threshold:g}: {'ok' if c.ok else 'failed'}" for c in incident.verification_checks
        )
        parts.append(f"Verification {'passed' if v.passed else 'failed'} at {fmt_time(v.at)} "
                     f"after a {v.window_minutes}-minute window"
                     + (f": {checks}." if checks else "."))
        if v.rolled_back:
            undone = ", ".join(f"{inline(r.action)} {r.status.value}" for r in incident.reverts)
            parts.append(f"Rolled back{': ' + undone if undone else ''}.")
    parts += [f"Escalated at {fmt_time(e.at)}: {inline(e.message, 200)}."
              for e in incident.timeline if e.kind in ESCALATED_KINDS]
    if incident.notifications:
        counts: dict[str, int] = {}
        for note in incident.notifications:
            counts[note] = counts.get(note, 0) + 1
        parts.append("Notified: " + "; ".join(
            inline(n, 200) + (f" ({k} messages)" if k > 1 else "") for n, k in counts.items())
            + ".")
    return "\n\n".join(parts)


def _detection(incident: Incident, onset: datetime | None, detected: datetime) -> str:
    fired = []
    for anomaly in incident.anomalies:
        summary = anomaly.annotations.get("summary") or anomaly.annotations.get("description")
        fired.append(f"{inline(anomaly.name)} ({inline(anomaly.source)}) on "
                     f"{inline(anomaly.service or 'no service label')}, firing since "
                     f"{fmt_time(anomaly.starts_at)}"
                     + (f": “{inline(summary)}”" if summary else ""))
    text = bullets(fired) if fired else "The record lists no alert or SLO burn."
    if incident.severity is not None:
        text += (f"\n\nSeverity {incident.severity.value} by rule "
                 f"{inline(incident.severity_rule) or 'not recorded'}.")
    if incident.anomalies and (lag := incident.opened_at - min(
            a.starts_at for a in incident.anomalies)) > timedelta(0):
        text += f"\n\nThe first alert fired {fmt_duration(lag)} before the incident opened."
    if onset is not None:
        text += (f"\n\nTime to detect: {fmt_duration(detected - onset)} "
                 f"(onset {fmt_time(onset)}, detected {fmt_time(detected)}).")
    else:
        text += ("\n\nTime to detect: not known; the record has no onset event "
                 f"(detected {fmt_time(detected)}).")
    return text


@dataclass
class _Lessons:
    items: list[ActionItem] = field(default_factory=list)
    well: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    lucky: list[str] = field(default_factory=list)


def _lessons(incident: Incident, records: list[ActionCase], onset: datetime | None,
             detected: datetime, slow: timedelta) -> _Lessons:
    """Action items and lessons, each from one fact in the record; one rule may yield both."""
    out = _Lessons()
    cause, v = incident.root_cause, incident.verification
    held = v is not None and v.passed
    if onset is not None:
        out.well.append(f"Detected {fmt_duration(detected - onset)} after onset.")
    if cause is not None and not incident.novel:
        out.wrong.append(_what_failed(incident, cause))
    if incident.novel or cause is None:
        out.wrong.append("No runbook covered this failure; no hypothesis reached confidence.")
        out.items.append(ActionItem(kind="process", description=(
            f"Write a runbook for {one_line(incident.title, 120)} on "
            f"{', '.join(incident.services) or 'the affected service'}: "
            "no runbook hypothesis reached confidence.")))
    if cause is not None and not incident.novel:
        supporting = sum(1 for e in cause.evidence if e.holds)
        out.well.append(f"Runbook {cause.runbook} matched with confidence "
                        f"{cause.confidence:.2f} on {supporting} supporting check(s).")
    if held and (cause is None or cause.confidence < 0.7):
        confidence = f"only {cause.confidence:.2f}" if cause else "not established"
        out.lucky.append(f"The fix held although confidence in the root cause was {confidence}.")
    if cause is not None and "leak" in cause.category.lower():
        out.items.append(ActionItem(kind="prevent", description=(
            f"Fix the {cause.category.replace('_', ' ')} in {cause.service}'s code; "
            "restarts only buy time.")))
    blind = [e for e in cause.evidence if e.holds is None] if cause else []
    if blind:
        out.wrong.append(f"Checks could not answer: {', '.join(e.check for e in blind)}.")
        if held:
            out.lucky.append(f"The fix held although {len(blind)} check(s) could not answer.")
        out.items += [ActionItem(kind="detect", description=(
            f"Make check {one_line(e.check, 80)} answer: {e.tool} returned {e.status.value} "
            "during the incident.")) for e in blind]
    for r in records:
        ok = r.result is not None and r.result.status is ActionStatus.SUCCEEDED
        auto = r.decision is not None and r.decision.outcome is DecisionOutcome.AUTO
        # A fix that did not hold earns no credit.
        if ok and auto and not verification_failed(incident):
            out.well.append(f"Auto-remediated within policy: {r.action.describe()} "
                            f"(rule {r.decision.rule if r.decision else ''}).")
        if r.result is not None and r.result.status is ActionStatus.FAILED:
            out.wrong.append(f"{r.action.describe()} failed: {one_line(r.result.detail, 200)}.")
        if ok and r.action.type == "rollback_deploy":
            out.items.append(ActionItem(kind="detect", description=(
                f"Add canary checks to {r.action.service}'s deploys so a bad version stops "
                "before it reaches all traffic.")))
        if r.approval is not None and r.approval.verdict is Verdict.REJECT:
            reason = one_line(r.approval.reason, 200) or "no reason given"
            out.wrong.append(f"{r.approval.by} rejected {r.action.describe()}: {reason}.")
            out.items.append(ActionItem(kind="process", owner=r.approval.by, description=(
                f"Review the proposal policy ({r.decision.rule if r.decision else 'unrecorded'}) "
                f"for {r.action.type}: {r.approval.by} rejected it: {reason}.")))
        elif r.human_wait is not None and r.human_wait > slow:
            wait = _wait_words(r.human_wait)
            out.wrong.append(f"Waited {wait} for approval of {r.action.describe()}.")
            out.items.append(ActionItem(kind="process", description=(
                f"Review the approval path for {r.action.type}: the answer took {wait}.")))
        elif r.human_wait is not None and r.approval is not None:
            out.well.append(f"{r.approval.by} answered the approval request in "
                            f"{_wait_words(r.human_wait)}.")
    if v is not None and v.passed:
        out.well.append(f"Verification passed after a {v.window_minutes}-minute window.")
    elif v is not None:
        failed = ", ".join(f"{c.name} on {c.service}" for c in incident.verification_checks
                           if not c.ok)
        if v.mitigation_kept:
            out.wrong.append("Only a partial recovery" + (f" ({failed} still off)" if failed
                                                           else "")
                             + ": the mitigation was kept and a human took over.")
        else:
            out.wrong.append("Verification failed" + (f" ({failed})" if failed else "")
                             + (" and the action was reverted." if v.rolled_back else "."))
        out.items.insert(0, ActionItem(kind="mitigate", description=(
            "Investigate why " + (", ".join(r.action.describe() for r in records if r.result)
                                  or "the remediation")
            + " did not restore health; fix the remediation or its runbook.")))
        if v.rolled_back and all(r.status is ActionStatus.SUCCEEDED for r in incident.reverts):
            out.well.append("The failed action was reverted automatically.")
    if incident.status is IncidentStatus.ESCALATED:
        out.wrong.append("Automation ran out of options and a human had to take over.")
    return out


def _what_failed(incident: Incident, cause: Hypothesis) -> str:
    """The diagnosis in one lesson: what broke, and how much customers saw of it."""
    text = (f"{one_line(cause.cause, 200)} ({cause.category.replace('_', ' ')} on "
            f"{cause.service}, confidence {cause.confidence:.2f}).")
    impact = incident.impact
    if impact is not None:
        text += (f" Errors reached {fmt_percent(impact.error_ratio)} with p99 "
                 f"{impact.latency_p99_ms:g} ms across {impact.blast_radius} service(s).")
    return text


def _wait_words(wait: timedelta) -> str:
    """A person's response time on the wall clock, in words."""
    return "under a second" if wait < timedelta(seconds=1) else fmt_duration(wait)


def write_postmortem(incident: Incident, directory: Path, *,
                     generated_at: datetime | None = None,
                     narrator: Callable[[Postmortem, Incident], Postmortem] | None = None
                     ) -> Path:
    """Write `<directory>/<incident.id>.md` atomically; running it again replaces the draft.

    `narrator` (opsloop.agents.narrative) may rewrite the summary and lessons with a model.
    """
    name = Path(incident.id).name
    if name != incident.id or name in {"", ".", ".."}:
        raise ValueError(f"incident id {incident.id!r} cannot be a file name; "
                         "ids must not contain path separators")
    draft = draft_postmortem(incident)
    if narrator is not None:
        draft = narrator(draft, incident)
    text = render_postmortem(draft, severity=incident.severity,
                             services=incident.services, generated_at=generated_at)
    return atomic_write(directory / f"{name}.md", text)
