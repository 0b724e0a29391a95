"""Reading markdown documents: front matter (YAML or TOML) and sections, any heading style.

Runbooks come from many teams: some with Hugo front matter (`title:`, `weight:`, YAML between
`---` or TOML between `+++`), some with none, headings at whatever level they like. The
learn step's own documents (postmortems, signals) are read back with the same two functions,
so there is one front-matter reader and one section splitter.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any, NamedTuple

import yaml

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FRONT_MATTER = (("---", "YAML"), (r"\+\+\+", "TOML"))
# libyaml's safe loader when PyYAML was built with it: the same documents, ten times faster
# (an index of thousands of runbooks reads every front matter when it opens).
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FrontMatterError(ValueError):
    """Front matter that does not parse, or is not a mapping; `where` names the line."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class Sections(NamedTuple):
    title: str | None  # the leading `# Title`, if the document starts with one
    intro: str  # text between the title and the first section
    sections: list[tuple[str, str]]  # (heading, text) in order


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(metadata, body): YAML between `---` lines or TOML between `+++` lines, or ({}, text).

    Raises FrontMatterError when the block does not parse or does not hold a mapping.
    """
    found = _front_matter_block(text)
    if found is None:
        return {}, text
    kind, m = found
    try:
        meta = _yaml(m.group(1)) if kind == "YAML" else tomllib.loads(m.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 2}" if mark is not None else "front matter"  # after `---`
        raise FrontMatterError(where, f"invalid YAML: {getattr(exc, 'problem', None) or exc}"
                               ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise FrontMatterError("front matter", f"invalid TOML: {exc}") from exc
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise FrontMatterError("front matter", "front matter must be a mapping")
    return meta, m.group(2)


def _yaml(block: str) -> Any:
    try:
        return yaml.load(block, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        # The pure-Python loader says where a document is wrong as it always has (libyaml
        # places some marks a line later): worth its time only when there is an error.
        return yaml.safe_load(block)


def _front_matter_block(text: str) -> tuple[str, re.Match[str]] | None:
    """("YAML" or "TOML", match of (block, body)) when the text opens with front matter."""
    for fence, kind in _FRONT_MATTER:
        m = re.match(rf"\A{fence}[ \t]*\r?\n(.*?)\r?\n{fence}[ \t]*(?:\r?\n|\Z)(.*)\Z", text,
                     re.S)
        if m is not None:
            return kind, m
    return None


def split_sections(body: str) -> Sections:
    """Split at the shallowest heading level used below the title (code blocks ignored)."""
    lines = body.splitlines()
    heads: list[tuple[int, int, str]] = []  # (line, level, text)
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            heads.append((i, len(m.group(1)), _clean(m.group(2))))
    title = None
    if heads and heads[0][1] == 1 and not any(h[1] == 1 for h in heads[1:]):
        title = heads[0][2]
        start, heads = heads[0][0] + 1, heads[1:]
    else:
        start = 0
    if not heads:
        return Sections(title, "\n".join(lines[start:]).strip(), [])
    level = min(h[1] for h in heads)
    cuts = [h for h in heads if h[1] <= level]
    intro = "\n".join(lines[start:cuts[0][0]]).strip()
    sections = [(head, "\n".join(lines[line + 1 : nxt]).strip())
                for (line, _, head), nxt in zip(cuts, [c[0] for c in cuts[1:]] + [len(lines)],
                                                strict=True)]
    return Sections(title, intro, sections)


def _clean(heading: str) -> str:
    return re.sub(r"[*_`]", "", heading).strip()
