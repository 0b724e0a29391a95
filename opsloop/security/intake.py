"""Read scanner reports and feeds of any supported format into one merged list of findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from opsloop.security.feeds import read_kev, read_osv
from opsloop.security.finding import (
    Finding,
    IntakeError,
    IntakeProblem,
    mark_known_exploited,
    merge,
)
from opsloop.security.scanners import read_grype, read_trivy

FORMATS = ("trivy", "grype", "osv", "kev")


class Intake(BaseModel):
    """What a set of files said: merged findings, the KEV catalogue, and unreadable records."""

    findings: list[Finding] = Field(default_factory=list)
    known_exploited: dict[str, str] = Field(default_factory=dict)  # CVE ID -> due date
    problems: list[IntakeProblem] = Field(default_factory=list)


def detect(doc: Any) -> str:
    """Which format a parsed document is in, or '' when none."""
    if isinstance(doc, dict):
        if "Results" in doc and ("SchemaVersion" in doc or "ArtifactName" in doc):
            return "trivy"
        if "matches" in doc:
            return "grype"
        if "catalogVersion" in doc and "vulnerabilities" in doc:
            return "kev"
        if "vulns" in doc or ("id" in doc and ("affected" in doc or "modified" in doc)):
            return "osv"
    if isinstance(doc, list) and doc and all(isinstance(d, dict) and "id" in d for d in doc):
        return "osv"
    return ""


def load(path: Path) -> tuple[str, Any]:
    """(format, document) of one file; IntakeError naming the file when it is unusable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IntakeError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise IntakeError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise IntakeError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from None
    kind = detect(doc)
    if not kind:
        raise IntakeError(
            f"{path}: not a format opsloop reads ({', '.join(FORMATS)}): expected Trivy "
            "`Results`, Grype `matches`, an OSV record with `id`, or a KEV `vulnerabilities` "
            "catalogue")
    return kind, doc


def read(paths: list[Path]) -> Intake:
    """Findings from every file, merged by ID and alias and marked from any KEV catalogue
    among them. A bad record is reported and skipped; a bad file raises IntakeError."""
    raw: list[Finding] = []
    kev: dict[str, str] = {}
    problems: list[IntakeProblem] = []
    for path in paths:
        kind, doc = load(path)
        name = path.name
        if kind == "trivy":
            raw.extend(read_trivy(name, doc, problems))
        elif kind == "grype":
            raw.extend(read_grype(name, doc, problems))
        elif kind == "osv":
            raw.extend(read_osv(name, doc, problems))
        else:
            kev.update(read_kev(name, doc, problems))
    findings = mark_known_exploited(merge(raw), kev)
    return Intake(findings=findings, known_exploited=kev, problems=problems)
