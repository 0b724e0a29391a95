"""What a service runs, from its CycloneDX JSON SBOM, read with cyclonedx-python-lib."""

from __future__ import annotations

import json
import warnings
from typing import Any

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import ComponentScope
from pydantic import BaseModel, Field

from opsloop.security.records import purl_base


class SbomError(ValueError):
    """An SBOM that cannot be read; the message names its source and what is wrong."""


class Package(BaseModel):
    """One component a service ships. `in_use` is False for CycloneDX scope `excluded`
    (present in the build, never loaded at run time, e.g. a test-only dependency)."""

    name: str
    version: str
    purl: str = ""  # without version
    in_use: bool = True


class Inventory(BaseModel):
    """One service version's packages."""

    service: str
    version: str
    purl: str = ""  # the service's own package URL, the product VEX statements are about
    packages: list[Package] = Field(default_factory=list)

    def product_id(self) -> str:
        return self.purl or f"pkg:generic/{self.service}@{self.version}"


def read_sbom(source: str, doc: Any) -> Inventory:
    """The inventory in a parsed CycloneDX JSON document (`source` names it in errors)."""
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise SbomError(f"{source}: bomFormat: not a CycloneDX JSON document")
    try:
        with warnings.catch_warnings():  # the library warns about incomplete dependency graphs
            warnings.simplefilter("ignore")
            bom = Bom.from_json(doc)  # type: ignore[attr-defined]
    except Exception as exc:  # the library raises many types; all mean "unreadable"
        raise SbomError(f"{source}: not a readable CycloneDX SBOM: {exc}") from None
    root = bom.metadata.component
    if root is None or not root.name or not root.version:
        raise SbomError(
            f"{source}: metadata.component: an SBOM names the service and its version there")
    packages = []
    for component in sorted(bom.components, key=lambda c: (c.name, c.version or "")):
        if not component.version:
            raise SbomError(f"{source}: components[{component.name}].version: missing")
        packages.append(Package(
            name=component.name, version=component.version,
            purl=purl_base(component.purl.to_string()) if component.purl else "",
            in_use=component.scope is not ComponentScope.EXCLUDED))
    return Inventory(service=root.name, version=root.version,
                     purl=root.purl.to_string() if root.purl else "", packages=packages)


def parse_sbom(source: str, text: str) -> Inventory:
    """The inventory in CycloneDX JSON text."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SbomError(f"{source}: line {exc.lineno}: not JSON: {exc.msg}") from None
    return read_sbom(source, doc)
