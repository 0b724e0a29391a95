"""`opsloop vulns`: ingest files reports (or refuses a bad file by name, filing nothing),
list and show read the merged findings, vex prints what the agent recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsloop.cli.main import main
from opsloop.security.inbox import vex_path
from opsloop.security.intake import read
from opsloop.security.matching import assess
from opsloop.security.sbom import parse_sbom
from opsloop.security.vex import document

DATA = Path(__file__).parent / "data" / "security"


def run(work: Path, *args: str) -> int:
    return main(["vulns", "--work-dir", str(work), *args])


def test_ingest_then_list_merges_two_scanners_into_one_finding(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    assert run(work, "ingest", str(DATA / "trivy-api-gateway.json"),
               str(DATA / "grype-api-gateway.json"), str(DATA / "kev.json")) == 0
    capsys.readouterr()
    assert run(work, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in listed["findings"]] == ["CVE-2021-44228", "CVE-2021-44832"]
    assert listed["findings"][0]["known_exploited"] is True
    assert run(work, "show", "ghsa-jfh8-c2jp-5v3q") == 0  # an alias, any case
    shown = capsys.readouterr().out
    assert "CVE-2021-44228" in shown and "known exploited (KEV due 2021-12-24)" in shown
    assert "grype:grype-api-gateway.json, trivy:trivy-api-gateway.json" in shown
    assert run(work, "list") == 0  # one name per package, though the scanners differ
    table = capsys.readouterr().out
    assert "org.apache.logging.log4j:log4j-core" in table
    assert "log4j-core," not in table and ", log4j-core" not in table


def test_a_bad_record_is_a_warning_naming_it(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "ingest", str(DATA / "malformed-trivy.json")) == 0
    err = capsys.readouterr().err
    assert ("malformed-trivy.json: Results[0].Vulnerabilities[0].VulnerabilityID: missing"
            in err)


def test_an_unreadable_file_is_refused_and_nothing_is_filed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "scan.json"
    bad.write_text('{"matches": [')
    assert run(tmp_path / "work", "ingest", str(DATA / "kev.json"), str(bad)) == 1
    err = capsys.readouterr().err
    assert "scan.json: line 1: not JSON" in err and "Traceback" not in err
    assert run(tmp_path / "work", "list") == 0
    assert "no findings filed" in capsys.readouterr().out


def test_show_and_vex_say_what_is_missing(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "show", "CVE-2000-0001") == 1
    assert "no finding 'CVE-2000-0001' in the inbox" in capsys.readouterr().err
    assert run(tmp_path, "vex") == 1
    assert "`opsloop agents run security` writes it" in capsys.readouterr().err


def test_vex_prints_the_statements_the_agent_wrote(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    inventory = parse_sbom("search", (DATA / "sbom-search.cdx.json").read_text())
    (finding,) = read([DATA / "osv-snakeyaml.json"]).findings
    path = vex_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document([assess(finding, inventory)],
                                        datetime(2026, 11, 30, tzinfo=UTC))))
    assert run(tmp_path, "vex") == 0
    table = capsys.readouterr().out
    assert "CVE-2022-1471" in table and "vulnerable_code_not_in_execute_path" in table
    assert run(tmp_path, "vex", "--json") == 0
    assert json.loads(capsys.readouterr().out)["statements"][0]["status"] == "not_affected"
