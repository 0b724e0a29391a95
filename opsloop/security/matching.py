"""Does a finding apply to what a service runs? Package identity (purl, else name) plus the
affected versions decide; an answer of "no" carries its OpenVEX justification."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from opsloop.security.finding import Affected, Finding
from opsloop.security.sbom import Inventory, Package
from opsloop.security.versions import compare, version_key


class Justification(StrEnum):
    """OpenVEX justifications for `not_affected` that matching can establish on its own."""

    COMPONENT_NOT_PRESENT = "component_not_present"
    VULNERABLE_CODE_NOT_PRESENT = "vulnerable_code_not_present"
    NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"


class Assessment(BaseModel):
    """One finding against one service version: affected (with the fix, if one exists), or
    not affected and why."""

    finding: Finding
    service: str
    service_version: str
    product: str  # the service's package URL, for VEX
    affected: bool
    package: Package | None = None
    fixed_version: str | None = None  # the lowest version above the installed one that fixes
    justification: Justification | None = None
    reason: str


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def same_package(affected: Affected, package: Package) -> bool:
    if affected.purl and package.purl:
        return affected.purl.lower() == package.purl.lower()
    return _normal(affected.name) == _normal(package.name)


def vulnerable(affected: Affected, version: str) -> bool:
    return (any(compare(version, v) == 0 for v in affected.versions)
            or any(r.contains(version) for r in affected.ranges))


def lowest_fix(finding: Finding, package: Package) -> str | None:
    """The lowest fixed version above what runs, over every range that names this package."""
    fixes = [f for a in finding.affected if same_package(a, package)
             for f in a.fixed_versions() if compare(f, package.version) > 0]
    return min(fixes, key=version_key) if fixes else None


def assess(finding: Finding, inventory: Inventory) -> Assessment:
    """Whether `finding` applies to the service version `inventory` describes."""
    base = {"finding": finding, "service": inventory.service,
            "service_version": inventory.version, "product": inventory.product_id()}
    present = [p for p in inventory.packages
               if any(same_package(a, p) for a in finding.affected)]
    if not present:
        names = ", ".join(sorted({a.name for a in finding.affected})) or "no package"
        return Assessment(**base, affected=False,
                          justification=Justification.COMPONENT_NOT_PRESENT,
                          reason=f"{inventory.service} {inventory.version} ships no {names}")
    in_range = [p for p in present
                if any(same_package(a, p) and vulnerable(a, p.version) for a in finding.affected)]
    if not in_range:
        shown = ", ".join(f"{p.name} {p.version}" for p in present)
        return Assessment(**base, affected=False, package=present[0],
                          justification=Justification.VULNERABLE_CODE_NOT_PRESENT,
                          reason=f"{shown} is outside the affected versions")
    used = [p for p in in_range if p.in_use]
    if not used:
        package = in_range[0]
        return Assessment(**base, affected=False, package=package,
                          justification=Justification.NOT_IN_EXECUTE_PATH,
                          reason=(f"{package.name} {package.version} is in the SBOM with scope "
                                  "excluded: shipped but never loaded at run time"))
    package = used[0]
    fix = lowest_fix(finding, package)
    fixed = f"fixed in {fix}" if fix else "no fixed version exists"
    return Assessment(**base, affected=True, package=package, fixed_version=fix,
                      reason=f"runs {package.name} {package.version}; {fixed}")


def assess_all(findings: list[Finding], inventories: list[Inventory]) -> list[Assessment]:
    """Every finding against every service, in a stable order (service, then finding)."""
    return [assess(f, inv) for inv in sorted(inventories, key=lambda i: i.service)
            for f in findings]
