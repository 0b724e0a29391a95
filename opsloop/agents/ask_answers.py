"""Offline answers: each kind of question answered from the records, citing each one used."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from opsloop.agents.ask_digest import lessons, summary, why_action
from opsloop.agents.ask_records import Citation, Found, Query, Records, cite_incident, head
from opsloop.agents.markdown import fmt_duration
from opsloop.agents.record import event_times
from opsloop.models import DecisionOutcome, Incident, IncidentStatus, Verdict
from opsloop.runbooks.markdown import split_front_matter, split_sections

Answerer = Callable[[Query, list[Incident], Records], Found]

# First match wins: the more specific phrasings come before the general ones.
KINDS: list[tuple[str, str]] = [
    ("count", r"\bhow many\b"),
    ("usage", r"\btokens?\b|\bmodel calls?\b|\bllm\b"),
    # "why was X auto-remediated / approved / escalated?": the cause and the rule that decided.
    ("why_action", r"\bwhy\b.*\b(auto[- ]?remediat\w*|remediat\w*|automatic\w*|approv\w*|"
                   r"escalat\w*|denied|rolled back|reverted)"),
    ("approvers", r"\bwho approved\b|\bapproved by\b|\bsigned off\b|\bwho said yes\b"),
    ("rejections", r"\breject"),
    ("pending", r"\bwait|\bpending\b|\bawaiting\b|\bneeds? (a )?human\b|\bneeds? approval\b"),
    ("denied", r"\bdenied\b|\bdeny\b|\bforbidden\b|\bblocked\b"),
    ("decisions", r"\bpolic(y|ies)\b|\bguardrails?\b|\bdecisions?\b"),
    ("lessons", r"\blessons?\b|\bwent (well|wrong)\b|\blucky\b|\blearn(ed|t)?\b"),
    ("postmortem", r"\bpostmortems?\b|\baction items?\b"),
    ("signals", r"\bsignals?\b|\bimprovements?\b"),
    ("runbook", r"\brunbooks?\b|\bhow (do|should) (i|we)\b|\bplaybook\b"),
    ("verification", r"\bverif|\bhold\b|\bheld\b|\bdid the fix work\b"),
    ("rollback", r"\brolled back\b|\brollbacks?\b|\breverted\b"),
    ("notifications", r"\bpaged?\b|\bnotif|\bwho was told\b|\bwar.?room\b"),
    ("specialist", r"\bspecialists?\b|\bwho diagnosed\b"),
    ("evidence", r"\bevidence\b|\bhow do (we|you) know\b|\bchecks?\b"),
    ("timeline", r"\btimeline\b|\bsequence\b|\bstep by step\b"),
    ("summary", r"\bwhat happened\b|\bsummar|\btell me about\b|\bwhat went on\b"),
    ("duration", r"\bhow long\b|\bduration\b|\btime to (mitigate|resolve|detect)\b|\bmttr\b"),
    ("when", r"\bwhen\b|\bwhat time\b"),
    ("severity", r"\bseverity\b|\bhow (bad|severe)\b|\bsev\b"),
    ("top_services", r"\bmost incidents\b|\bwhich services?\b.*\bmost\b|\bworst service\b"),
    ("root_cause", r"\bwhy\b|\broot cause\b|\bcaused?\b|\bwhat went wrong\b"),
    ("impact", r"\bimpact\b|\bcustomers?\b|\berror ratio\b|\bblast radius\b|\baffected\b"),
    ("actions", r"\bwhat (was|were|did) .*\b(done|do|taken)\b|\bactions?\b|\bremediat|\bfix"),
    ("status", r"\bstatus\b|\bresolved\b|\bmitigated\b|\bescalated\b|\bstill open\b|\bopen\b"),
    ("list", r""),
]


def kind_of(question: str) -> str:
    text = question.lower()
    return next(kind for kind, pattern in KINDS if re.search(pattern, text))


def _list(q: Query, found: list[Incident], r: Records) -> Found:
    lines = [f"{head(i)}: {i.title}" for i in found]
    return lines, [cite_incident(i) for i in found]


def _count(q: Query, found: list[Incident], r: Records) -> Found:
    by = Counter(i.status.value for i in found)
    detail = ", ".join(f"{n} {s}" for s, n in sorted(by.items()))
    return [f"{len(found)} incident(s)" + (f": {detail}" if detail else "") + "."], [
        cite_incident(i) for i in found]


def _severity(q: Query, found: list[Incident], r: Records) -> Found:
    return [f"{i.id}: {i.severity.value if i.severity else 'not triaged'} by rule "
            f"{i.severity_rule or 'not recorded'}" for i in found], [
        cite_incident(i, f"severity {i.severity.value if i.severity else '-'}") for i in found]


def _root_cause(q: Query, found: list[Incident], r: Records) -> Found:
    lines, cites = [], []
    for i in found:
        rc = i.root_cause
        if rc is None or i.novel:
            lines.append(f"{i.id}: no root cause established (novel failure; escalated).")
        else:
            held = "; ".join(e.observed for e in rc.evidence if e.holds)[:400]
            lines.append(f"{i.id}: {rc.cause} — {rc.category} on {rc.service}, confidence "
                         f"{rc.confidence:.0%} (runbook {rc.runbook or 'none'}). Evidence: {held}")
        cites.append(cite_incident(i, f"root cause {rc.category if rc else 'unknown'}"))
    return lines, cites


def _evidence(q: Query, found: list[Incident], r: Records) -> Found:
    lines, cites = [], []
    for i in found:
        rc = i.root_cause
        for e in rc.evidence if rc else []:
            verdict = {True: "holds", False: "does not hold", None: "no answer"}[e.holds]
            lines.append(f"{i.id} {e.check}: {e.observed} (expected {e.expectation}; {verdict})")
        cites.append(cite_incident(i, "root-cause evidence"))
    return lines, cites


def _actions(q: Query, found: list[Incident], r: Records, only: Callable[..., bool] | None = None
             ) -> Found:
    lines, cites = [], []
    for i in found:
        for n, rec in enumerate(i.actions):
            if q.actions and rec.action.type not in q.actions:
                continue
            if only is not None and not only(rec):
                continue
            decision = rec.decision.outcome.value if rec.decision else "undecided"
            result = rec.result.status.value if rec.result else "not run"
            who = f", {rec.approval.verdict.past} by {rec.approval.by}" if rec.approval else ""
            lines.append(f"{i.id}: {rec.action.describe()} — policy {decision}"
                         f"{' (' + rec.decision.rule + ')' if rec.decision else ''}{who}; "
                         f"{result}")
            cites.append(Citation(ref=f"{i.id}#action/{n}", kind="decision",
                                  excerpt=f"{rec.action.describe()}: {decision}"))
    return lines, cites


def _approvers(q: Query, found: list[Incident], r: Records, verdict: Verdict | None = None
               ) -> Found:
    lines, cites = [], []
    for i in found:
        for n, a in enumerate(c.approval for c in i.actions if c.approval is not None):
            if verdict is None and a.verdict is Verdict.REJECT:
                continue
            if verdict is not None and a.verdict is not verdict:
                continue
            lines.append(f"{i.id}: {a.request_id} {a.verdict.past} by {a.by} at "
                         f"{a.at:%Y-%m-%d %H:%M}" + (f" — “{a.reason}”" if a.reason else ""))
            cites.append(Citation(ref=f"{i.id}#approval/{n}", kind="approval",
                                  excerpt=f"{a.verdict.past} by {a.by}"))
    return lines, cites


def _pending(q: Query, found: list[Incident], r: Records) -> Found:
    waiting = [i for i in found if i.status is IncidentStatus.AWAITING_APPROVAL]
    lines, cites = _actions(q, waiting, r, only=lambda rec: rec.awaits_human)
    if not lines:  # a question about the queue has an answer when the queue is empty
        among = f" among the {len(found)} matching incident(s)" if q.filtered else ""
        lines = [f"None: no incident is waiting for a human decision{among}."]
    return lines, cites


def _status(q: Query, found: list[Incident], r: Records) -> Found:
    return [f"{head(i)}: {i.title}" for i in found], [cite_incident(i) for i in found]


def _timeline(q: Query, found: list[Incident], r: Records) -> Found:
    lines, cites = [], []
    for i in found[:3]:
        for n, e in enumerate(i.timeline):
            lines.append(f"{i.id} {e.at:%H:%M} {e.kind}: {e.message}")
            cites.append(Citation(ref=f"{i.id}#timeline/{n}", kind="timeline", excerpt=e.kind))
    return lines, cites


def _when(q: Query, found: list[Incident], r: Records) -> Found:
    lines = []
    for i in found:
        onset, _, mitigated = event_times(i)
        lines.append(f"{i.id}: opened {i.opened_at:%Y-%m-%d %H:%M}"
                     + (f", onset {onset:%H:%M}" if onset else "")
                     + (f", mitigated {mitigated:%H:%M}" if mitigated else ", not mitigated"))
    return lines, [cite_incident(i, "timeline times") for i in found]


def _duration(q: Query, found: list[Incident], r: Records) -> Found:
    lines = []
    for i in found:
        onset, detected, mitigated = event_times(i)
        ttd = f"time to detect {fmt_duration(detected - onset)}" if onset else "onset unknown"
        ttm = (f"detected to mitigated {fmt_duration(mitigated - detected)}" if mitigated
               else "not mitigated")
        lines.append(f"{i.id}: {ttd}; {ttm}.")
    return lines, [cite_incident(i, "timeline times") for i in found]


def _impact(q: Query, found: list[Incident], r: Records) -> Found:
    lines = []
    for i in found:
        m = i.impact
        lines.append(f"{i.id}: no impact measured." if m is None else
                     f"{i.id}: {', '.join(m.services)} (tier {m.tier}), error ratio "
                     f"{m.error_ratio:.1%}, p99 {m.latency_p99_ms:g} ms, "
                     f"{m.requests_per_second:g} req/s, blast radius {m.blast_radius}")
    return lines, [cite_incident(i, "impact") for i in found]


def _verification(q: Query, found: list[Incident], r: Records) -> Found:
    lines = []
    for i in found:
        v = i.verification
        lines.append(f"{i.id}: not verified (no action ran)." if v is None else
                     f"{i.id}: verification {'passed' if v.passed else 'failed'} after "
                     f"{v.window_minutes} min" + (", rolled back" if v.rolled_back else ""))
    return lines, [cite_incident(i, "verification") for i in found]


def _rollback(q: Query, found: list[Incident], r: Records) -> Found:
    lines, cites = [], []
    for i in found:
        if i.verification and i.verification.rolled_back:
            lines.append(f"{i.id}: the remediation was reverted after verification failed.")
            cites.append(cite_incident(i, "rolled back"))
    q.actions = ["rollback_deploy"]
    more, more_cites = _actions(q, found, r)
    return lines + more, cites + more_cites


def _postmortem(q: Query, found: list[Incident], r: Records, section: str = "Action Items"
                ) -> Found:
    lines, cites = [], []
    for i in found:
        text = r.postmortems.get(i.id)
        if text is None:
            continue
        try:
            _, document = split_front_matter(text)
        except ValueError:  # hand-edited front matter: the sections are still readable
            document = text
        body = dict(split_sections(document).sections).get(section, "")
        lines.append(f"{i.id} ({i.postmortem_path}):\n{body}")
        cites.append(Citation(ref=f"postmortem:{i.id}", kind="postmortem", excerpt=section))
    return lines, cites


def _signals(q: Query, found: list[Incident], r: Records) -> Found:
    ids = {i.id for i in found}
    chosen = [s for s in r.signals if not ids or ids & set(s.get("incidents") or [])]
    return [f"{s.get('kind')}: {s.get('title')} ({', '.join(s.get('incidents') or [])})"
            for s in chosen], [Citation(ref=f"signal:{s.get('id')}", kind="signal",
                                        excerpt=str(s.get("title"))) for s in chosen]


def _runbook(q: Query, found: list[Incident], r: Records) -> Found:
    if r.runbooks is None:
        return [], []
    hits = r.runbooks.search(q.text, k=3)
    return [f"{h.runbook_id}: {h.title} (specialist {h.specialist}, {h.file})" for h in hits], [
        Citation(ref=f"runbook:{h.runbook_id}", kind="runbook", excerpt=h.section) for h in hits]


def _specialist(q: Query, found: list[Incident], r: Records) -> Found:
    lines = []
    for i in found:
        chosen = next((d for d in i.diagnoses if d.top and i.root_cause
                       and d.top.id == i.root_cause.id), None)
        won = (f"diagnosed by {chosen.specialist} ({chosen.reasoner} reasoner)" if chosen
               else "no diagnosis won")
        lines.append(f"{i.id}: routed to {', '.join(i.specialists) or 'none'}; {won}")
    return lines, [cite_incident(i, "diagnoses") for i in found]


def _notifications(q: Query, found: list[Incident], r: Records) -> Found:
    lines = [f"{i.id}: {n}" for i in found for n in i.notifications]
    return lines, [cite_incident(i, "notifications") for i in found if i.notifications]


def _usage(q: Query, found: list[Incident], r: Records) -> Found:
    lines = [f"{i.id}: {t.calls} model call(s), {t.total_tokens} tokens, {t.latency_ms / 1000:.1f}s"
             for i in found for t in [i.usage.total]]
    return lines, [cite_incident(i, "model usage") for i in found]


def _top_services(q: Query, found: list[Incident], r: Records) -> Found:
    counts = Counter(s for i in found for s in i.services)
    return [f"{s}: {n} incident(s)" for s, n in counts.most_common(5)], [
        cite_incident(i) for i in found]


ANSWERERS: dict[str, Answerer] = {
    "list": _list, "count": _count, "severity": _severity, "root_cause": _root_cause,
    "evidence": _evidence, "actions": _actions, "approvers": _approvers,
    "rejections": lambda q, f, r: _approvers(q, f, r, Verdict.REJECT), "pending": _pending,
    "denied": lambda q, f, r: _actions(q, f, r, only=lambda rec: rec.decision is not None
                                       and rec.decision.outcome is DecisionOutcome.DENY),
    "decisions": _actions, "status": _status, "timeline": _timeline, "when": _when,
    "duration": _duration, "impact": _impact, "verification": _verification,
    "rollback": _rollback, "postmortem": _postmortem,
    "lessons": lessons, "signals": _signals, "why_action": why_action, "summary": summary,
    "runbook": _runbook, "specialist": _specialist, "notifications": _notifications,
    "usage": _usage, "top_services": _top_services,
}
