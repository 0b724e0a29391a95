"""Improvement signals for the Discover loop, derived by fixed rules from incident records.

A signal is a finding an Outcome Owner triages weekly: something production keeps telling
us that operations alone will not fix. Each rule reads only the record; a signal's id is a
hash of its kind and the subject it is about (a service, an action type, a policy rule), so
re-deriving it, or seeing the pattern again next week, updates one file instead of filing
a new one.

The file is the signal's one record, triage included: once a person decides (accepted,
declined, merged; `opsloop.agents.signal_triage`), its status and the history of who decided
what, when and why are added to the front matter. A signal nobody has decided yet is written
exactly as before, so files from before triage read as `new`. Every write of the signals
folder happens under one lock (`signals_lock`), so learn re-filing a signal never loses a
decision made at the same moment.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from opsloop.agents.markdown import (
    atomic_write,
    bullets,
    fmt_duration,
    fmt_time,
    front_matter,
    inline,
    iso,
    one_line,
    render_signal,
)
from opsloop.agents.past_incident import PastIncident
from opsloop.agents.record import verification_failed
from opsloop.models import ActionCase, ActionStatus, DecisionOutcome, Incident, Signal, Verdict
from opsloop.models.signal_rules import SignalsPolicy
from opsloop.runbooks.markdown import FrontMatterError, split_front_matter

# policies/signals.yaml's defaults, for callers without a policy folder (tests, tools).
DEFAULT_RULES = SignalsPolicy(version=1)
DEFAULT_LOOKBACK_DAYS = DEFAULT_RULES.lookback_days
LOCK_TIMEOUT_SECONDS = 10.0


class SignalStatus(StrEnum):
    NEW = "new"  # nobody has decided yet
    ACCEPTED = "accepted"  # taken on as a mission: work/missions/<id>.md
    DECLINED = "declined"
    MERGED = "merged"  # a duplicate: its evidence counts towards `merged_into`


class StatusChange(BaseModel):
    """One decision about a signal: from which status to which, who, when and why."""

    status: SignalStatus
    previous: SignalStatus
    by: str
    at: datetime
    reason: str
    into: str | None = None  # the signal a merge pointed at
    mission: str | None = None  # the brief an acceptance wrote
    incidents: int = 0  # how many incidents the signal rested on when this was decided


class SignalRecord(Signal):
    """A signal as filed: what learn derived, plus its triage status and decision history."""

    status: SignalStatus = SignalStatus.NEW
    merged_into: str | None = None
    mission: str | None = None  # path of the mission brief, once accepted
    history: list[StatusChange] = Field(default_factory=list)

    @property
    def decided(self) -> bool:
        return self.status is not SignalStatus.NEW or bool(self.history)


class SignalsLocked(RuntimeError):
    """Another process held the signals folder's lock for longer than we would wait."""


def signal_id(kind: str, *subject: str) -> str:
    """A stable id for a kind of signal about one subject."""
    digest = hashlib.sha256("\x1f".join((kind, *subject)).encode()).hexdigest()
    return f"sig-{digest[:16]}"


def derive_signals(
    incident: Incident,
    history: Sequence[Incident | PastIncident],
    now: datetime,
    rules: SignalsPolicy = DEFAULT_RULES,
) -> list[Signal]:
    """The signals this incident raises, judged against `history` within the lookback.

    An incident counts once (its latest record), and one whose root cause is deliberate
    (`rules.deliberate_causes`, a planned chaos experiment) never counts towards a signal.
    """
    days = rules.lookback_days
    deliberate = set(rules.deliberate_causes)
    window = _window(incident, history, now - timedelta(days=days), deliberate)
    cause = incident.root_cause
    found = [
        *_novel_failure(incident, now),
        *_verification_failed(incident, now),
    ]
    if cause is None or cause.category not in deliberate:
        found += [
            *_repeated_incidents(incident, window, now, days, rules.repeated_incidents),
            *_recurring_fix(incident, window, now, days, rules.recurring_fix),
            *_approval_bottleneck(incident, window, now, rules),
            *_toil(incident, window, now, days, rules.toil),
        ]
    return list({s.id: s for s in found}.values())


def _window(incident: Incident, history: Sequence[Incident | PastIncident],
            since: datetime, deliberate: set[str]) -> list[PastIncident]:
    # The current incident always counts, even when history already holds an older copy of it.
    by_id = {i.id: i if isinstance(i, PastIncident) else PastIncident.of(i)
             for i in history if i.opened_at >= since}
    by_id[incident.id] = PastIncident.of(incident)
    return sorted((i for i in by_id.values() if i.category not in deliberate),
                  key=lambda i: (i.opened_at, i.id))


def _line(incident: Incident | PastIncident) -> str:
    """One incident as evidence: id, when, how bad, what, and why if known."""
    if isinstance(incident, Incident):
        incident = PastIncident.of(incident)
    severity = incident.severity if incident.severity is not None else "unclassified"
    cause = f"; root cause {incident.category}" if incident.category is not None else ""
    return (f"{incident.id} ({fmt_time(incident.opened_at)}, {severity}, "
            f"{incident.status}): {one_line(incident.title, 120)}{cause}")


def _signal(kind: str, subject: Iterable[str], title: str, evidence: list[str],
            mission: str, incidents: Iterable[Incident | PastIncident], now: datetime) -> Signal:
    return Signal(id=signal_id(kind, *subject), kind=kind, title=one_line(title, 200),
                  evidence=[one_line(e, 400) for e in evidence],
                  suggested_mission=one_line(mission, 400),
                  incidents=[i.id for i in incidents], created_at=now)


def _repeated_incidents(incident: Incident, window: list[PastIncident], now: datetime,
                        days: int, threshold: int) -> list[Signal]:
    # Grouped by service and root cause: three unrelated failures of one service are three
    # stories, not a pattern. Incidents with no established cause group among themselves.
    signals = []
    cause = incident.root_cause
    category = cause.category if cause is not None else None
    for service in sorted(set(incident.services)):
        hits = [i for i in window if service in i.services and i.category == category]
        if len(hits) < threshold:
            continue
        why = f"from {category}" if category is not None else "with no established cause"
        signals.append(_signal(
            "repeated_incidents", ("service", service, category or "unknown"),
            f"{service} had {len(hits)} incidents {why} in {days} days",
            [_line(i) for i in hits],
            f"Make {service} reliable against "
            + (f"{category.replace('_', ' ')}" if category else "its unexplained failures")
            + f": find what its {len(hits)} incidents share and fix it at the source, with "
            "the owning team.",
            hits, now))
    if cause is not None:
        hits = [i for i in window if i.category is not None and i.category == cause.category]
        # One service's run of the same cause is already the service signal above.
        covered = any(s.incidents == [i.id for i in hits] for s in signals)
        if len(hits) >= threshold and not covered:
            services = sorted({s for i in hits for s in i.services})
            signals.append(_signal(
                "repeated_incidents", ("category", cause.category),
                f"{cause.category} caused {len(hits)} incidents across "
                f"{', '.join(services)} in {days} days",
                [_line(i) for i in hits],
                f"Find why {cause.category} keeps recurring across services and fix the shared "
                "cause (a library, a platform default, a practice).",
                hits, now))
    return signals


def _novel_failure(incident: Incident, now: datetime) -> list[Signal]:
    if not incident.novel:
        return []
    alerts = sorted({a.name for a in incident.anomalies}) or ["an unnamed anomaly"]
    services = sorted(set(incident.services)) or ["an unnamed service"]
    considered = [
        f"Hypothesis considered: {h.cause} ({h.category}, runbook {h.runbook or 'none'}) "
        f"reached only {h.confidence:.2f}"
        for d in incident.diagnoses for h in d.hypotheses
    ]
    return [_signal(
        "novel_failure", ("novel", *services, "|", *alerts),
        f"No runbook covers {', '.join(alerts)} on {', '.join(services)}",
        [_line(incident), *(considered or ["No runbook produced a hypothesis."])],
        f"Investigate the root cause of {', '.join(alerts)} on {', '.join(services)} and "
        "write a runbook so the next occurrence is diagnosed automatically.",
        [incident], now)]


def _verification_failed(incident: Incident, now: datetime) -> list[Signal]:
    v = incident.verification
    if v is None or not verification_failed(incident):
        return []
    ran = [r for r in incident.actions if r.result is not None]
    subject = sorted(f"{r.action.service}:{r.action.type}" for r in ran) or ["no-action"]
    what = ", ".join(r.action.describe() for r in ran) or "the remediation"
    evidence = [_line(incident)]
    evidence += [f"{c.name} on {c.service} observed {c.observed:g} against {c.threshold:g} "
                 f"after {v.window_minutes} min" for c in incident.verification_checks
                 if not c.ok]
    if v.rolled_back:
        evidence.append("Reverted: " + (", ".join(f"{r.action} {r.status.value}"
                                                  for r in incident.reverts) or "yes"))
    return [_signal(
        "verification_failed", ("verification_failed", *subject),
        f"{what} did not hold" + (" and was reverted" if v.rolled_back else ""),
        evidence,
        f"Find out why {what} did not restore health; fix the diagnosis, the remediation or "
        "its runbook so the next run holds.",
        [incident], now)]


def _succeeded(incident: Incident, *, auto_only: bool = False) -> list[ActionCase]:
    return [
        r for r in incident.actions
        if r.result is not None and r.result.status is ActionStatus.SUCCEEDED
        and (not auto_only
             or (r.decision is not None and r.decision.outcome is DecisionOutcome.AUTO))
    ]


def _recurring_fix(incident: Incident, window: list[PastIncident], now: datetime,
                   days: int, threshold: int) -> list[Signal]:
    signals = []
    for service, kind in sorted({(r.action.service, r.action.type) for r in _succeeded(incident)}):
        hits = [i for i in window if any((svc, typ) == (service, kind) for svc, typ, _ in i.fixes)]
        if len(hits) < threshold:
            continue
        leak = any(i.category is not None and "leak" in i.category for i in hits)
        signals.append(_signal(
            "recurring_fix", ("recurring_fix", service, kind),
            f"{kind} on {service} was needed in {len(hits)} incidents in {days} days",
            [_line(i) for i in hits],
            f"Fix the root cause in {service} so {kind} stops being needed"
            + (": the incidents point to a memory leak." if leak else "."),
            hits, now))
    return signals


def _approval_bottleneck(incident: Incident, window: list[PastIncident], now: datetime,
                         rules: SignalsPolicy) -> list[Signal]:
    """People's answers that, repeated within the lookback, question a proposal policy: one
    rejection is a decision, `rules.approvals.rejections` of them are a pattern."""
    slow = rules.approvals.slow_minutes * 60

    def is_slow(waited: float | None) -> bool:
        return waited is not None and waited > slow

    signals = []
    for r in incident.actions:
        if r.approval is None:
            continue
        rule = r.decision.rule if r.decision else "unrecorded rule"
        rejected = r.approval.verdict is Verdict.REJECT
        if not rejected and not is_slow(r.approval.waited_seconds):
            continue
        hits = [i for i in window if any(
            (rl, kind) == (rule, r.action.type)
            and (verdict == Verdict.REJECT.value if rejected
                 else verdict != Verdict.REJECT.value and is_slow(waited))
            for rl, kind, verdict, waited in i.answers)]
        need = rules.approvals.rejections if rejected else rules.approvals.slow_answers
        if len(hits) < need:
            continue
        who = f"{r.approval.by} at {fmt_time(r.approval.at)}"
        if rejected:
            signals.append(_signal(
                "approval_bottleneck", ("rejected", rule, r.action.type),
                f"Proposals of {r.action.type} under {rule} were rejected in {len(hits)} "
                f"incidents in {rules.lookback_days} days",
                [*(_line(i) for i in hits), f"Latest: {r.action.describe()} rejected by {who}: "
                 f"{r.approval.reason or 'no reason given'}"],
                f"Review the proposal policy {rule}: should opsloop propose {r.action.type} "
                "here at all, or with other parameters or evidence?",
                hits, now))
        else:
            wait = fmt_duration(timedelta(seconds=r.approval.waited_seconds or 0))
            signals.append(_signal(
                "approval_bottleneck", ("slow", rule, r.action.type),
                f"Approvals of {r.action.type} under {rule} were slow in {len(hits)} "
                f"incidents in {rules.lookback_days} days",
                [*(_line(i) for i in hits), f"Latest: {r.action.describe()} waited {wait} "
                 f"for approval, answered by {who}"],
                f"Shorten the approval path for {r.action.type} under {rule}: route it to "
                "someone on call who can answer, or let policy decide it.",
                hits, now))
    return signals


def _toil(incident: Incident, window: list[PastIncident], now: datetime,
          days: int, threshold: int) -> list[Signal]:
    signals = []
    for kind in sorted({r.action.type for r in _succeeded(incident, auto_only=True)}):
        hits = [i for i in window if any(typ == kind and auto for _, typ, auto in i.fixes)]
        if len(hits) < threshold:
            continue
        signals.append(_signal(
            "toil", ("toil", kind),
            f"{kind} ran automatically in {len(hits)} incidents in {days} days",
            [_line(i) for i in hits],
            f"Remove the toil: make the fix behind repeated {kind} permanent (capacity, code "
            "or configuration) so the automation stops firing.",
            hits, now))
    return signals


def _short(signal: Signal) -> str:
    return signal.id.removeprefix("sig-")[:8]


def _merge(old: Signal, new: Signal) -> Signal:
    """The newer wording, every incident and piece of evidence either one saw, the first date.

    An incident is one line of evidence however often it was seen: a line about an incident
    (it starts with the id) is replaced by the newer line about it, in its first place.
    """
    incidents = list(dict.fromkeys([*old.incidents, *new.incidents]))
    return new.model_copy(update={
        "incidents": incidents,
        "evidence": once_per_incident([*old.evidence, *new.evidence], incidents),
        "created_at": min(old.created_at, new.created_at),
    })


def once_per_incident(evidence: list[str], incidents: list[str]) -> list[str]:
    """Each incident's latest line, in the place of its first; other lines once each."""
    known = set(incidents)
    lines: dict[str, str] = {}
    for line in evidence:
        head = line.split(" ", 1)[0]
        lines[head if head in known else line] = line
    return list(lines.values())


def _refiled(old: SignalRecord, new: Signal) -> SignalRecord:
    """A known signal seen again: merged evidence, and the decisions people made kept."""
    derived = _merge(old, new).model_dump(include=set(Signal.model_fields))
    return SignalRecord(**{**old.model_dump(), **derived})


def render_record(record: Signal) -> str:
    """A signal's file. Undecided, it is exactly `render_signal`'s; once people decided, the
    front matter gains status and history and the body a Triage section."""
    text = render_signal(record)
    if not isinstance(record, SignalRecord) or not record.decided:
        return text
    meta, body = split_front_matter(text)
    meta["status"] = record.status.value
    if record.merged_into:
        meta["merged_into"] = record.merged_into
    if record.mission:
        meta["mission"] = record.mission
    meta["history"] = [c.model_dump(mode="json", exclude_none=True) for c in record.history]
    lines = [f"{fmt_time(c.at)}: {c.previous.value} → {c.status.value} by {inline(c.by, 80)}"
             + (f" into {inline(c.into, 40)}" if c.into else "")
             + f": {inline(c.reason, 400)}" for c in record.history]
    return (f"{front_matter(meta)}{body.rstrip()}\n\n## Triage\n\n"
            f"Status: {record.status.value}.\n\n{bullets(lines)}\n")


def read_record(path: Path) -> SignalRecord:
    """One signal file; ValueError naming the file and field when it is not a signal."""
    try:
        meta, _ = split_front_matter(path.read_text(encoding="utf-8"))
    except (FrontMatterError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable signal file: {err}") from err
    return _record_of(path, meta)


def _record_of(path: Path, meta: dict[str, Any]) -> SignalRecord:
    """The record in a signal file's front matter (read once by the caller)."""
    try:
        record = SignalRecord.model_validate(meta)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(
            f"{path}: front matter is not a valid signal ({err.error_count()} error(s), "
            f"first: {where}: {first['msg']}); fix or move the file and run again") from err
    # Files written before an incident counted once list it once per status it passed.
    return record.model_copy(update={
        "evidence": once_per_incident(record.evidence, record.incidents)})


@contextmanager
def signals_lock(directory: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the signals folder's lock: learn filing and people deciding never interleave.

    The lock is flock(2) on the folder itself (no lock file among the signals). Waits at most
    `timeout` seconds, then raises SignalsLocked naming the folder. The kernel frees the
    lock when its holder dies, even by kill -9.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SignalsLocked(
                        f"{directory}: another process has been changing signals for over "
                        f"{timeout:g} s; try again in a moment") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _existing(directory: Path, signal: Signal) -> tuple[Path, SignalRecord] | None:
    for path in sorted(directory.glob(f"*-{signal.kind}-{_short(signal)}.md")):
        try:
            meta, _ = split_front_matter(path.read_text(encoding="utf-8"))
        except FrontMatterError:
            continue  # unreadable front matter names no signal; this one gets its own file
        if meta.get("id") != signal.id:
            continue  # a different signal whose short id collides
        return path, _record_of(path, meta)
    return None


def write_signals(signals: list[Signal], directory: Path) -> list[Path]:
    """One file per signal, `<date>-<kind>-<shortid>.md`; a known id is merged, not
    duplicated, and keeps the status and history people gave it."""
    batch: dict[str, Signal] = {}
    for s in signals:
        batch[s.id] = _merge(batch[s.id], s) if s.id in batch else s
    paths: list[Path] = []
    if not batch:
        return paths
    with signals_lock(directory):
        for signal in batch.values():
            found = _existing(directory, signal)
            if found is not None:
                path, signal = found[0], _refiled(found[1], signal)
            else:
                path = directory / signal_file_name(signal)
            paths.append(atomic_write(path, render_record(signal)))
    return paths


def signal_file_name(signal: Signal) -> str:
    return f"{iso(signal.created_at)[:10]}-{signal.kind}-{_short(signal)}.md"
