"""Rollback criteria: windows, thresholds and failure steps per action; the flag kill switch."""

from __future__ import annotations

import pytest
from test_policy_support import FixedTelemetry, shipped, steady

from opsloop.policy import check_health, criteria_for, kill_switch_tripped, verification_for

POLICIES = shipped()


def test_action_criteria_override_defaults_field_by_field() -> None:
    criteria = verification_for("rollback_deploy", POLICIES.rollback)
    assert criteria.window_minutes == 10
    assert criteria.thresholds.error_ratio_max == 0.01  # its own
    assert criteria.thresholds.saturation_max == 0.95  # from defaults
    assert criteria.on_failure == ["revert", "escalate"]
    assert criteria.rule == "rollback.yaml:actions.rollback_deploy"


def test_unlisted_action_types_get_the_defaults() -> None:
    criteria = verification_for("something_new", POLICIES.rollback)
    assert criteria.rule == "rollback.yaml:defaults"
    assert criteria.thresholds.error_ratio_max == 0.02


def test_irreversible_actions_skip_revert_on_failure() -> None:
    assert verification_for("restart", POLICIES.rollback).failure_steps() == ["escalate"]
    # A policy asking to revert something the actuator cannot undo just escalates.
    defaults = verification_for("something_new", POLICIES.rollback)
    assert defaults.failure_steps(reversible=False) == ["escalate"]
    assert criteria_for(POLICIES, "scale_out").failure_steps() == ["revert", "escalate"]


def test_health_checks_compare_recent_means_with_thresholds() -> None:
    telemetry = (
        FixedTelemetry()
        .set("checkout", "error_ratio", steady(0.3, 10) + steady(0.004, 3))
        .set("checkout", "latency_p99_ms", steady(400, 13))
        .set("checkout", "saturation", steady(0.5, 13))
    )
    criteria = verification_for("rollback_deploy", POLICIES.rollback)
    checks = {
        c.name: c
        for c in check_health(criteria, "checkout", telemetry, baseline={"latency_p99_ms": 180})
    }
    assert checks["error_ratio_max"].ok
    assert checks["error_ratio_max"].observed == pytest.approx(0.004)
    assert not checks["latency_p99_ratio_max"].ok  # 400 / 180 = 2.2x > 1.5x
    assert checks["latency_p99_ratio_max"].observed == pytest.approx(400 / 180)
    assert checks["saturation_max"].ok


def test_ratio_checks_without_a_baseline_are_skipped_not_guessed() -> None:
    telemetry = FixedTelemetry().set("checkout", "latency_p99_ms", steady(400, 5))
    criteria = verification_for("rollback_deploy", POLICIES.rollback)
    assert check_health(criteria, "checkout", telemetry) == []


def test_kill_switch_trips_only_when_every_recent_minute_is_over_the_line() -> None:
    rollback = POLICIES.rollback
    assert kill_switch_tripped(
        "checkout", FixedTelemetry().set("checkout", "error_ratio", [0.01, 0.06, 0.07]), rollback
    )
    assert not kill_switch_tripped(
        "checkout", FixedTelemetry().set("checkout", "error_ratio", [0.06, 0.04]), rollback
    )
    assert not kill_switch_tripped("checkout", FixedTelemetry(), rollback)
