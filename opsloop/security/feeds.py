"""Feeds: OSV records (one, a list, or an osv.dev `{"vulns": [...]}` answer) and the CISA
Known Exploited Vulnerabilities catalogue."""

from __future__ import annotations

from typing import Any

from opsloop.security.finding import Affected, Finding, IntakeProblem
from opsloop.security.records import Record, Skip, purl_base
from opsloop.security.versions import ranges_from_events


def _osv_affected(rec: Record, index: int, data: Any) -> Affected:
    item = Record(rec.file, f"{rec.where}.affected[{index}]", data, rec.problems)
    package = item.obj("package")
    name = package.get("name")
    if not isinstance(name, str) or not name:
        item.fail("package.name", repr(name), "missing; an affected entry names its package")
    ranges = []
    for r_index, raw in enumerate(item.items("ranges")):
        span = Record(rec.file, f"{item.where}.ranges[{r_index}]", raw, rec.problems)
        events = span.items("events", required=True)
        if not all(isinstance(e, dict) for e in events):
            span.fail("events", repr(events)[:60], "every event must be an object")
        ranges.extend(ranges_from_events(events))
    versions = [str(v) for v in item.items("versions")]
    if not ranges and not versions:
        item.fail("ranges", "", "neither ranges nor versions: nothing says what is affected")
    purl = package.get("purl") if isinstance(package.get("purl"), str) else ""
    return Affected(name=str(name), purl=purl_base(purl) if purl else "",
                    ecosystem=str(package.get("ecosystem", "")), ranges=ranges,
                    versions=versions)


def osv_record(file: str, where: str, data: Any, problems: list[IntakeProblem]) -> Finding:
    """One OSV record (schema 1.x) as a finding; raises Skip after recording a problem."""
    rec = Record(file, where, data, problems)
    vuln_id = rec.text("id")
    vector, score = "", None
    for s_index, sev in enumerate(rec.items("severity")):
        entry = Record(file, f"{where}.severity[{s_index}]", sev, problems)
        candidate = entry.text("score")
        value = entry.score(candidate, "score")
        if value is not None and (score is None or value > score):
            vector, score = candidate, value
    affected = [_osv_affected(rec, i, a) for i, a in enumerate(rec.items("affected"))]
    specific = rec.obj("database_specific")
    return Finding(
        id=vuln_id, aliases=sorted({str(a) for a in rec.items("aliases")} - {vuln_id}),
        summary=rec.text("summary", required=False) or rec.text("details", required=False),
        cvss_score=score, cvss_vector=vector,
        scanner_severity=str(specific.get("severity", "")),
        affected=affected, sources=[f"osv:{file}"])


def read_osv(file: str, doc: Any, problems: list[IntakeProblem]) -> list[Finding]:
    if isinstance(doc, dict) and isinstance(doc.get("vulns"), list):
        records, prefix = doc["vulns"], "vulns"
    elif isinstance(doc, list):
        records, prefix = doc, ""
    else:
        records, prefix = [doc], ""
    findings = []
    for index, data in enumerate(records):
        where = f"{prefix}[{index}]" if prefix or len(records) > 1 else "record"
        try:
            findings.append(osv_record(file, where, data, problems))
        except Skip:
            continue
    return findings


def read_kev(file: str, doc: dict[str, Any], problems: list[IntakeProblem]) -> dict[str, str]:
    """CVE ID -> due date, from a catalogue in CISA's KEV JSON format."""
    known: dict[str, str] = {}
    for index, data in enumerate(doc.get("vulnerabilities") or []):
        try:
            rec = Record(file, f"vulnerabilities[{index}]", data, problems)
            cve = rec.text("cveID")
            if not cve.upper().startswith("CVE-"):
                rec.fail("cveID", cve, "is not a CVE ID")
            known[cve.upper()] = rec.text("dueDate", required=False)
        except Skip:
            continue
    return known
