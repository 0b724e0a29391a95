"""What each simulated service ships: a CycloneDX SBOM per service version.

A service's packages are its base set, changed by every release up to the asked-for version
that bumped one (`BUMPS`); so the SBOM is the same for a version every time it is asked for,
and a patch release really ships the newer package. `PATCHES` are releases published but not
yet deployed anywhere: what an emergency patch can deploy. Scope `excluded` marks a package
that is in the image but never loaded at run time (a test-only jar).
"""

from __future__ import annotations

import json
import uuid
import warnings
from typing import Any

from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentScope, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL

from opsloop.security.versions import compare, version_key
from opsloop.simulator.state import START, SimState

EXCLUDED = "excluded"

# service -> package URL (no version) -> version, optionally "version excluded"
BASE: dict[str, dict[str, str]] = {
    "web": {"pkg:npm/next": "14.2.3", "pkg:npm/react": "18.3.1", "pkg:npm/lodash": "4.17.21"},
    "api-gateway": {
        "pkg:maven/org.apache.logging.log4j/log4j-core": "2.14.1",
        "pkg:maven/io.netty/netty-codec-http2": "4.1.108.Final",
        "pkg:maven/com.fasterxml.jackson.core/jackson-databind": "2.15.4",
    },
    "checkout": {"pkg:pypi/fastapi": "0.110.0", "pkg:pypi/pydantic": "2.6.4",
                 "pkg:pypi/receipt-render": "1.4.0"},
    "payments": {"pkg:maven/org.springframework/spring-web": "6.1.5",
                 "pkg:maven/org.bouncycastle/bcprov-jdk18on": "1.78"},
    "inventory": {"pkg:golang/golang.org/x/net": "v0.22.0",
                  "pkg:golang/google.golang.org/grpc": "v1.62.1"},
    "search": {"pkg:maven/org.apache.lucene/lucene-core": "9.9.1",
               "pkg:maven/org.yaml/snakeyaml": f"1.33 {EXCLUDED}"},
    "recommendations": {"pkg:pypi/numpy": "1.26.4", "pkg:pypi/scikit-learn": "1.4.1.post1"},
    "postgres": {"pkg:deb/debian/postgresql-16": "16.4-1.pgdg120+1",
                 "pkg:deb/debian/openssl": "3.0.14-1~deb12u2"},
    "redis": {"pkg:generic/redis": "7.2.5", "pkg:deb/debian/openssl": "3.0.14-1~deb12u2"},
}

# service -> release -> packages it changed (from that release on)
BUMPS: dict[str, dict[str, dict[str, str]]] = {
    "api-gateway": {"2.9.5": {"pkg:maven/org.apache.logging.log4j/log4j-core": "2.17.1"}},
    "inventory": {"3.4.3": {"pkg:golang/golang.org/x/net": "v0.23.0"}},
}

# Published releases no scenario has deployed yet.
PATCHES: dict[str, list[str]] = {"api-gateway": ["2.9.5"], "inventory": ["3.4.3"]}


def releases(state: SimState, service: str) -> list[str]:
    """Every version of `service` that exists, oldest first: deployed, known or published."""
    svc = state.services.get(service)
    if svc is None:
        names = ", ".join(sorted(state.services))
        raise KeyError(f"unknown service {service!r}; services: {names}")
    known = {*svc.version_history, svc.version, *svc.versions, *PATCHES.get(service, [])}
    return sorted(known, key=version_key)


def packages(service: str, version: str) -> dict[str, str]:
    """Package URL -> version (with " excluded" for packages not loaded) of one release."""
    shipped = dict(BASE.get(service, {}))
    bumps = BUMPS.get(service, {})
    for release in sorted(bumps, key=version_key):
        if compare(release, version) <= 0:
            shipped.update(bumps[release])
    return shipped


def _component(purl_base: str, spec: str) -> Component:
    version, _, scope = spec.partition(" ")
    purl = PackageURL.from_string(f"{purl_base}@{version}")
    return Component(
        name=purl.name, group=purl.namespace, version=version, purl=purl,
        bom_ref=purl.to_string(),
        scope=ComponentScope.EXCLUDED if scope == EXCLUDED else ComponentScope.REQUIRED)


def sbom(state: SimState, service: str, version: str | None = None) -> dict[str, Any]:
    """The CycloneDX 1.5 JSON SBOM of `service` at `version` (default: what it runs now)."""
    known = releases(state, service)
    version = version or state.services[service].version
    if version not in known:
        raise KeyError(f"{service} has no release {version!r}; releases: {', '.join(known)}")
    root_purl = PackageURL(type="generic", namespace="opsloop", name=service, version=version)
    root = Component(name=service, version=version, type=ComponentType.APPLICATION,
                     purl=root_purl, bom_ref=root_purl.to_string())
    components = [_component(p, spec) for p, spec in sorted(packages(service, version).items())]
    bom = Bom(
        # The same release always has the same document: serial and time derive from it.
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, root_purl.to_string()),
        metadata=BomMetaData(component=root, timestamp=START),
        components=components,
    )
    bom.register_dependency(root, components)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        document: dict[str, Any] = json.loads(JsonV1Dot5(bom).output_as_string())
    return document
