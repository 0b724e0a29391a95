"""OpenVEX (v0.2.0) documents for findings that do not apply to a service."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from opsloop.security.matching import Assessment

CONTEXT = "https://openvex.dev/ns/v0.2.0"
AUTHOR = "opsloop"


def statement(assessment: Assessment, timestamp: datetime) -> dict[str, Any]:
    """One `not_affected` statement: the vulnerability, the service as product (with the
    package as subcomponent when it is present), the justification and the reason."""
    if assessment.affected or assessment.justification is None:
        raise ValueError(f"{assessment.finding.id} affects {assessment.service}: not a VEX "
                         "not_affected statement")
    product: dict[str, Any] = {"@id": assessment.product}
    package = assessment.package
    if package is not None and package.purl:
        product["subcomponents"] = [{"@id": f"{package.purl}@{package.version}"}]
    vulnerability: dict[str, Any] = {"name": assessment.finding.id}
    if assessment.finding.aliases:
        vulnerability["aliases"] = assessment.finding.aliases
    return {
        "vulnerability": vulnerability,
        "timestamp": timestamp.isoformat(),
        "products": [product],
        "status": "not_affected",
        "justification": assessment.justification.value,
        "impact_statement": assessment.reason,
    }


def document(assessments: list[Assessment], timestamp: datetime) -> dict[str, Any]:
    """An OpenVEX document of every not-affected assessment; its @id is a digest of its
    statements, so the same facts always make the same document."""
    statements = [statement(a, timestamp) for a in assessments if not a.affected]
    digest = hashlib.sha256(json.dumps(statements, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "@context": CONTEXT,
        "@id": f"https://openvex.dev/docs/opsloop/vex-{digest}",
        "author": AUTHOR,
        "timestamp": timestamp.isoformat(),
        "version": 1,
        "statements": statements,
    }
