"""Triage of improvement signals: who decided what about each one, and which matter most.

Status workflow (kept in the signal's own file, `SignalRecord.history`):

    new ──accept──► accepted   (a mission brief is written to work/missions/<id>.md)
     │ ──decline──► declined ──reopen──► new
     └ ──merge────► merged     ──reopen──► new   (its evidence counts towards the other signal)

Accepted is final here: the brief has been handed to product discovery, which owns it from
then on. Every decision names who, when and why, and is made under the signals folder's
lock after comparing the status the decider saw (`expect`) with the one on disk, so of two
people deciding at once the second is told what the first did instead of overwriting it.

Ranking score (higher first), summed over the signal's incidents and those of any signal
merged into it, each incident counted once:

    score = 1 x incidents
          + customer impact: severity points (SEV1 8, SEV2 4, SEV3 2, SEV4 or unclassified 1)
            x tier factor (tier 1 x2, tier 2 x1.5, otherwise x1)
          + 20 x error budget burned (fraction of a 30-day budget)      [estimated]
          + 2 x toil hours

Error budget burned per incident is estimated as the 1-hour burn rate triage measured at
opening, held for the incident's duration (opening to its last recorded step), over the SLO
period; it is unknown when the incident has no measured impact. Toil hours are the measured
approval waits (request to answer, on people's wall clock, not the environment's) plus an
estimated 15 minutes of a person's time per manual step (each human answer, each proposal
still waiting) and 1 hour per incident handed to a human (escalated). An incident the store
no longer has counts as one incident, with the severity its evidence line names.
`Score.estimated` says which parts were estimated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from opsloop.agents.markdown import atomic_write, bullets, fmt_time, front_matter, inline, iso
from opsloop.agents.signals import (
    LOCK_TIMEOUT_SECONDS,
    SignalRecord,
    SignalStatus,
    StatusChange,
    read_record,
    render_record,
    signal_id,
    signals_lock,
)
from opsloop.files import documents
from opsloop.models import Incident, IncidentStatus, Severity, Verdict

NEW, ACCEPTED, DECLINED, MERGED = (SignalStatus.NEW, SignalStatus.ACCEPTED,
                                   SignalStatus.DECLINED, SignalStatus.MERGED)
# Which status a signal may move to from each status; anything else is an InvalidTransition.
TRANSITIONS: dict[SignalStatus, frozenset[SignalStatus]] = {
    NEW: frozenset({ACCEPTED, DECLINED, MERGED}),
    DECLINED: frozenset({NEW}),
    MERGED: frozenset({NEW}),
    ACCEPTED: frozenset(),
}
VERBS = {ACCEPTED: "accept", DECLINED: "decline", MERGED: "merge", NEW: "reopen"}

INCIDENT_POINTS = 1.0
SEVERITY_POINTS = {Severity.SEV1: 8.0, Severity.SEV2: 4.0, Severity.SEV3: 2.0, Severity.SEV4: 1.0}
UNCLASSIFIED_POINTS = 1.0
TIER_FACTOR = {1: 2.0, 2: 1.5}
BUDGET_POINTS = 20.0  # per whole error budget burned
TOIL_POINTS = 2.0  # per hour of people's time
SLO_PERIOD = timedelta(days=30)
MANUAL_STEP = timedelta(minutes=15)
ESCALATION = timedelta(hours=1)
_EVIDENCE_SEVERITY = re.compile(r"^(\S+) \([^,]*, (SEV[1-4])\b")


class SignalError(ValueError):
    """A triage request that cannot be done; the message names the signal and its status."""


class UnknownSignal(SignalError):
    pass


class InvalidTransition(SignalError):
    pass


class DecisionConflict(SignalError):
    """The signal's status changed between the decider reading it and deciding."""


@dataclass(frozen=True)
class FiledSignal:
    path: Path
    record: SignalRecord


def load_signals(directory: Path, problems: list[str] | None = None) -> list[FiledSignal]:
    """Every readable signal file, by name; an unreadable one is named in `problems`."""
    found = []
    for path in documents(directory):
        try:
            found.append(FiledSignal(path, read_record(path)))
        except ValueError as err:
            if problems is not None:
                problems.append(str(err))
    return found


def find_signal(filed: Iterable[FiledSignal], ref: str) -> FiledSignal:
    """The signal whose id is `ref`, or the only one it is a prefix of (with or without
    `sig-`, at least 4 characters)."""
    filed = list(filed)
    exact = [f for f in filed if f.record.id == ref]
    if exact:
        return exact[0]
    want = ref if ref.startswith("sig-") else f"sig-{ref}"
    hits = [f for f in filed if len(ref.removeprefix("sig-")) >= 4
            and f.record.id.startswith(want)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        ids = ", ".join(sorted(h.record.id for h in hits))
        raise UnknownSignal(f"{ref!r} matches {len(hits)} signals ({ids}); give more of the id")
    raise UnknownSignal(f"no signal {ref!r}; `opsloop signals list` shows them")


def _described(record: SignalRecord) -> str:
    """'sig-… is declined (by bob at …: reason)'."""
    last = record.history[-1] if record.history else None
    who = f" (by {last.by} at {fmt_time(last.at)}: {last.reason})" if last else ""
    into = f" into {record.merged_into}" if record.merged_into else ""
    return f"{record.id} is {record.status.value}{into}{who}"


def _refusal(record: SignalRecord, to: SignalStatus) -> str:
    verb = VERBS[to]
    if record.status is to:
        return f"cannot {verb} {record.id}: it is already {_described(record).split(' is ', 1)[1]}"
    if record.status is ACCEPTED:
        return (f"cannot {verb}: {_described(record)}; its mission brief "
                f"({record.mission or 'work/missions'}) belongs to product discovery now")
    if record.status is NEW:
        return f"cannot {verb} {record.id}: it is new, nobody has decided it yet"
    return f"cannot {verb}: {_described(record)}; reopen it first (`opsloop signals reopen`)"


def decide(directory: Path, ref: str, to: SignalStatus, *, by: str, reason: str,
           at: datetime, into: str | None = None, expect: SignalStatus | None = None,
           missions_dir: Path | None = None, incidents: Mapping[str, Incident] | None = None,
           lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> FiledSignal:
    """Move one signal to `to`, recording who, when and why; accepting writes its mission
    brief to `missions_dir`. Raises a SignalError naming the id and status when the move is
    not allowed, or when the status on disk is no longer `expect`."""
    if not by.strip():
        raise SignalError("say who decides (--by NAME)")
    if not reason.strip():
        raise SignalError(f"say why you {VERBS[to]} {ref} (--reason ...)")
    with signals_lock(directory, lock_timeout):
        filed = load_signals(directory)
        current = find_signal(filed, ref)
        record = current.record
        if expect is not None and record.status is not expect:
            raise DecisionConflict(f"{_described(record)}; it was {expect.value} when you "
                                   f"looked, so your {VERBS[to]} was not recorded")
        if to not in TRANSITIONS[record.status]:
            raise InvalidTransition(_refusal(record, to))
        target = None
        if to is MERGED:
            target = _merge_target(filed, record, into)
        change = StatusChange(status=to, previous=record.status, by=by.strip(), at=at,
                              reason=reason.strip(), into=target,
                              incidents=len(record.incidents))
        mission = record.mission
        if to is ACCEPTED:
            if missions_dir is None:
                raise SignalError("accepting needs the missions folder to write the brief to")
            brief = missions_dir / f"{record.id}.md"
            mission = str(brief)
            change = change.model_copy(update={"mission": mission})
            merged_in = [f for f in filed if f.record.merged_into == record.id]
            score = score_signal(record, [m.record for m in merged_in], incidents or {})
            atomic_write(brief, render_mission(record, change, score))
        updated = record.model_copy(update={
            "status": to, "merged_into": target, "mission": mission,
            "history": [*record.history, change]})
        atomic_write(current.path, render_record(updated))
        return FiledSignal(current.path, updated)


def _merge_target(filed: list[FiledSignal], record: SignalRecord, into: str | None) -> str:
    if not into:
        raise SignalError(f"say which signal {record.id} merges into (--into ID)")
    target = find_signal(filed, into).record
    if target.id == record.id:
        raise InvalidTransition(f"cannot merge {record.id} into itself")
    if target.status is MERGED:
        raise InvalidTransition(f"cannot merge {record.id} into {_described(target)}; merge "
                                f"it into {target.merged_into} instead")
    return target.id


class Score(BaseModel):
    """The evidence behind a signal's rank, and the score it adds up to."""

    score: float
    incidents: list[str]  # counted once each: the signal's own and those merged into it
    missing: list[str] = Field(default_factory=list)  # not in the store: counted, no detail
    severities: dict[str, int] = Field(default_factory=dict)
    impact_points: float = 0.0
    budget_burned: float | None = None  # fraction of one SLO period's budget; None unknown
    toil_hours: float = 0.0
    approval_wait_hours: float = 0.0
    manual_steps: int = 0
    escalations: int = 0
    estimated: list[str] = Field(default_factory=list)

    def explain(self) -> list[str]:
        """The score's parts as sentences for a brief or a report."""
        sev = ", ".join(f"{n} {s}" for s, n in sorted(self.severities.items())) or "none"
        budget = ("unknown (no measured impact)" if self.budget_burned is None
                  else f"{self.budget_burned:.1%} of a {SLO_PERIOD.days}-day budget (estimated)")
        lines = [
            f"score {self.score:g} from {len(self.incidents)} incident(s): "
            f"{', '.join(self.incidents) or 'none'}",
            f"customer impact {self.impact_points:g} points (severities: {sev})",
            f"error budget burned: {budget}",
            f"toil {self.toil_hours:.2f} h: {self.approval_wait_hours:.2f} h waiting for "
            f"approval (measured), {self.manual_steps} manual step(s) and "
            f"{self.escalations} escalation(s) (estimated)",
        ]
        if self.missing:
            lines.append(f"not in the incident store (counted without detail): "
                         f"{', '.join(self.missing)}")
        return lines


def _incident_end(incident: Incident) -> datetime:
    times = [incident.opened_at, *(e.at for e in incident.timeline)]
    if incident.verification is not None:
        times.append(incident.verification.at)
    for case in incident.actions:
        times += [r.at for r in (case.result, case.revert) if r is not None]
        if case.approval is not None:
            times.append(case.approval.at)
    return max(times)


def _severity_from_evidence(record: SignalRecord, incident_id: str) -> Severity | None:
    for line in record.evidence:
        m = _EVIDENCE_SEVERITY.match(line)
        if m and m.group(1) == incident_id:
            return Severity(m.group(2))
    return None


def score_signal(record: SignalRecord, merged_in: Iterable[SignalRecord],
                 incidents: Mapping[str, Incident]) -> Score:
    """The documented score (module docstring) from the signal and the stored incidents."""
    records = [record, *merged_in]
    ids = list(dict.fromkeys(i for r in records for i in r.incidents))
    severities: dict[str, int] = {}
    impact = budget = wait = 0.0
    budget_known = False
    steps = escalations = 0
    missing = []
    for incident_id in ids:
        incident = incidents.get(incident_id)
        severity = incident.severity if incident else next(
            (s for r in records if (s := _severity_from_evidence(r, incident_id))), None)
        tier = incident.impact.tier if incident and incident.impact else 3
        key = severity.value if severity else "unclassified"
        severities[key] = severities.get(key, 0) + 1
        impact += (SEVERITY_POINTS[severity] if severity else UNCLASSIFIED_POINTS) * \
            TIER_FACTOR.get(tier, 1.0)
        if incident is None:
            missing.append(incident_id)
            continue
        if incident.impact is not None and incident.impact.burn_rate_1h > 0:
            budget_known = True
            held = _incident_end(incident) - incident.opened_at
            budget += min(1.0, incident.impact.burn_rate_1h * (held / SLO_PERIOD))
        for case in incident.actions:
            if case.human_wait is not None:
                wait += max(case.human_wait.total_seconds(), 0.0) / 3600
            if case.approval is not None or case.awaits_human:
                steps += 1
        escalations += incident.status is IncidentStatus.ESCALATED
    toil = wait + steps * MANUAL_STEP / timedelta(hours=1) + \
        escalations * ESCALATION / timedelta(hours=1)
    estimated = ["toil from manual steps and escalations"] if steps or escalations else []
    if budget_known:
        estimated.insert(0, "error budget burned")
    total = (INCIDENT_POINTS * len(ids) + impact + BUDGET_POINTS * budget + TOIL_POINTS * toil)
    return Score(score=round(total, 1), incidents=ids, missing=missing, severities=severities,
                 impact_points=round(impact, 2),
                 budget_burned=round(budget, 4) if budget_known else None,
                 toil_hours=round(toil, 2), approval_wait_hours=round(wait, 2),
                 manual_steps=steps, escalations=escalations, estimated=estimated)


def subject_of(record: SignalRecord, incidents: Mapping[str, Incident]) -> tuple[str, ...] | None:
    """What the signal is about, recovered from its incidents: the subject whose hash with
    the kind is the signal's id (signals.signal_id). None when no incident explains it."""
    known = [incidents[i] for i in record.incidents if i in incidents]
    for subject in _candidates(record.kind, known):
        if signal_id(record.kind, *subject) == record.id:
            return subject
    return None


def _candidates(kind: str, known: list[Incident]) -> Iterable[tuple[str, ...]]:
    # Mirrors the subjects the rules in signals.py build, one rule per kind.
    for i in known:
        cases = i.actions
        if kind == "repeated_incidents":
            category = i.root_cause.category if i.root_cause else "unknown"
            yield from (("service", s, category) for s in i.services)
            yield from (("service", s) for s in i.services)  # filed before cause grouping
            if i.root_cause:
                yield ("category", i.root_cause.category)
        elif kind == "novel_failure":
            yield ("novel", *(sorted(set(i.services)) or ["an unnamed service"]), "|",
                   *(sorted({a.name for a in i.anomalies}) or ["an unnamed anomaly"]))
        elif kind == "verification_failed":
            ran = sorted(f"{c.action.service}:{c.action.type}" for c in cases if c.result)
            yield ("verification_failed", *(ran or ["no-action"]))
        elif kind == "recurring_fix":
            yield from (("recurring_fix", c.action.service, c.action.type) for c in cases)
        elif kind == "approval_bottleneck":
            for c in cases:
                if c.approval is not None:
                    rule = c.decision.rule if c.decision else "unrecorded rule"
                    tag = "rejected" if c.approval.verdict is Verdict.REJECT else "slow"
                    yield (tag, rule, c.action.type)
        elif kind == "toil":
            yield from (("toil", c.action.type) for c in cases)
        elif kind in {"alert_without_action", "noisy_alert"}:  # the alert-quality agent's
            yield from ((a.name, a.service or "-") for a in i.anomalies)


def describe_subject(record: SignalRecord, subject: tuple[str, ...] | None) -> str:
    if subject is None:
        return record.title
    if record.kind in {"alert_without_action", "noisy_alert"}:
        return " on ".join(subject)
    if record.kind == "repeated_incidents" and subject[0] == "service" and len(subject) == 3:
        return f"service {subject[1]} ({subject[2].replace('_', ' ')})"
    parts = list(subject[1:]) if subject[0] in {record.kind, "novel", "toil"} else list(subject)
    return " ".join(parts)


class Ranked(BaseModel):
    """One signal on the triage board."""

    id: str
    status: SignalStatus
    kind: str
    title: str
    subject: str
    score: Score
    age_days: float
    path: str
    group: str  # signals in one group are about the same thing (see `rank`)
    related: list[str] = Field(default_factory=list)  # other ids in its group
    duplicate_of: str | None = None  # an exact duplicate: a candidate to merge into this id
    merged_in: list[str] = Field(default_factory=list)


def _theme(record: SignalRecord, subject: tuple[str, ...] | None,
           known: list[Incident]) -> str | None:
    """'service / category' when the signal is about one service and one cause."""
    services = {s for i in known for s in i.services}
    categories = {i.root_cause.category for i in known if i.root_cause and not i.novel}
    if subject and subject[0] in {"service", "recurring_fix"}:
        services = {subject[1]}
    elif subject and subject[0] == "category":
        categories = {subject[1]}
    elif subject and record.kind in {"alert_without_action", "noisy_alert"}:
        services = {subject[1]}
    if len(services) == 1 and len(categories) == 1:
        return f"{next(iter(services))} / {next(iter(categories))}"
    return None


def rank(filed: list[FiledSignal], incidents: Mapping[str, Incident],
         now: datetime) -> list[Ranked]:
    """Every signal not merged away, highest score first, grouped with its near-duplicates:
    the same kind and subject (the same id filed twice, or the same kind resting on the same
    incidents: an exact duplicate), or the same service and root-cause category."""
    merged_into: dict[str, list[SignalRecord]] = {}
    for f in filed:
        if f.record.status is MERGED and f.record.merged_into:
            merged_into.setdefault(f.record.merged_into, []).append(f.record)
    live: dict[str, FiledSignal] = {}
    for f in filed:  # a signal filed twice (a copied file) is ranked once, from its first file
        if f.record.status is not MERGED:
            live.setdefault(f.record.id, f)
    rows: list[Ranked] = []
    for f in live.values():
        r = f.record
        known = [incidents[i] for i in r.incidents if i in incidents]
        subject = subject_of(r, incidents)
        rows.append(Ranked(
            id=r.id, status=r.status, kind=r.kind, title=r.title,
            subject=describe_subject(r, subject),
            score=score_signal(r, merged_into.get(r.id, []), incidents),
            age_days=max(0.0, round((now - r.created_at) / timedelta(days=1), 1)),
            path=str(f.path),
            group=_theme(r, subject, known) or f"{r.kind}: {describe_subject(r, subject)}",
            merged_in=[m.id for m in merged_into.get(r.id, [])]))
    # Highest score first; then more incidents, then the older signal, then the id.
    rows.sort(key=lambda x: (-x.score.score, -len(x.score.incidents),
                             live[x.id].record.created_at, x.id))
    first_of: dict[tuple[str, tuple[str, ...]], str] = {}
    groups: dict[str, list[str]] = {}
    for row in rows:
        same = (row.kind, tuple(sorted(live[row.id].record.incidents)))
        row.duplicate_of = first_of.setdefault(same, row.id)
        if row.duplicate_of == row.id:
            row.duplicate_of = None
        groups.setdefault(row.group, []).append(row.id)
    for row in rows:
        row.related = [i for i in groups[row.group] if i != row.id]
    return rows


def render_mission(record: SignalRecord, accepted: StatusChange, score: Score) -> str:
    """The hand-off to product discovery: what was seen, the evidence, the outcome wanted,
    and who accepted it and why."""
    meta = {
        "signal": record.id,
        "kind": record.kind,
        "title": record.title,
        "accepted_by": accepted.by,
        "accepted_at": iso(accepted.at),
        "reason": accepted.reason,
        "score": score.score,
        "incidents": score.incidents,
        "first_seen": iso(record.created_at),
    }
    return (
        f"{front_matter(meta)}\n# Mission: {inline(record.title)}\n\n"
        f"Accepted by {inline(accepted.by, 80)} on {fmt_time(accepted.at)}: "
        f"{inline(accepted.reason, 400)}\n\n"
        f"## What was seen\n\n{inline(record.title)} ({inline(record.kind)} signal, first "
        f"seen {fmt_time(record.created_at)}, resting on {len(score.incidents)} "
        f"incident{'s' if len(score.incidents) != 1 else ''}).\n\n"
        f"## Evidence\n\n{bullets(inline(line, 400) for line in score.explain())}\n\n"
        f"{bullets(inline(e, 400) for e in record.evidence)}\n\n"
        f"## Suggested outcome\n\n{inline(record.suggested_mission, 400)}\n"
    )
