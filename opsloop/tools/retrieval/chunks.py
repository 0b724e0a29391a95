"""How a runbook is cut for the index: a summary chunk, then one chunk per section."""

from __future__ import annotations

import re
from typing import NamedTuple

from opsloop.runbooks.format import Runbook
from opsloop.runbooks.markdown import split_sections

_MAX_CHUNK = 1200  # characters; longer sections are split at paragraph breaks
CHUNKER_VERSION = "2"  # part of every stored hash: a new chunker re-indexes everything


class Chunk(NamedTuple):
    section: str
    text: str


def chunk_runbook(rb: Runbook) -> list[Chunk]:
    """A summary chunk (what the runbook is about) and one chunk per section."""
    parts = split_sections(rb.body)
    summary = [rb.title]
    if rb.alerts:
        summary.append("Alerts: " + ", ".join(rb.alerts))
    if rb.symptoms:
        summary.append("Symptoms: " + "; ".join(rb.symptoms))
    if rb.hypotheses:
        summary.append("Causes: " + "; ".join(f"{h.category.replace('_', ' ')}: {h.cause}"
                                              for h in rb.hypotheses))
    if parts.intro:
        summary.append(parts.intro[:400])
    chunks = [Chunk("summary", "\n".join(summary))]
    for head, text in parts.sections:
        for n, piece in enumerate(_pieces(text), start=1):
            name = head if n == 1 else f"{head} ({n})"
            chunks.append(Chunk(name, f"{rb.title}\n{head}\n{piece}"))
    return chunks


def _pieces(text: str) -> list[str]:
    if not text:
        return []
    out: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n", text):
        if current and len(current) + len(para) > _MAX_CHUNK:
            out.append(current)
            current = ""
        current = f"{current}\n\n{para}" if current else para
    return [*out, current] if current else out
