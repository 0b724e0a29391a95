"""Scanner reports and feeds in their real formats become one deduplicated list of findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsloop.security.cvss import CvssError, base_score
from opsloop.security.finding import Finding, IntakeError
from opsloop.security.intake import read
from opsloop.security.versions import compare

DATA = Path(__file__).parent / "data" / "security"


def _by_id(paths: list[str]) -> dict[str, Finding]:
    return {f.id: f for f in read([DATA / p for p in paths]).findings}


@pytest.mark.parametrize(("vector", "score"), [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
    ("CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:H", 6.6),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
    ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
])
def test_cvss_base_scores_match_the_specification(vector: str, score: float) -> None:
    assert base_score(vector) == score


def test_a_broken_cvss_vector_names_the_bad_part() -> None:
    with pytest.raises(CvssError, match="AV:X"):
        base_score("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    with pytest.raises(CvssError, match="lacks base metric"):
        base_score("CVSS:3.1/AV:N/AC:L")


@pytest.mark.parametrize(("a", "b", "order"), [
    ("2.10.0", "2.9.1", 1), ("2.0.0-rc1", "2.0.0", -1), ("1.0", "1.0.0", 0),
    ("0.22.0", "0.23.0", -1), ("v1.2.3", "1.2.3", 0), ("16.4", "16.10", -1),
])
def test_versions_order_numerically_and_put_prereleases_first(a: str, b: str, order: int) -> None:
    assert compare(a, b) == order
    assert compare(b, a) == -order


def test_a_cve_reported_by_trivy_and_grype_is_one_finding() -> None:
    findings = _by_id(["trivy-api-gateway.json", "grype-api-gateway.json"])
    assert sorted(findings) == ["CVE-2021-44228", "CVE-2021-44832"]
    log4shell = findings["CVE-2021-44228"]
    assert log4shell.aliases == ["GHSA-jfh8-c2jp-5v3q"]
    assert log4shell.sources == ["grype:grype-api-gateway.json",
                                 "trivy:trivy-api-gateway.json"]
    assert log4shell.epss == pytest.approx(0.94358)  # only grype gives one
    assert log4shell.cvss_score == 10.0


def test_grype_alone_is_named_by_its_related_cve() -> None:
    assert list(_by_id(["grype-api-gateway.json"])) == ["CVE-2021-44228"]


def test_kev_catalogue_marks_known_exploited_findings_only() -> None:
    findings = _by_id(["trivy-api-gateway.json", "kev.json"])
    assert findings["CVE-2021-44228"].known_exploited
    assert findings["CVE-2021-44228"].kev_due_date == "2021-12-24"
    assert not findings["CVE-2021-44832"].known_exploited


def test_osv_records_give_ranges_and_a_score_computed_from_the_vector() -> None:
    findings = _by_id(["osv-snakeyaml.json", "osv-receipt-render.json"])
    snake = findings["CVE-2022-1471"]
    assert snake.cvss_score == 8.8
    affected = snake.affected[0]
    assert affected.purl == "pkg:maven/org.yaml/snakeyaml"
    assert affected.fixed_versions() == ["2.0"]
    assert not findings["CVE-2026-40117"].has_fix()
    assert findings["CVE-2023-45288"].aliases == [
        "GHSA-4v7x-pqxf-cx7m", "GO-2024-2687"]


def test_trivy_fixes_per_release_line_do_not_flag_a_patched_older_line() -> None:
    finding = _by_id(["trivy-api-gateway.json"])["CVE-2021-44832"]
    affected = finding.affected[0]
    spans = [r for r in affected.ranges if r.contains("2.12.4")]
    assert spans == []  # 2.12.4 is the fix of its own line
    assert any(r.contains("2.14.1") for r in affected.ranges)


def test_a_bad_record_is_named_and_the_others_are_still_read() -> None:
    intake = read([DATA / "malformed-trivy.json", DATA / "osv-snakeyaml.json"])
    assert [str(p) for p in intake.problems] == [
        "malformed-trivy.json: Results[0].Vulnerabilities[0].VulnerabilityID: "
        "missing; every record needs it",
        "malformed-trivy.json: Results[0].Vulnerabilities[1].CVSS.nvd.V3Score = 'high': "
        "must be a number",
    ]
    assert [f.id for f in intake.findings] == ["CVE-2022-1471", "CVE-2022-25857"]


def test_a_file_in_no_known_format_is_refused_by_name(tmp_path: Path) -> None:
    odd = tmp_path / "report.json"
    odd.write_text(json.dumps({"issues": []}))
    with pytest.raises(IntakeError, match=r"report\.json: not a format opsloop reads"):
        read([odd])
    broken = tmp_path / "cut.json"
    broken.write_text('{"matches": [')
    with pytest.raises(IntakeError, match=r"cut\.json: line 1: not JSON"):
        read([broken])
