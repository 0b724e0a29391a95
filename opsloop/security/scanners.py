"""Scanner reports: Trivy JSON (`Results[].Vulnerabilities[]`) and Grype JSON (`matches[]`).

A scanner reports the version it found and the version that fixes it. What it does not say
is where the vulnerable span starts, so the finding covers every version below the fix (or
every version, when no fix exists); matching against an SBOM narrows it to what runs.
"""

from __future__ import annotations

import re
from typing import Any

from opsloop.security.finding import Affected, Finding, IntakeProblem
from opsloop.security.records import Record, Skip, purl_base
from opsloop.security.versions import VersionRange, version_key


def _line_after(version: str) -> str:
    """The first version of the release line after `version`'s: 2.12.2 -> 2.13."""
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]]
    return f"{numbers[0]}.{numbers[1] + 1}" if len(numbers) == 2 else "0"


def _spans(fixed: list[str]) -> list[VersionRange]:
    """One span per release line a scanner lists a fix for ("2.15.0, 2.12.2"): each fix
    covers the versions from the line after the previous fix up to itself, so 2.12.3 is not
    taken for vulnerable because 2.15.0 is also listed."""
    spans, start = [], "0"
    for fix in sorted(fixed, key=version_key):
        spans.append(VersionRange(introduced=start, fixed=fix))
        start = _line_after(fix)
    return spans or [VersionRange()]


def _affected(name: str, purl: str, installed: str, fixed: list[str]) -> Affected:
    ranges = _spans(fixed)
    return Affected(name=name, purl=purl_base(purl) if purl else "",
                    ranges=ranges, versions=[installed] if installed else [])


def _trivy_vuln(file: str, where: str, data: Any, problems: list[IntakeProblem]) -> Finding:
    rec = Record(file, where, data, problems)
    vuln_id = rec.text("VulnerabilityID")
    name = rec.text("PkgName")
    installed = rec.text("InstalledVersion")
    # FixedVersion lists one fix per release line: "2.15.0, 2.12.2".
    fixed = [v.strip() for v in rec.text("FixedVersion", required=False).split(",") if v.strip()]
    ident = rec.obj("PkgIdentifier")
    purl = ident.get("PURL") if isinstance(ident.get("PURL"), str) else ""
    vector, score = "", None
    cvss = rec.obj("CVSS")
    # NVD's score when it has one, as Trivy itself prefers; otherwise the highest given.
    for source in sorted(cvss, key=lambda s: (s != "nvd", s)):
        entry = cvss[source] if isinstance(cvss[source], dict) else {}
        value = rec.number(entry.get("V3Score"), f"CVSS.{source}.V3Score")
        if value is not None and (score is None or source == "nvd"):
            vector, score = str(entry.get("V3Vector", "")), value
            if source == "nvd":
                break
    return Finding(
        id=vuln_id, aliases=sorted({str(v) for v in rec.items("VendorIDs")} - {vuln_id}),
        summary=rec.text("Title", required=False) or rec.text("Description", required=False),
        cvss_score=score, cvss_vector=vector,
        scanner_severity=rec.text("Severity", required=False),
        affected=[_affected(name, str(purl), installed, fixed)], sources=[f"trivy:{file}"])


def read_trivy(file: str, doc: dict[str, Any], problems: list[IntakeProblem]) -> list[Finding]:
    findings = []
    results = doc.get("Results")
    if not isinstance(results, list):
        problems.append(IntakeProblem(file=file, where="document", field="Results",
                                      value=repr(results)[:60], message="must be a list"))
        return []
    for r_index, result in enumerate(results):
        vulns = result.get("Vulnerabilities") if isinstance(result, dict) else None
        for v_index, data in enumerate(vulns or []):
            try:
                findings.append(_trivy_vuln(
                    file, f"Results[{r_index}].Vulnerabilities[{v_index}]", data, problems))
            except Skip:
                continue
    return findings


def _grype_match(file: str, where: str, data: Any, problems: list[IntakeProblem]) -> Finding:
    rec = Record(file, where, data, problems)
    vuln = Record(file, f"{where}.vulnerability", rec.obj("vulnerability"), problems)
    vuln_id = vuln.text("id")
    artifact = Record(file, f"{where}.artifact", rec.obj("artifact"), problems)
    name, installed = artifact.text("name"), artifact.text("version")
    fix = vuln.obj("fix")
    fixed = [str(v) for v in fix.get("versions") or []] if fix.get("state") == "fixed" else []
    vector, score = "", None
    for c_index, entry in enumerate(vuln.items("cvss")):
        metrics = entry.get("metrics", {}) if isinstance(entry, dict) else {}
        value = vuln.number(metrics.get("baseScore"), f"cvss[{c_index}].metrics.baseScore")
        if value is not None and (score is None or value > score):
            vector, score = str(entry.get("vector", "")), value
    epss = None
    for e_index, entry in enumerate(vuln.items("epss")):
        value = vuln.number(entry.get("epss") if isinstance(entry, dict) else entry,
                            f"epss[{e_index}].epss")
        epss = value if epss is None or (value is not None and value > epss) else epss
    related = [r.get("id") for r in rec.items("relatedVulnerabilities") if isinstance(r, dict)]
    return Finding(
        id=vuln_id, aliases=sorted({str(r) for r in related if r} - {vuln_id}),
        summary=vuln.text("description", required=False),
        cvss_score=score, cvss_vector=vector,
        scanner_severity=vuln.text("severity", required=False), epss=epss,
        known_exploited=bool(vuln.items("knownExploited")),
        affected=[_affected(name, artifact.text("purl", required=False), installed, fixed)],
        sources=[f"grype:{file}"])


def read_grype(file: str, doc: dict[str, Any], problems: list[IntakeProblem]) -> list[Finding]:
    findings = []
    for index, data in enumerate(doc.get("matches") or []):
        try:
            findings.append(_grype_match(file, f"matches[{index}]", data, problems))
        except Skip:
            continue
    return findings
