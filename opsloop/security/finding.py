"""One vulnerability finding, whichever scanner or feed reported it, and how reports merge."""

from __future__ import annotations

from pydantic import BaseModel, Field

from opsloop.security.versions import VersionRange


class Affected(BaseModel):
    """A package a finding applies to and the versions of it that are vulnerable."""

    name: str
    purl: str = ""  # pkg:type/namespace/name, without version or qualifiers
    ecosystem: str = ""
    ranges: list[VersionRange] = Field(default_factory=list)
    versions: list[str] = Field(default_factory=list)  # affected versions listed one by one

    def fixed_versions(self) -> list[str]:
        return [r.fixed for r in self.ranges if r.fixed is not None]


class Finding(BaseModel):
    """A vulnerability, named by its CVE when any report gives one, with every other ID it
    is known by; scores are the highest any source reported."""

    id: str
    aliases: list[str] = Field(default_factory=list)
    summary: str = ""
    cvss_score: float | None = None
    cvss_vector: str = ""
    scanner_severity: str = ""  # the scanner's own label (CRITICAL, High, ...), for display
    epss: float | None = None  # exploit prediction score, 0..1, when a source gives one
    known_exploited: bool = False
    kev_due_date: str = ""
    affected: list[Affected] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)  # "trivy:scan.json", "osv:GHSA-...json"

    def ids(self) -> set[str]:
        return {self.id, *self.aliases}

    def has_fix(self) -> bool:
        return any(a.fixed_versions() for a in self.affected)


class IntakeProblem(BaseModel):
    """One record that could not be read: where it is and what was wrong with it."""

    file: str
    where: str  # the record's path in the document, e.g. Results[0].Vulnerabilities[3]
    field: str
    value: str = ""
    message: str

    def __str__(self) -> str:
        shown = f" = {self.value}" if self.value else ""
        return f"{self.file}: {self.where}.{self.field}{shown}: {self.message}"


class IntakeError(ValueError):
    """A whole file that cannot be read (not JSON, or no known format); names the file."""


def _canonical(ids: set[str]) -> str:
    cves = sorted(i for i in ids if i.upper().startswith("CVE-"))
    return cves[0] if cves else sorted(ids)[0]


def _better(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _merge_two(a: Finding, b: Finding) -> Finding:
    affected = list(a.affected)
    for item in b.affected:
        if item not in affected:
            affected.append(item)
    score, vector = (a.cvss_score, a.cvss_vector)
    if b.cvss_score is not None and (score is None or b.cvss_score > score):
        score, vector = b.cvss_score, b.cvss_vector
    return a.model_copy(update={
        "aliases": sorted(a.ids() | b.ids()),
        "summary": a.summary or b.summary,
        "cvss_score": score,
        "cvss_vector": vector,
        "scanner_severity": a.scanner_severity or b.scanner_severity,
        "epss": _better(a.epss, b.epss),
        "known_exploited": a.known_exploited or b.known_exploited,
        "kev_due_date": a.kev_due_date or b.kev_due_date,
        "affected": affected,
        "sources": sorted(set(a.sources) | set(b.sources)),
    })


def merge(findings: list[Finding]) -> list[Finding]:
    """One finding per vulnerability: reports sharing any ID or alias are merged (so a CVE
    that Trivy names and Grype reaches through a GHSA alias is one finding), sorted by ID."""
    groups: list[Finding] = []
    for finding in findings:
        overlapping = [g for g in groups if g.ids() & finding.ids()]
        merged = finding
        for group in overlapping:
            merged = _merge_two(group, merged)
            groups.remove(group)
        groups.append(merged)
    result = []
    for group in groups:
        ids = group.ids()
        canonical = _canonical(ids)
        result.append(group.model_copy(
            update={"id": canonical, "aliases": sorted(ids - {canonical})}))
    return sorted(result, key=lambda f: f.id)


def mark_known_exploited(findings: list[Finding], kev: dict[str, str]) -> list[Finding]:
    """Findings with `known_exploited` set where any of their IDs is in a KEV catalogue
    (CVE ID -> the catalogue's due date)."""
    marked = []
    for finding in findings:
        hit = sorted(i for i in finding.ids() if i.upper() in kev)
        if hit:
            finding = finding.model_copy(
                update={"known_exploited": True, "kev_due_date": kev[hit[0].upper()]})
        marked.append(finding)
    return marked
