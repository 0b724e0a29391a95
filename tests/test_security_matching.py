"""Findings against what each service runs (CycloneDX SBOMs); OpenVEX for what does not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsloop.security.finding import Finding
from opsloop.security.intake import read
from opsloop.security.matching import Justification, assess
from opsloop.security.sbom import Inventory, Package, SbomError, parse_sbom
from opsloop.security.vex import document

DATA = Path(__file__).parent / "data" / "security"
WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LOG4J = "pkg:maven/org.apache.logging.log4j/log4j-core"


def _gateway(log4j: str) -> Inventory:
    return Inventory(service="api-gateway", version="2.9.4", packages=[
        Package(name="log4j-core", version=log4j, purl=LOG4J)])


def _finding(file: str, vuln: str) -> Finding:
    return next(f for f in read([DATA / file]).findings if f.id == vuln)


def test_the_sbom_is_read_with_scope_excluded_meaning_not_in_use() -> None:
    inventory = parse_sbom("sbom-search", (DATA / "sbom-search.cdx.json").read_text())
    assert (inventory.service, inventory.version) == ("search", "3.4.1")
    assert inventory.product_id() == "pkg:generic/opsloop/search@3.4.1"
    snake = next(p for p in inventory.packages if p.name == "snakeyaml")
    assert (snake.purl, snake.version, snake.in_use) == ("pkg:maven/org.yaml/snakeyaml",
                                                        "1.33", False)


@pytest.mark.parametrize(("text", "message"), [
    ('{"bomFormat": "SPDX"}', "bomFormat: not a CycloneDX"),
    ('{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "metadata": {}}',
     "metadata.component"),
    ("{", "line 1: not JSON"),
])
def test_an_unreadable_sbom_is_named(text: str, message: str) -> None:
    with pytest.raises(SbomError, match=message):
        parse_sbom("web@5.3.1", text)


def test_a_vulnerable_version_in_use_is_affected_with_the_lowest_fix_above_it() -> None:
    result = assess(_finding("trivy-api-gateway.json", "CVE-2021-44832"), _gateway("2.14.1"))
    assert result.affected
    assert result.fixed_version == "2.17.1"


def test_the_fixed_version_is_not_affected_because_the_code_is_not_present() -> None:
    result = assess(_finding("trivy-api-gateway.json", "CVE-2021-44228"), _gateway("2.17.1"))
    assert not result.affected
    assert result.justification is Justification.VULNERABLE_CODE_NOT_PRESENT


def test_a_service_without_the_package_is_not_affected_as_component_not_present() -> None:
    finding = _finding("osv-receipt-render.json", "CVE-2026-40117")
    result = assess(finding, _gateway("2.14.1"))
    assert result.justification is Justification.COMPONENT_NOT_PRESENT
    assert "ships no receipt-render" in result.reason


def test_a_finding_with_no_fix_affects_every_version_from_its_introduction() -> None:
    finding = _finding("osv-receipt-render.json", "CVE-2026-40117")
    checkout = Inventory(service="checkout", version="2.13.2", packages=[
        Package(name="receipt-render", version="1.4.0", purl="pkg:pypi/receipt-render")])
    result = assess(finding, checkout)
    assert result.affected and result.fixed_version is None
    old = checkout.model_copy(update={"packages": [
        Package(name="receipt-render", version="0.9.8", purl="pkg:pypi/receipt-render")]})
    assert not assess(finding, old).affected


def test_an_unused_package_gives_an_openvex_not_affected_statement() -> None:
    inventory = parse_sbom("sbom-search", (DATA / "sbom-search.cdx.json").read_text())
    result = assess(_finding("osv-snakeyaml.json", "CVE-2022-1471"), inventory)
    assert not result.affected
    vex = document([result], WHEN)
    assert vex["@context"] == "https://openvex.dev/ns/v0.2.0"
    [statement] = vex["statements"]
    assert statement["status"] == "not_affected"
    assert statement["justification"] == "vulnerable_code_not_in_execute_path"
    assert statement["vulnerability"] == {"name": "CVE-2022-1471",
                                          "aliases": ["GHSA-mjmj-j48q-9wg2"]}
    assert statement["products"] == [{
        "@id": "pkg:generic/opsloop/search@3.4.1",
        "subcomponents": [{"@id": "pkg:maven/org.yaml/snakeyaml@1.33"}]}]
    assert document([result], WHEN) == vex  # same facts, same document and @id


def test_affected_findings_are_left_out_of_vex() -> None:
    affected = assess(_finding("trivy-api-gateway.json", "CVE-2021-44228"), _gateway("2.14.1"))
    assert document([affected], WHEN)["statements"] == []
