"""Answers that tell a story from the records, not a dump of them: why an action was taken
(the cause and the rule), what happened (a line per incident), what we learned (the lessons
the postmortems record)."""

from __future__ import annotations

import re

from opsloop.agents.ask_records import Citation, Found, Query, Records, cite_incident, head
from opsloop.agents.markdown import fmt_duration
from opsloop.agents.record import event_times
from opsloop.models import Incident
from opsloop.runbooks.markdown import split_front_matter, split_sections


def why_action(q: Query, found: list[Incident], r: Records) -> Found:
    """Why an action was taken the way it was: the diagnosis it rests on, then each action
    with the policy decision, the rule that decided, and what people and production said."""
    lines, cites = [], []
    for i in found:
        rc = i.root_cause
        lines.append(f"{i.id}: root cause {rc.cause} ({rc.category} on {rc.service}, "
                     f"confidence {rc.confidence:.0%})." if rc is not None and not i.novel
                     else f"{i.id}: no root cause was established.")
        cites.append(cite_incident(i, f"root cause {rc.category if rc else 'unknown'}"))
        for n, rec in enumerate(i.actions):
            if rec.decision is None:
                lines.append(f"  {rec.action.describe()}: no policy decision recorded.")
                continue
            d = rec.decision
            why = f" ({'; '.join(d.reasons)})" if d.reasons else ""
            who = (f"; {rec.approval.verdict.past} by {rec.approval.by}" if rec.approval
                   else "")
            ran = f"; {rec.result.status.value}" if rec.result else "; not run"
            lines.append(f"  {rec.action.describe()}: policy said {d.outcome.value} by rule "
                         f"{d.rule}{why}{who}{ran}.")
            cites.append(Citation(ref=f"{i.id}#action/{n}", kind="decision",
                                  excerpt=f"{d.outcome.value} by {d.rule}"))
    return lines, cites


_SUMMARY_LIMIT = 5


def summary(q: Query, found: list[Incident], r: Records) -> Found:
    """A few lines per incident, most recent first: what, why, what was done, how it ended."""
    lines, cites = [], []
    for i in found[:_SUMMARY_LIMIT]:
        rc = i.root_cause
        cause = (f"root cause {rc.category} on {rc.service}" if rc is not None and not i.novel
                 else "no root cause established")
        done = "; ".join(
            f"{c.action.describe()} {c.decision.outcome.value if c.decision else 'undecided'}"
            + (f", {c.approval.verdict.past} by {c.approval.by}" if c.approval else "")
            + f", {c.result.status.value if c.result else 'not run'}" for c in i.actions)
        _, detected, mitigated = event_times(i)
        ended = (f"mitigated after {fmt_duration(mitigated - detected)}" if mitigated
                 else i.status.value.replace("_", " "))
        lines.append(f"{head(i)}: {i.title}. {cause.capitalize()}. "
                     + (f"Actions: {done}. " if done else "No action was taken. ")
                     + f"Outcome: {ended}.")
        cites.append(cite_incident(i, "summary"))
    if len(found) > _SUMMARY_LIMIT:
        lines.append(f"… and {len(found) - _SUMMARY_LIMIT} earlier incident(s); ask about one "
                     "by id for its timeline.")
    return lines, cites


_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>])")


def lessons(q: Query, found: list[Incident], r: Records) -> Found:
    """The lessons the postmortems record, one per line, under their heading."""
    lines, cites = [], []
    for i in found:
        text = r.postmortems.get(i.id)
        if text is None:
            continue
        try:
            _, document = split_front_matter(text)
        except ValueError:
            document = text
        body = dict(split_sections(document).sections).get("Lessons Learned", "")
        heading, items = "", []
        for line in body.splitlines():
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            elif line.startswith("- ") and heading:
                items.append(f"{i.id} — {heading}: "
                             + _ESCAPED.sub(r"\1", line[2:].strip()).replace("&lt;", "<"))
        if items:
            lines += items
            cites.append(Citation(ref=f"postmortem:{i.id}", kind="postmortem",
                                  excerpt="Lessons Learned"))
    if not lines and found:
        lines = [f"No lessons recorded: none of the {len(found)} matching incident(s) has a "
                 "postmortem with lessons yet (postmortems are drafted for SEV1-2, escalations "
                 "and failed fixes)."]
    return lines, cites
