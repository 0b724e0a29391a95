"""Triage: severity.yaml's rules give each built-in scenario the severity the brief expects."""

from __future__ import annotations

import pytest
from test_policy_support import FixedTelemetry, shipped, steady

from opsloop.models import Impact, Severity
from opsloop.policy import blast_radius, classify, escalation_for, measure_impact

SCENARIO_IMPACTS = {
    "checkout bad deploy": (
        Impact(
            services=["checkout"],
            tier=1,
            error_ratio=0.3,
            burn_rate_1h=60,
            burn_rate_5m=300,
            blast_radius=3,
        ),
        Severity.SEV1,
        "sev1-tier1-outage",
    ),
    "payments dependency outage": (
        Impact(
            services=["payments"],
            tier=1,
            error_ratio=0.45,
            burn_rate_1h=100,
            burn_rate_5m=450,
            blast_radius=4,
        ),
        Severity.SEV1,
        "sev1-tier1-outage",
    ),
    "checkout flag rollout, 10% cohort": (
        Impact(services=["checkout"], tier=1, error_ratio=0.06, burn_rate_5m=60, blast_radius=3),
        Severity.SEV2,
        "sev2-tier1-errors",
    ),
    "checkout flag rollout, 25% cohort": (
        Impact(services=["checkout"], tier=1, error_ratio=0.09, burn_rate_5m=90, blast_radius=3),
        Severity.SEV2,
        "sev2-tier1-errors",
    ),
    "api-gateway traffic surge, early": (
        Impact(services=["api-gateway"], tier=1, error_ratio=0.01, saturation=1.4, blast_radius=2),
        Severity.SEV2,
        "sev2-tier1-overload",
    ),
    "api-gateway traffic surge, shedding": (
        Impact(services=["api-gateway"], tier=1, error_ratio=0.08, saturation=2.1, blast_radius=2),
        Severity.SEV2,
        "sev2-tier1-errors",
    ),
    "inventory memory leak": (
        Impact(services=["inventory"], tier=2, error_ratio=0.004, saturation=0.6, blast_radius=4),
        Severity.SEV3,
        "sev3-degraded",
    ),
    "search disk filling": (
        Impact(services=["search"], tier=2, error_ratio=0.0003, blast_radius=3),
        Severity.SEV3,
        "sev3-degraded",
    ),
    "search latency regression": (
        Impact(services=["search"], tier=2, latency_p99_ms=300, error_ratio=0.0003, blast_radius=3),
        Severity.SEV3,
        "sev3-degraded",
    ),
    "inventory slow SLO burn": (
        Impact(
            services=["inventory"],
            tier=2,
            error_ratio=0.004,
            burn_rate_1h=4,
            burn_rate_5m=5,
            error_budget_remaining=0.1,
            blast_radius=4,
        ),
        Severity.SEV3,
        "sev3-degraded",
    ),
    "redis chaos experiment, checkout affected": (
        Impact(
            services=["redis", "checkout"],
            tier=1,
            latency_p99_ms=900,
            error_ratio=0.01,
            burn_rate_1h=3,
            burn_rate_5m=10,
            blast_radius=5,
        ),
        Severity.SEV3,
        "sev3-degraded",
    ),
    "redis chaos experiment, redis alone": (
        Impact(services=["redis"], tier=2, error_ratio=0.002, blast_radius=5),
        Severity.SEV3,
        "sev3-degraded",
    ),
    "recommendations cost runaway": (
        Impact(services=["recommendations"], tier=3, error_ratio=0.0004, blast_radius=3),
        Severity.SEV4,
        "default",
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIO_IMPACTS))
def test_builtin_scenarios_get_their_severity(scenario: str) -> None:
    impact, expected, rule = SCENARIO_IMPACTS[scenario]
    severity, decided_by = classify(impact, shipped().severity)
    assert severity is expected
    assert decided_by.startswith("severity.yaml:")
    assert decided_by.endswith(rule)


def test_the_first_matching_rule_decides_and_is_named_with_its_index() -> None:
    # 0.5 error ratio on tier 1 also matches sev1-wide-blast (rules[1]); rules[0] comes first.
    impact = Impact(services=["checkout"], tier=1, error_ratio=0.5, blast_radius=6)
    assert classify(impact, shipped().severity) == (
        Severity.SEV1,
        "severity.yaml:rules[0] sev1-tier1-outage",
    )


def test_fast_burn_on_the_revenue_path_is_sev2_even_below_the_error_threshold() -> None:
    impact = Impact(services=["web"], tier=1, error_ratio=0.02, burn_rate_1h=20, burn_rate_5m=20)
    assert classify(impact, shipped().severity)[0] is Severity.SEV2


def test_sev1_pages_and_opens_a_war_room_sev3_does_not() -> None:
    policy = shipped().severity
    assert escalation_for(Severity.SEV1, policy).page
    assert escalation_for(Severity.SEV1, policy).war_room
    assert not escalation_for(Severity.SEV3, policy).page
    assert escalation_for(Severity.SEV2, policy).channels


def test_blast_radius_counts_transitive_callers() -> None:
    telemetry = FixedTelemetry()
    assert blast_radius(["payments"], telemetry) == {"payments", "checkout", "api-gateway", "web"}
    # redis is called by checkout and search, both called by api-gateway, called by web.
    assert blast_radius(["redis"], telemetry) == {
        "redis",
        "checkout",
        "search",
        "api-gateway",
        "web",
    }
    assert blast_radius(["web"], telemetry) == {"web"}


def test_measure_impact_reports_the_most_severely_affected_service() -> None:
    telemetry = (
        FixedTelemetry()
        .set("checkout", "error_ratio", steady(0.001, 57) + steady(0.3, 3))
        .set("checkout", "latency_p99_ms", steady(200, 60))
        .set("checkout", "requests_per_second", steady(140, 60))
        .set("inventory", "error_ratio", steady(0.01, 60))
        .set("inventory", "saturation", steady(0.7, 60))
    )
    impact = measure_impact(["inventory", "checkout"], telemetry, shipped())
    assert impact.services == ["inventory", "checkout"]
    assert impact.tier == 1
    # The worst minute counts in full: a fault 3 minutes old is not diluted by the 5m window.
    assert impact.error_ratio == pytest.approx(0.3)
    assert impact.requests_per_second == pytest.approx(140)
    assert impact.latency_p99_ms == pytest.approx(200)
    assert impact.blast_radius == 4  # inventory, checkout and their callers api-gateway, web
    assert impact.burn_rate_5m == pytest.approx((2 * 0.001 + 3 * 0.3) / 5 / 0.001)
    assert impact.burn_rate_1h == pytest.approx((57 * 0.001 + 3 * 0.3) / 60 / 0.001)
    assert impact.error_budget_remaining < 1.0
    assert classify(impact, shipped().severity)[0] is Severity.SEV1


def test_one_services_tier_is_never_paired_with_another_services_errors() -> None:
    # A tier-2 cache failing hard while tier-1 checkout only slows down: not a tier-1 outage.
    telemetry = (
        FixedTelemetry()
        .set("redis", "error_ratio", steady(0.25, 10))
        .set("checkout", "error_ratio", steady(0.004, 10))
        .set("checkout", "latency_p99_ms", steady(900, 10))
    )
    impact = measure_impact(["redis", "checkout"], telemetry, shipped())
    severity, rule = classify(impact, shipped().severity)
    assert (severity, impact.tier, impact.error_ratio) == (Severity.SEV2, 2, 0.25)
    assert rule.endswith("sev2-tier2-outage")


def test_average_statistic_dilutes_a_fresh_fault_over_the_window() -> None:
    policies = shipped()
    averaging = policies.model_copy(
        update={"severity": policies.severity.model_copy(update={"impact_statistic": "avg"})}
    )
    telemetry = FixedTelemetry().set("checkout", "error_ratio", steady(0.0, 57) + steady(0.3, 3))
    assert measure_impact(["checkout"], telemetry, averaging).error_ratio == pytest.approx(0.18)


def test_unknown_services_measure_as_no_data_and_the_default_tier() -> None:
    impact = measure_impact(["billing-v2"], FixedTelemetry(), shipped())
    assert impact.tier == shipped().severity.tiers.default
    assert impact.error_ratio == 0.0
    assert classify(impact, shipped().severity)[0] is Severity.SEV4
