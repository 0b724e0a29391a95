"""Any team's markdown runbook as a `Runbook`: opsloop's own format strictly, others leniently.

Front matter with `hypotheses` or `specialist` is opsloop's own format and is validated
strictly. Everything else is read leniently and indexed for people to read: alert names sit
in the title, an `Alert:` line or the file name (`KubePodCrashLooping.md`,
`kube-pod-crash-looping.md`).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from opsloop.runbooks.format import Runbook, RunbookError, RunbookProblem, validate_runbook
from opsloop.runbooks.markdown import FrontMatterError, split_front_matter, split_sections

_OPSLOOP_KEYS = ("hypotheses", "specialist")  # either one marks opsloop's own format
_ALERT_KEYS = ("alerts", "alert", "alertname", "alert_name", "alertnames")
# An alert name: one identifier with at least two capitals and a lower-case letter
# (KubePodCrashLooping, etcdNoLeader), not an ordinary capitalised word.
_ALERT_NAME = re.compile(r"^(?=(?:[^A-Z]*[A-Z]){2})(?=.*[a-z])[A-Za-z][A-Za-z0-9_:]*$")
_ALERT_LINE = re.compile(r"(?im)^\W*alert(?:\s*name)?\W*?[:=]\W*([A-Za-z][A-Za-z0-9_:]*)")
_RUN = re.compile(r"[A-Za-z0-9]+")
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def name_parts(name: str) -> list[str]:
    """Words of a name: CamelCase, kebab-case and snake_case alike ("5xx" stays whole)."""
    parts: list[str] = []
    for run in _RUN.findall(name):
        parts += _CAMEL_PART.findall(run) if any(c.isupper() for c in run) else [run]
    return [p.lower() for p in parts]


def slug(name: str) -> str:
    return "-".join(name_parts(name)) or "runbook"


@functools.lru_cache(maxsize=8192)
def alert_key(name: str) -> str:
    """How alert names compare: `KubePodCrashLooping` == `kube-pod-crash-looping`."""
    return "".join(name_parts(name))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[,\s]+", value) if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if isinstance(v, str | int) and str(v).strip()]
    return []


def _strings_list(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str)] if isinstance(value, list) else []


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
    try:
        meta, body = split_front_matter(text)
    except FrontMatterError as exc:
        raise RunbookError([RunbookProblem(file=file, field=exc.where,
                                           message=exc.problem)]) from exc
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


def parse_runbook(path: Path, text: str | None = None) -> Runbook:
    """Parse one runbook file (any markdown); raises RunbookError naming the file and field."""
    return load_runbook(path, path.read_text(encoding="utf-8") if text is None else text)


def match_keys(rb: Runbook) -> set[str]:
    """Alert-name keys that exactly identify the runbook: its alerts and a multi-word file name."""
    keys = {alert_key(a) for a in rb.alerts}
    stem = Path(rb.file).stem if rb.file else rb.id
    if len(name_parts(stem)) >= 2:  # "database.md" names no alert; "disk-filling.md" may
        keys.add(alert_key(stem))
    return {k for k in keys if k}
