"""The evidence tools: what callers log about a service, where its load comes from, whether a
failover would land somewhere healthy and independent, what changed on its path, and
dependencies without telemetry reported as unobserved, never as healthy."""

from __future__ import annotations

from typing import Any

import pytest
from test_log_templates import recorded, simulated

from opsloop.models import ToolStatus
from opsloop.simulator import SimEnvironment
from opsloop.tools.toolbox import Toolbox


def call(production: Any, tool: str, **args: Any) -> dict[str, Any]:
    result = Toolbox(production, clock=production).call(tool, **args)
    assert result.status is ToolStatus.OK, result.error or result.summary
    return result.data


# --- callers_report ------------------------------------------------------------------------

def test_a_service_that_never_alerts_is_named_by_its_callers_certificate_errors() -> None:
    data = call(recorded("msteams-2020-expired-auth-cert"), "callers_report", service="authz")
    assert data["worst_class"] == "tls"
    assert {c["name"] for c in data["callers"]} == {"chat-api", "presence"}
    assert data["mentions"] >= 3 and all(c["classes"].get("tls", 0) >= 3 for c in data["callers"])
    assert all(c["error_ratio_ratio"] > 10 for c in data["callers"])
    assert data["alerting_share"] is None


def test_callers_report_of_a_callee_its_callers_do_not_blame_is_empty() -> None:
    # Same incident: nobody calls chat-web, and chat-api's callers (chat-web) blame it with
    # 503s, not certificates: the evidence follows the lines, not the incident.
    production = recorded("msteams-2020-expired-auth-cert")
    assert call(production, "callers_report", service="chat-web")["count"] == 0
    assert call(production, "callers_report", service="chat-api")["worst_class"] == "unavailable"


def test_simulated_outage_callers_name_the_failing_service_with_timeouts() -> None:
    data = call(simulated("dependency_outage"), "callers_report", service="payments")
    assert data["worst_class"] == "timeout" and data["mentions"] >= 10
    quiet = call(SimEnvironment.create("dependency_outage", 7), "callers_report",
                 service="payments")
    assert quiet["worst_class"] is None and quiet["mentions"] == 0


def test_routine_lines_naming_a_service_are_not_complaints_about_it() -> None:
    # api-gateway logs "route /api/v1/search -> search 200": it names search, says nothing wrong.
    data = call(simulated("disk_filling"), "callers_report", service="search")
    assert data["mentions"] == 0 and data["worst_class"] is None


# --- traffic_origin ------------------------------------------------------------------------

def test_load_rising_under_flat_callers_with_retries_is_amplification() -> None:
    data = call(recorded("dynamodb-2015-retry-amplification"), "traffic_origin",
                service="membership-svc")
    assert data["amplification"] > 1.5 and data["callers_rps_ratio"] < 1.2
    assert data["errors_and_requests_rising"] and data["error_ratio_ratio"] > 1.5
    assert data["retry_lines"] > 0 and data["errors_lead"] is False
    assert data["edge"] is False and data["cache_hit_ratio_change"] is None


def test_load_that_callers_bring_is_not_amplification() -> None:
    data = call(recorded("pokemongo-2016-launch-load"), "traffic_origin", service="game-api")
    assert data["rps_ratio"] > 2 and data["amplification"] < 1.2


def test_a_service_nobody_calls_is_the_edge() -> None:
    data = call(recorded("bad-deploy-web"), "traffic_origin", service="web")
    assert data["edge"] is True and data["amplification"] == 1.0


def test_a_service_that_calls_itself_makes_its_own_traffic() -> None:
    data = call(recorded("milkieway-2020-recursive-crawler-cost"), "traffic_origin",
                service="crawler")
    assert data["self_calling"] is True and data["edge"] is False
    assert data["rps_ratio"] > 2 and data["amplification"] is None


# --- failover_target -----------------------------------------------------------------------

def test_failover_to_a_healthy_independent_region_is_known() -> None:
    data = call(recorded("aws-s3-2017-region-failover"), "failover_target",
                service="object-store")
    assert data["target"] == "secondary" and data["known"] is True
    assert data["healthy"] is True and data["independent"] is True and data["shared"] == []
    assert data["region_scoped"] is True


def test_failover_behind_a_shared_dns_is_neither_independent_nor_healthy() -> None:
    data = call(recorded("dyn-2016-managed-dns-outage"), "failover_target",
                service="card-processor")
    assert data["shared"] == ["managed-dns"] and data["independent"] is False
    assert data["healthy"] is False  # its secondary endpoint fails the same lookups


def test_a_target_nothing_reports_on_is_of_unknown_health_not_healthy() -> None:
    data = call(simulated("dependency_outage"), "failover_target", service="payments")
    assert data["target"] == "secondary" and data["independent"] is True
    assert data["healthy"] is None and data["region_scoped"] is True


def test_a_provider_outside_the_catalog_has_no_known_target() -> None:
    data = call(simulated("dependency_outage"), "failover_target", service="payments-provider")
    assert data == {**data, "target": None, "known": False, "healthy": None}


# --- dependency_health ---------------------------------------------------------------------

def test_a_dependency_without_telemetry_is_unobserved_not_healthy() -> None:
    # search's exporter was down: the catalog lists it, the recording has no series for it.
    data = call(recorded("missing-telemetry"), "dependency_health", service="api-gateway")
    search = next(d for d in data["dependencies"] if d["name"] == "search")
    assert search == {"name": "search", "error_ratio": None, "latency_p99_ms": None,
                      "observed": False}
    assert "search" in data["unobserved"] and data["observed_count"] == 0
    assert data["worst"] is None


def test_worst_is_the_worst_observed_dependency_and_the_others_are_listed_apart() -> None:
    data = call(recorded("cache-collapse-search"), "dependency_health", service="api-gateway")
    assert data["worst"]["name"] == "search" and data["worst"]["observed"] is True
    assert data["unobserved"] == ["checkout", "recommendations"]
    assert data["dependencies"][0]["name"] == "search"


def test_a_provider_without_telemetry_is_never_summarised_as_zero_errors() -> None:
    result = Toolbox(simulated("dependency_outage")).call("dependency_health", service="payments")
    assert result.data["worst"] is None and result.data["unobserved"] == ["payments-provider"]
    assert "no telemetry" in result.summary and " 0" not in result.summary


# --- changes_before ------------------------------------------------------------------------

def test_changes_on_the_service_and_below_it_are_listed_and_nothing_else() -> None:
    production = simulated("bad_deploy")
    own = call(production, "changes_before", service="checkout")
    assert own["latest"]["on"] == "checkout" and own["latest"]["on_path"] == "self"
    assert own["latest"]["kind"] == "deploy" and own["deploy_count"] == 1
    gateway = call(production, "changes_before", service="api-gateway")
    on = {(c["on"], c["on_path"]) for c in gateway["changes"]}
    # recommendations (a dependency) released 50 minutes before the fault; web (a caller)
    # changed its config: callers are not on the path down from the gateway.
    assert ("checkout", "dependency") in on and ("recommendations", "dependency") in on
    assert not any(c["on"] == "web" for c in gateway["changes"])
    assert [c["age_minutes"] for c in gateway["changes"]] == sorted(
        c["age_minutes"] for c in gateway["changes"])


def test_experiments_and_flag_ramps_are_changes_too() -> None:
    chaos = call(simulated("chaos_experiment"), "changes_before", service="checkout")
    assert any(c["kind"] == "experiment" and c["on"] == "redis" for c in chaos["changes"])
    ramp = call(simulated("flag_rollout_errors"), "changes_before", service="checkout")
    assert ramp["flag_count"] >= 1 and ramp["latest"]["kind"] == "flag"


@pytest.mark.parametrize("tool", ["callers_report", "traffic_origin", "failover_target",
                                  "changes_before"])
def test_unknown_services_are_errors(tool: str) -> None:
    result = Toolbox(recorded("bad-deploy-web")).call(tool, service="nope")
    assert result.status is ToolStatus.ERROR and "nope" in result.error
