"""How the learn step's documents look on disk: postmortems and signals as markdown.

Both quote the outside world (alert annotations, log samples, tool output). That text must
never change the shape of a document: a newline followed by "## Approved by" inside an
annotation has to stay inside its sentence or table cell. Drafting (what a document says)
lives in postmortem.py and signals.py; this module decides only how it is written. They are
read back with the one front-matter reader, `opsloop.runbooks.markdown.split_front_matter`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from opsloop.models import Postmortem, Severity, Signal

# Every character that can end a line for a markdown renderer (and for yaml / str.splitlines).
_LINE_BREAKS = re.compile(r"\s*[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
# Characters that can open structure inline: links, code, HTML, table cells, headings. (A
# leading ">" could only quote, and guard_block handles line starts.)
_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "`": "\\`",
        "|": "\\|",
        "[": "\\[",
        "]": "\\]",
        "#": "\\#",
        "<": "&lt;",
    }
)
# Lines that would open a heading, a setext heading underline, a thematic break, an HTML
# block or a fence if they reached the start of a line in a section body.
_STRUCTURAL_LINE = re.compile(r"^( {0,3})([#=<>`~]|-+\s*$|\*{3,}\s*$|_{3,}\s*$|\+\s*$)")

MAX_QUOTE = 300


def one_line(text: object, limit: int = MAX_QUOTE) -> str:
    """Collapse `text` to one line of plain text, cut to `limit` characters."""
    flat = _CONTROL.sub("", _LINE_BREAKS.sub(" ", str(text))).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def inline(text: object, limit: int = MAX_QUOTE) -> str:
    """Plain or untrusted text as a markdown-safe fragment: one line, structure escaped."""
    return one_line(text, limit).translate(_ESCAPES)


def guard_block(markdown: str) -> str:
    """Escape any line of a section body that would open a heading or other structure.

    Section bodies are composed from escaped fragments already; this is the second line
    of defence for a body that came from somewhere else (an edited or model-written draft).
    """
    lines = []
    for line in markdown.splitlines():
        match = _STRUCTURAL_LINE.match(line)
        lines.append(f"{match.group(1)}\\{line[match.end(1):]}" if match else line)
    return "\n".join(lines)


def bullets(items: Iterable[str]) -> str:
    """A bullet list of already markdown-safe fragments."""
    return "\n".join(f"- {item}" for item in items)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured table; every cell is treated as plain text and escaped."""
    head = "| " + " | ".join(inline(h) for h in headers) + " |"
    rule = "|" + "|".join("---" for _ in headers) + "|"
    body = [
        "| " + " | ".join(inline(cell, limit=500) or " " for cell in row) + " |" for row in rows
    ]
    return "\n".join([head, rule, *body])


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def front_matter(meta: Mapping[str, Any]) -> str:
    """YAML front matter; yaml quotes whatever it must, so values cannot end the block."""
    # libyaml's emitter when PyYAML has it: ~5x faster on signals with long evidence lists,
    # which learn writes on every incident (the pure-Python one is the fallback).
    dumped = yaml.dump(dict(meta), Dumper=_DUMPER, sort_keys=False, allow_unicode=True,
                       width=1000)
    return f"---\n{dumped}---\n"


def atomic_write(path: Path, text: str) -> Path:
    """Write `text` to `path` so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def fmt_time(at: datetime) -> str:
    """A timestamp as people read it in a review: UTC when the time zone is known."""
    if at.tzinfo is None:
        return at.strftime("%Y-%m-%d %H:%M:%S")
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat() if at.tzinfo else at.isoformat()


def fmt_duration(delta: timedelta) -> str:
    """'45 s', '12 min', '2 h 5 min'."""
    seconds = round(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def fmt_percent(ratio: float) -> str:
    return f"{ratio * 100:.2f}%".replace(".00%", "%")


def render_postmortem(
    pm: Postmortem,
    *,
    severity: Severity | str | None = None,
    services: Sequence[str] = (),
    generated_at: datetime | None = None,
) -> str:
    """The draft as markdown with YAML front matter, sections in Google's order."""
    meta = {
        "incident": pm.incident_id,
        "title": pm.title,
        "status": pm.status,
        "severity": str(severity) if severity is not None else None,
        "services": list(services),
        "generated_at": iso(generated_at or datetime.now(UTC)),
    }
    lessons = "\n\n".join(
        f"### {heading}\n\n{bullets(inline(x) for x in items) if items else empty}"
        for heading, items, empty in (
            ("What went well", pm.went_well, "Nothing recorded."),
            ("What went wrong", pm.went_wrong, "Nothing recorded."),
            ("Where we got lucky", pm.lucky, "Nothing in the record points to luck."),
        )
    )
    items = (table(["Kind", "Action item", "Owner"],
                   ([i.kind, i.description, i.owner] for i in pm.action_items))
             if pm.action_items else "No action items follow from the record; add any in review.")
    sections = [
        ("Summary", guard_block(pm.summary)),
        ("Impact", guard_block(pm.impact)),
        ("Root Causes", guard_block(pm.root_causes)),
        ("Trigger", guard_block(pm.trigger)),
        ("Resolution", guard_block(pm.resolution)),
        ("Detection", guard_block(pm.detection)),
        ("Action Items", items),
        ("Lessons Learned", lessons),
        ("Timeline", table(["Time", "Event", "Message"],
                           ([fmt_time(e.at), e.kind, e.message] for e in pm.timeline))),
    ]
    body = "\n\n".join(f"## {name}\n\n{text}" for name, text in sections)
    return (f"{front_matter(meta)}\n# Postmortem (draft): {inline(pm.title)}\n\n"
            f"{body}\n")


# Why each kind matters, for an Outcome Owner who was not on call.
_WHY = {
    "repeated_incidents": (
        "The same part of production keeps failing. Each incident below was handled on its "
        "own; together they say the fix belongs in the product, not in operations."
    ),
    "novel_failure": (
        "opsloop met a failure that none of its runbooks explains and could not diagnose it "
        "with confidence, so a human had to. Until a runbook exists, the next occurrence "
        "will be escalated the same way."
    ),
    "verification_failed": (
        "A remediation ran but health did not come back within the verification window: the "
        "fix did not hold. Either the diagnosis or the remediation is wrong for this failure."
    ),
    "recurring_fix": (
        "The same action keeps repairing the same service. Each run restores health, which "
        "hides that the cause is still there; restarts masking a memory leak are the classic "
        "case."
    ),
    "approval_bottleneck": (
        "A proposed action waited a long time for a human, or a human turned it down. Either "
        "way, the remediation policy and the people it routes to disagree about what opsloop "
        "should do."
    ),
    "toil": (
        "The automation keeps doing the same repair. It works, but every run is a symptom of "
        "something that could be fixed once."
    ),
}


def render_signal(signal: Signal) -> str:
    """The signal as markdown: front matter for tools, prose for the Outcome Owner."""
    meta = {
        "id": signal.id,
        "kind": signal.kind,
        "title": signal.title,
        "created_at": iso(signal.created_at),
        "incidents": list(signal.incidents),
        "evidence": list(signal.evidence),
        "suggested_mission": signal.suggested_mission,
    }
    count = len(signal.incidents)
    why = _WHY.get(signal.kind, "opsloop noticed a pattern worth a look.")
    return (
        f"{front_matter(meta)}\n# {inline(signal.title)}\n\n{why}\n\n"
        f"This signal rests on {count} incident{'s' if count != 1 else ''}: "
        f"{', '.join(inline(i) for i in signal.incidents) or 'none recorded'}.\n\n"
        f"## Evidence\n\n{bullets(inline(e, 400) for e in signal.evidence)}\n\n"
        f"## Suggested mission\n\n{inline(signal.suggested_mission, 400)}\n"
    )
