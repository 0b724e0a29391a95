"""Postmortem drafts as people review them: read, edit the markdown, mark reviewed and
published. Who did what, and when, is kept in the draft's own front matter (`status`,
`edited_by`/`edited_at`, `reviewed_by`/`reviewed_at`, `published_by`/`published_at` and a
`review` history), so the file stays the one record."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from opsloop.agents.markdown import atomic_write, front_matter, iso
from opsloop.files import documents
from opsloop.runbooks.markdown import FrontMatterError, split_front_matter

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.md")
MAX_MARKDOWN_CHARS = 512 * 1024
DRAFT, REVIEWED, PUBLISHED = "draft", "reviewed", "published"
# Where each mark may be made from: a published postmortem is final.
MARKS = {REVIEWED: {DRAFT}, PUBLISHED: {DRAFT, REVIEWED}}
# Raw HTML in a draft is shown as text, and markdown-it refuses javascript: and data: links.
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


class PostmortemError(ValueError):
    """A postmortem that cannot be read or changed as asked; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Draft:
    name: str
    meta: dict[str, Any]
    body: str
    version: str  # a hash of the file as read: an edit made against another is refused

    @property
    def status(self) -> str:
        value = self.meta.get("status")
        return value if value in (REVIEWED, PUBLISHED) else DRAFT

    @property
    def html(self) -> str:
        return str(_MD.render(self.body))


def _path(folder: Path, name: str) -> Path:
    path = folder / name
    if not NAME.fullmatch(name) or path not in documents(folder, name):
        raise PostmortemError(404, f"no postmortem named {name[:200]!r}")
    return path


def read(folder: Path, name: str) -> Draft:
    text = _path(folder, name).read_text(encoding="utf-8")
    try:
        meta, body = split_front_matter(text)
    except FrontMatterError as exc:
        raise PostmortemError(409, f"{name}: its front matter cannot be read ({exc}); fix "
                                   "the file by hand") from None
    return Draft(name, meta, body.lstrip("\n"),
                 hashlib.sha256(text.encode()).hexdigest()[:16])


def listing(folder: Path) -> list[Draft]:
    drafts = []
    for path in documents(folder):
        try:
            drafts.append(read(folder, path.name))
        except PostmortemError:
            continue  # a draft whose front matter is broken is still listed by the API
    return drafts


def _write(folder: Path, draft: Draft, meta: dict[str, Any], body: str) -> Draft:
    text = front_matter(meta) + "\n" + body.rstrip("\n") + "\n"
    atomic_write(folder / draft.name, text)
    return read(folder, draft.name)


def _current(folder: Path, name: str, version: str) -> Draft:
    draft = read(folder, name)
    if version != draft.version:
        raise PostmortemError(409, f"{name} changed since you opened it (someone saved it, "
                                   "or the loop redrafted it): reload, then make your change "
                                   "again")
    return draft


def _history(meta: dict[str, Any], what: str, by: str, at: datetime) -> list[Any]:
    earlier = meta.get("review")
    return [*(earlier if isinstance(earlier, list) else []),
            {"status": what, "by": by, "at": iso(at)}]


def save(folder: Path, name: str, markdown: str, version: str, by: str,
         at: datetime | None = None) -> Draft:
    """Replace the draft's text. Editing a reviewed draft returns it to draft: the review was
    of other words. A published postmortem is not edited."""
    if len(markdown) > MAX_MARKDOWN_CHARS:
        raise PostmortemError(413, f"the postmortem is over {MAX_MARKDOWN_CHARS} characters")
    if not markdown.strip():
        raise PostmortemError(422, "the postmortem is empty: write it, or leave it as it was")
    draft = _current(folder, name, version)
    if draft.status == PUBLISHED:
        raise PostmortemError(409, f"{name} is published ({draft.meta.get('published_by')}, "
                                   f"{draft.meta.get('published_at')}); it is not edited")
    when = at or datetime.now(UTC).replace(microsecond=0)
    meta = {**draft.meta, "status": DRAFT, "edited_by": by, "edited_at": iso(when),
            "review": _history(draft.meta, "edited", by, when)}
    return _write(folder, draft, meta, markdown.replace("\r\n", "\n"))


def mark(folder: Path, name: str, what: str, version: str, by: str,
         at: datetime | None = None) -> Draft:
    """Mark the draft reviewed or published, by whom and when."""
    if what not in MARKS:
        raise PostmortemError(422, f"mark must be one of {', '.join(MARKS)}, not {what!r}")
    draft = _current(folder, name, version)
    if draft.status not in MARKS[what]:
        raise PostmortemError(409, f"{name} is {draft.status}; it cannot be marked {what}")
    when = at or datetime.now(UTC).replace(microsecond=0)
    meta = {**draft.meta, "status": what, f"{what}_by": by, f"{what}_at": iso(when),
            "review": _history(draft.meta, what, by, when)}
    return _write(folder, draft, meta, draft.body)
