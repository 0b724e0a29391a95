"""Is the postmortem draft complete, and does it agree with what really happened?

Completeness: the template's sections and the facts the case says must appear.
Consistency: every claim we can check against the incident record and the actuator's own
log — its id, severity, times, the actions it says ran, the root cause, the outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from opsloop.models import Incident

SECTIONS = ("Summary", "Impact", "Root Causes", "Trigger", "Resolution", "Detection",
            "Action Items", "Lessons Learned", "Timeline")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")
# What a draft must say somewhere for each final status (model-written summaries phrase it
# their own way), and what it must never say for that status.
_OUTCOMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mitigated": (("mitigated", "verification passed"), ("rejected every proposed action",)),
    "escalated": (("escalat",), ()),
    "rejected": (("rejected",), ("mitigated: remediation ran and verification passed",)),
    "awaiting_approval": (("approv",), ()),
    "resolved": (("nothing to do", "resolved"), ()),
    "open": (("open",), ()),
}


@dataclass
class PostmortemCheck:
    completeness: float
    consistency: float | None  # None when there is no draft to check
    missing: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)


def _plain(text: str) -> str:
    """Markdown escapes and runs of whitespace removed, lower case: what a reader sees."""
    return re.sub(r"\s+", " ", text.replace("\\", "")).lower()


def _front_matter(text: str) -> dict[str, str]:
    if not text.startswith("---"):
        return {}
    head = text.split("---", 2)[1]
    out = {}
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "-")):
            out[key.strip()] = value.strip().strip("'\"")
    return out


def _known_times(incident: Incident) -> set[str]:
    moments: list[datetime] = [incident.opened_at]
    moments += [e.at for e in incident.timeline]
    moments += [a.starts_at for a in incident.anomalies]
    moments += [c.approval.at for c in incident.actions if c.approval is not None]
    moments += [c.result.at for c in incident.actions if c.result is not None]
    if incident.verification is not None:
        moments.append(incident.verification.at)
        moments += [r.at for r in incident.reverts]
    return {f"{m:%Y-%m-%d %H:%M:%S}Z" for m in moments}


def check_postmortem(text: str | None, incident: Incident, facts: list[str],
                     executed: list[str], required: bool) -> PostmortemCheck:
    """`executed`: descriptions of the actions the actuator really ran for this incident."""
    if text is None:
        if not (required or facts):
            return PostmortemCheck(completeness=1.0, consistency=None)
        return PostmortemCheck(completeness=0.0, consistency=None, missing=["the draft itself"])
    plain = _plain(text)
    missing = [f"section {s}" for s in SECTIONS if f"## {s.lower()}" not in plain]
    missing += [f"fact {f!r}" for f in facts if _plain(f) not in plain]
    total = len(SECTIONS) + len(facts)
    checks: list[tuple[bool, str]] = []
    head = _front_matter(text)
    checks.append((head.get("incident") == incident.id,
                   f"front matter names {head.get('incident')!r}, not {incident.id}"))
    severity = incident.severity.value if incident.severity else None
    checks.append((head.get("severity") in (severity, None if severity is None else severity),
                   f"front matter says {head.get('severity')!r}, the record {severity}"))
    known = _known_times(incident)
    invented = sorted({s for s in _STAMP.findall(text) if s not in known})
    checks.append((not invented, f"times not in the record: {', '.join(invented[:3])}"))
    unmentioned = [a for a in executed if _plain(a) not in plain]
    checks.append((not unmentioned, f"executed but not reported: {', '.join(unmentioned)}"))
    ok_results = sum(1 for c in incident.actions if c.succeeded)
    claimed = plain.count("result: succeeded")
    checks.append((claimed <= len(executed) and claimed == ok_results,
                   f"claims {claimed} successful action(s); the actuator ran {len(executed)}"))
    if incident.root_cause is not None and not incident.novel:
        category = incident.root_cause.category
        checks.append((f"category: {category.lower()}" in plain,
                       f"root cause category {category} is not the one stated"))
    said, never = _OUTCOMES.get(incident.status.value, ((), ()))
    if said:
        checks.append((any(w in plain for w in said) and not any(w in plain for w in never),
                       f"outcome does not match the record's status {incident.status.value}"))
    return PostmortemCheck(
        completeness=(total - len(missing)) / total,
        consistency=sum(ok for ok, _ in checks) / len(checks),
        missing=missing,
        inconsistent=[message for ok, message in checks if not ok],
    )
