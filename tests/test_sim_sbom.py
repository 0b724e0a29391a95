"""The simulator publishes a CycloneDX SBOM per service release, the same in-process and
over `sim-serve`; a patch release really ships the fixed package."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from opsloop.models import ActionStatus, RemediationAction
from opsloop.security.intake import read
from opsloop.security.matching import assess
from opsloop.security.sbom import read_sbom
from opsloop.simulator import SimEnvironment, SimState
from opsloop.simulator.remote import SimClient
from opsloop.simulator.server import SimServer

DATA = Path(__file__).parent / "data" / "security"


@pytest.fixture(scope="module")
def base() -> SimState:
    return SimEnvironment.create("bad_deploy", seed=7).state


@pytest.fixture
def env(base: SimState) -> SimEnvironment:
    return SimEnvironment(base.model_copy(deep=True))


def test_the_running_release_is_described_by_the_library_reader(env: SimEnvironment) -> None:
    inventory = read_sbom("api-gateway", env.sbom("api-gateway"))
    assert (inventory.service, inventory.version) == ("api-gateway", "2.9.4")
    assert inventory.product_id() == "pkg:generic/opsloop/api-gateway@2.9.4"
    log4j = next(p for p in inventory.packages if p.name == "log4j-core")
    assert (log4j.purl, log4j.version) == ("pkg:maven/org.apache.logging.log4j/log4j-core",
                                           "2.14.1")


def test_an_sbom_is_the_same_document_every_time(env: SimEnvironment,
                                                 base: SimState) -> None:
    first = env.sbom("search", "4.7.3")
    assert env.sbom("search", "4.7.3") == first
    assert SimEnvironment(base.model_copy(deep=True)).sbom("search", "4.7.3") == first
    assert first["serialNumber"] != env.sbom("search", "4.7.2")["serialNumber"]


def test_the_patch_release_drops_the_vulnerable_package_version(env: SimEnvironment) -> None:
    assert env.releases("api-gateway") == ["2.8.7", "2.9.0", "2.9.4", "2.9.5"]
    log4shell = next(f for f in read([DATA / "trivy-api-gateway.json"]).findings
                     if f.id == "CVE-2021-44228")
    now = read_sbom("now", env.sbom("api-gateway"))
    patched = read_sbom("patch", env.sbom("api-gateway", "2.9.5"))
    assert assess(log4shell, now).affected
    assert not assess(log4shell, patched).affected
    assert {p.name: p.version for p in patched.packages}["log4j-core"] == "2.17.1"


def test_unknown_services_and_releases_are_refused_by_name(env: SimEnvironment) -> None:
    with pytest.raises(KeyError, match=r"no release '9\.9\.9'; releases: 2\.8\.7"):
        env.sbom("api-gateway", "9.9.9")
    with pytest.raises(KeyError, match="unknown service 'nope'"):
        env.releases("nope")


def test_sim_serve_publishes_the_same_sbom_over_http(env: SimEnvironment) -> None:
    server = SimServer(env).start()
    client = SimClient(server.url)
    try:
        assert client.sbom("api-gateway") == env.sbom("api-gateway")
        assert client.sbom("api-gateway", "2.9.5") == env.sbom("api-gateway", "2.9.5")
        assert client.releases("inventory") == env.releases("inventory")
        with pytest.raises(KeyError, match=r"no release '0\.0\.1'"):
            client.sbom("web", "0.0.1")
    finally:
        client.close()
        server.stop()


def _deploy(to_version: str) -> RemediationAction:
    return RemediationAction(id="patch", type="deploy_version", service="api-gateway",
                             params={"to_version": to_version})


def test_deploy_version_ships_the_patch_release_and_its_revert_redeploys(
        env: SimEnvironment) -> None:
    result = env.execute(_deploy("2.9.5"), "patch-1")
    assert result.status is ActionStatus.SUCCEEDED, result.detail
    assert result.detail == "deployed api-gateway 2.9.5 (was 2.9.4)"
    assert read_sbom("now", env.sbom("api-gateway")).version == "2.9.5"
    assert env.deploys("api-gateway", 5)[-1].version == "2.9.5"
    reverted = env.revert(result, "revert-1")
    assert reverted.status is ActionStatus.SUCCEEDED
    assert env.state.services["api-gateway"].version == "2.9.4"


@pytest.mark.parametrize(("to_version", "why"), [
    ("2.9.0", "not newer than the 2.9.4 api-gateway runs; use rollback_deploy"),
    ("3.0.0", "no published release '3.0.0'; releases: 2.8.7, 2.9.0, 2.9.4, 2.9.5"),
])
def test_deploy_version_refuses_going_back_or_an_unpublished_release(
        env: SimEnvironment, to_version: str, why: str) -> None:
    result = env.execute(_deploy(to_version), f"patch-{to_version}")
    assert result.status is ActionStatus.FAILED
    assert why in result.detail
    assert env.state.services["api-gateway"].version == "2.9.4"


def test_sim_serve_answers_a_bad_sbom_request_with_a_4xx_naming_the_field(
        env: SimEnvironment) -> None:
    server = SimServer(env).start()
    try:
        missing = httpx.get(f"{server.url}/api/sbom", timeout=5)
        unknown = httpx.get(f"{server.url}/api/sbom", params={"service": "nope"}, timeout=5)
    finally:
        server.stop()
    assert (missing.status_code, missing.json()) == (400, {"error": "service: required"})
    assert unknown.status_code == 404 and "unknown service 'nope'" in unknown.json()["error"]
