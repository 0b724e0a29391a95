"""Reading any team's markdown runbook: front matter or none, any heading style.

Teams keep runbooks as plain markdown: some with Hugo front matter (`title:`, `weight:`,
YAML between `---` or TOML between `+++`), some with none; alert names sit in the title,
an `Alert:` line or the file name (`KubePodCrashLooping.md`, `kube-pod-crash-looping.md`).
Front matter with `hypotheses` or `specialist` is opsloop's own format and is validated
strictly; everything else is read leniently and indexed for people to read.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from opsloop.tools.runbook_format import Runbook, RunbookError, RunbookProblem, validate_runbook

_OPSLOOP_KEYS = ("hypotheses", "specialist")  # either one marks opsloop's own format
_ALERT_KEYS = ("alerts", "alert", "alertname", "alert_name", "alertnames")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# An alert name: one identifier with at least two capitals and a lower-case letter
# (KubePodCrashLooping, etcdNoLeader), not an ordinary capitalised word.
_ALERT_NAME = re.compile(r"^(?=(?:[^A-Z]*[A-Z]){2})(?=.*[a-z])[A-Za-z][A-Za-z0-9_:]*$")
_ALERT_LINE = re.compile(r"(?im)^\W*alert(?:\s*name)?\W*?[:=]\W*([A-Za-z][A-Za-z0-9_:]*)")
_RUN = re.compile(r"[A-Za-z0-9]+")
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MAX_CHUNK = 1200  # characters; longer sections are split at paragraph breaks
CHUNKER_VERSION = "2"  # part of every stored hash: a new chunker re-indexes everything


class Sections(NamedTuple):
    title: str | None  # the leading `# Title`, if the document starts with one
    intro: str  # text between the title and the first section
    sections: list[tuple[str, str]]  # (heading, text) in order


class Chunk(NamedTuple):
    section: str
    text: str


def name_parts(name: str) -> list[str]:
    """Words of a name: CamelCase, kebab-case and snake_case alike ("5xx" stays whole)."""
    parts: list[str] = []
    for run in _RUN.findall(name):
        parts += _CAMEL_PART.findall(run) if any(c.isupper() for c in run) else [run]
    return [p.lower() for p in parts]


def slug(name: str) -> str:
    return "-".join(name_parts(name)) or "runbook"


def alert_key(name: str) -> str:
    """How alert names compare: `KubePodCrashLooping` == `kube-pod-crash-looping`."""
    return "".join(name_parts(name))


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


def _front_matter(file: str, text: str) -> tuple[dict[str, Any], str]:
    """(metadata, body); YAML between `---` lines or TOML between `+++` lines, or none."""
    fences = (("---", "YAML"), (r"\+\+\+", "TOML"))
    matches = [(kind, re.match(rf"\A{f}[ \t]*\r?\n(.*?)\r?\n{f}[ \t]*(?:\r?\n|\Z)(.*)\Z",
                               text, re.S)) for f, kind in fences]
    found = [(kind, m) for kind, m in matches if m is not None]
    if not found:
        return {}, text
    kind, m = found[0]
    try:
        meta = yaml.safe_load(m.group(1)) if kind == "YAML" else tomllib.loads(m.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 2}" if mark is not None else "front matter"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RunbookError([RunbookProblem(file=file, field=where,
                                           message=f"invalid YAML: {problem}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise RunbookError([RunbookProblem(file=file, field="front matter",
                                           message=f"invalid TOML: {exc}")]) from exc
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise RunbookError([RunbookProblem(file=file, field="front matter",
                                           message="front matter must be a mapping")])
    return meta, m.group(2)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[,\s]+", value) if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if isinstance(v, str | int) and str(v).strip()]
    return []


def _alerts(meta: dict[str, Any], titles: list[str], stem: str, body: str) -> list[str]:
    found = [a for key in _ALERT_KEYS for a in _strings(meta.get(key))]
    for title in titles:  # the front matter title and the `# Heading` may differ
        bare = re.sub(r"(?i)^alert\s*[:\-]\s*", "", title).strip("` ")
        found += [bare] if _ALERT_NAME.match(bare) else []
        found += [t for t in re.findall(r"`([^`\s]+)`", title) if _ALERT_NAME.match(t)]
    found += [stem] if _ALERT_NAME.match(stem) else []
    found += _ALERT_LINE.findall("\n".join(body.splitlines()[:30]))
    out: list[str] = []
    for name in found:
        if name and name not in out:
            out.append(name)
    return out


def load_runbook(path: Path, text: str) -> Runbook:
    """Any markdown runbook as a Runbook; RunbookError names the file and the field."""
    file = str(path)
    meta, body = _front_matter(file, text)
    if any(key in meta for key in _OPSLOOP_KEYS):
        return validate_runbook(file, {**meta, "file": file, "body": body})
    parts = split_sections(body)
    given_id = meta.get("id")
    title = meta.get("title") if isinstance(meta.get("title"), str) else None
    title = (title or parts.title or " ".join(name_parts(path.stem)).capitalize()).strip()
    return validate_runbook(file, {
        "id": given_id if isinstance(given_id, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*",
                                                                     given_id) else slug(path.stem),
        "title": title,
        "alerts": _alerts(meta, [title, *([parts.title] if parts.title else [])], path.stem,
                          body),
        "services": _strings(meta.get("services", meta.get("service"))) or ["*"],
        "symptoms": _strings_list(meta.get("symptoms")),
        "file": file, "body": body,
    })


def _strings_list(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str)] if isinstance(value, list) else []


def match_keys(rb: Runbook) -> set[str]:
    """Alert-name keys that exactly identify the runbook: its alerts and a multi-word file name."""
    keys = {alert_key(a) for a in rb.alerts}
    stem = Path(rb.file).stem if rb.file else rb.id
    if len(name_parts(stem)) >= 2:  # "database.md" names no alert; "disk-filling.md" may
        keys.add(alert_key(stem))
    return {k for k in keys if k}


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
