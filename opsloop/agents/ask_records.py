"""What `opsloop ask` reads, and what a question asks for: records, filters, citations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opsloop.files import documents
from opsloop.models import Incident, Severity
from opsloop.models.catalog import ACTION_TYPES
from opsloop.runbooks.markdown import split_front_matter
from opsloop.tools.protocols import RunbookIndex


class Citation(BaseModel):
    ref: str  # INC-0001, INC-0001#timeline/3, postmortem:INC-0001, signal:<id>, runbook:<id>
    kind: str  # incident | timeline | approval | decision | postmortem | signal | runbook
    excerpt: str = ""


Found = tuple[list[str], list[Citation]]  # an answer's lines and the records they rest on


class Answer(BaseModel):
    question: str
    kind: str  # what was asked, e.g. root_cause, approvers, count
    text: str
    citations: list[Citation]
    answered_by: str = "records"  # "records" (offline) or the model's name
    incidents: list[str] = []


@dataclass
class Records:
    """Everything an answer may rest on, loaded once."""

    incidents: list[Incident]
    postmortems: dict[str, str] = field(default_factory=dict)  # incident id -> markdown
    signals: list[dict[str, Any]] = field(default_factory=list)  # front matter + path
    runbooks: RunbookIndex | None = None

    @classmethod
    def load(cls, incidents: list[Incident], postmortems_dir: Path, signals_dir: Path,
             runbooks: RunbookIndex | None = None) -> Records:
        posts = {}
        for incident in incidents:
            path = Path(incident.postmortem_path) if incident.postmortem_path else (
                postmortems_dir / f"{incident.id}.md")
            if path.is_file():
                posts[incident.id] = path.read_text(encoding="utf-8")
        signals = []
        for path in documents(signals_dir):
            try:
                meta, _ = split_front_matter(path.read_text(encoding="utf-8"))
            except ValueError:  # FrontMatterError, or not UTF-8
                continue  # a hand-edited signal that no longer parses is skipped, not fatal
            signals.append({**meta, "path": str(path)})
        return cls(incidents, posts, signals, runbooks)

    def now(self) -> datetime | None:
        """The present, as the records know it (simulated time in the simulator)."""
        times = [e.at for i in self.incidents for e in i.timeline] + [
            i.opened_at for i in self.incidents]
        return max(times) if times else None


@dataclass
class Window:
    label: str
    start: datetime
    end: datetime

    def holds(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass
class Query:
    text: str
    ids: list[str]
    services: list[str]
    severities: list[Severity]
    actions: list[str]
    window: Window | None

    @property
    def filtered(self) -> bool:
        """The question narrowed the records (an id, service, severity, action or time)."""
        return bool(self.ids or self.services or self.severities or self.actions
                    or self.window)


_ACTION_WORDS = {"roll back": "rollback_deploy", "rolled back": "rollback_deploy",
                 "rollback": "rollback_deploy", "restart": "restart", "failover": "failover",
                 "fail over": "failover", "scale out": "scale_out", "scale in": "scale_in",
                 "purge": "purge_logs", "disable": "disable_flag", "abort": "abort_experiment",
                 "replace": "replace_instance"}


def _window(text: str, now: datetime | None) -> Window | None:
    if now is None:
        return None
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if "last night" in text or "overnight" in text:
        start = day - timedelta(hours=6) if now.hour >= 8 else day - timedelta(days=1, hours=6)
        return Window("last night", start, start + timedelta(hours=14))
    if "yesterday" in text:
        return Window("yesterday", day - timedelta(days=1), day)
    if "this morning" in text:
        return Window("this morning", day, day + timedelta(hours=12))
    if "today" in text:
        return Window("today", day, day + timedelta(days=1))
    if "this week" in text:
        return Window("this week", day - timedelta(days=day.weekday()), now + timedelta(1))
    m = re.search(r"last (\d+) (hour|day)s?", text)
    if m:
        span = timedelta(hours=int(m.group(1))) if m.group(2) == "hour" else timedelta(
            days=int(m.group(1)))
        return Window(f"the last {m.group(1)} {m.group(2)}(s)", now - span, now + timedelta(1))
    return None


def parse_query(question: str, records: Records) -> Query:
    text = question.lower()
    known = sorted({s for i in records.incidents for s in i.services}, key=len, reverse=True)
    services = [s for s in known if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text)]
    actions = [t for t in ACTION_TYPES if t in text]
    actions += [t for w, t in _ACTION_WORDS.items() if w in text and t not in actions]
    return Query(
        text=text,
        ids=[m.upper() for m in re.findall(r"inc-\d+", text)],
        services=services,
        severities=[Severity(f"SEV{n}") for n in re.findall(r"sev\s*-?([1-4])", text)],
        actions=actions,
        window=_window(text, records.now()),
    )


def select(query: Query, incidents: list[Incident], *, use_window: bool = True
           ) -> list[Incident]:
    """Incidents the question is about, most recent first."""
    found = [
        i for i in incidents
        if (not query.ids or i.id in query.ids)
        and (not query.services or set(query.services) & set(i.services))
        and (not query.severities or i.severity in query.severities)
        and (not use_window or query.window is None or query.window.holds(i.opened_at))
    ]
    return sorted(found, key=lambda i: i.opened_at, reverse=True)


def cite_incident(incident: Incident, excerpt: str = "") -> Citation:
    return Citation(ref=incident.id, kind="incident",
                    excerpt=excerpt or f"{incident.title} ({incident.status.value})")


def head(i: Incident) -> str:
    """An incident in one phrase: id, severity, status, when it opened."""
    sev = i.severity.value if i.severity else "unclassified"
    return f"{i.id} ({sev}, {i.status.value}, opened {i.opened_at:%Y-%m-%d %H:%M})"
