"""The war-room record a SEV1 opens: who was paged, what fired, and a log humans extend."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from opsloop.agents.markdown import atomic_write, bullets, front_matter, inline, iso
from opsloop.models import Incident, TimelineEvent
from opsloop.runbooks.markdown import FrontMatterError, split_front_matter


def war_room_path(directory: Path, incident_id: str) -> Path:
    return directory / f"{incident_id}.md"


def open_war_room(incident: Incident, directory: Path, paged: list[str]) -> Path:
    """Write the record once; reopening an incident's war room keeps what people added."""
    path = war_room_path(directory, incident.id)
    if path.exists():
        return path
    meta = {
        "incident": incident.id,
        "severity": incident.severity.value if incident.severity else None,
        "status": "open",
        "opened_at": iso(incident.opened_at),
        "services": incident.services,
        "paged": paged,
        "incident_commander": "unassigned: the paged on-call takes it or hands it over",
    }
    alerts = [f"{inline(a.name)} on {inline(a.service or '?')} since {iso(a.starts_at)}: "
              f"{inline(a.annotations.get('summary', ''))}" for a in incident.anomalies]
    body = (
        f"# War room: {inline(incident.title)}\n\n"
        "## What fired\n\n" + bullets(alerts) + "\n\n"
        "## Log\n\n"
        f"- {iso(incident.opened_at)} opened by opsloop; on-call paged\n"
    )
    return atomic_write(path, front_matter(meta) + body)


def log_to_war_room(directory: Path, incident_id: str, event: TimelineEvent) -> None:
    """Append one line to an open war room's log; no war room, nothing to do."""
    path = war_room_path(directory, incident_id)
    if path.exists():
        atomic_write(path, path.read_text() + f"- {iso(event.at)} {inline(event.message)}\n")


def close_war_room(directory: Path, incident_id: str, status: str, at: datetime) -> None:
    """Mark an incident's war room closed: its status and when, in the front matter.

    No war room, nothing to do; a record people broke by hand is left as they wrote it.
    """
    path = war_room_path(directory, incident_id)
    if not path.exists():
        return
    try:
        meta, body = split_front_matter(path.read_text(encoding="utf-8"))
    except (FrontMatterError, UnicodeDecodeError):
        return
    meta.update(status=status, closed_at=iso(at))
    atomic_write(path, front_matter(meta) + body)
