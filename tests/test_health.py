"""SLO burn rates and error budget, pinned to the SRE Workbook's numbers."""

from __future__ import annotations

import pytest
from test_policy_support import NOW, FixedTelemetry, shipped, steady

from opsloop.fingerprint import label_fingerprint
from opsloop.policy import budget_exhausted, budget_remaining, burn_rate_anomalies, slo_status
from opsloop.policy.schema import Indicator, Slo

WINDOWS = shipped().health.burn_rate_windows


def availability(window: str | None = None) -> Slo:
    """The shipped checkout availability SLO (policies/health.yaml), over `window` if given."""
    [slo] = [s for s in shipped().health.slos if s.name == "checkout-availability"]
    return slo if window is None else Slo.model_validate(
        {**slo.model_dump(), "time_window": window})


def errors(values: list[float]) -> FixedTelemetry:
    return FixedTelemetry().set("checkout", "error_ratio", values)


def firing(values: list[float], slo: Slo | None = None) -> list[str]:
    status = slo_status(slo or availability(), errors(values), WINDOWS)
    return [row.window for row in status.firing]


def test_the_shipped_table_is_the_workbook_table() -> None:
    rows = [(w.label, w.factor, w.severity) for w in WINDOWS]
    assert rows == [("1h/5m", 14.4, "page"), ("6h/30m", 6, "page"), ("3d/6h", 1, "ticket")]


def test_thresholds_are_factor_times_the_error_budget() -> None:
    status = slo_status(availability(), errors(steady(0.0, 60)), WINDOWS)
    assert [row.threshold for row in status.windows] == pytest.approx([0.0144, 0.006, 0.001])


def test_above_1_44_percent_for_an_hour_fires_the_1h_5m_pair_of_a_99_9_slo() -> None:
    # Five quiet hours, then one hour just above 14.4 x 0.1%: the 6h mean stays low.
    assert firing(steady(0.0, 300) + steady(0.0145, 60)) == ["1h/5m", "3d/6h"]


def test_just_below_1_44_percent_does_not_page_on_the_1h_5m_pair() -> None:
    assert "1h/5m" not in firing(steady(0.0, 300) + steady(0.0143, 60))


def test_a_ratio_exactly_at_the_threshold_does_not_fire() -> None:
    # The Workbook's rules compare with a strict `>`.
    threshold = slo_status(availability(), errors([0.0]), WINDOWS).windows[1].threshold
    assert firing(steady(threshold, 360)) == ["3d/6h"]


def test_six_x_for_six_hours_fires_the_6h_30m_pair_only() -> None:
    assert firing(steady(0.0061, 360)) == ["6h/30m", "3d/6h"]
    assert firing(steady(0.0059, 360)) == ["3d/6h"]


def test_the_short_window_stops_the_alert_once_the_burn_stops() -> None:
    # An hour of heavy errors that ended 10 minutes ago: 1h is hot, 5m is clean.
    status = slo_status(availability(), errors(steady(0.05, 50) + steady(0.0, 10)), WINDOWS)
    row = status.windows[0]
    assert row.long_burn is not None and row.long_burn > 14.4
    assert row.short_burn == pytest.approx(0.0)
    assert not row.firing


def test_burn_rate_is_the_error_ratio_over_the_budget() -> None:
    status = slo_status(availability(), errors(steady(0.0144, 60)), WINDOWS)
    assert status.windows[0].long_burn == pytest.approx(14.4)


def test_an_hour_at_14_4x_spends_2_percent_of_a_30_day_budget() -> None:
    remaining = budget_remaining(availability(window="30d"), errors(steady(0.0144, 60)))
    assert 1 - remaining == pytest.approx(0.02)


def test_an_hour_at_14_4x_spends_14_4_over_672_of_a_28_day_budget() -> None:
    remaining = budget_remaining(availability(window="28d"), errors(steady(0.0144, 60)))
    assert 1 - remaining == pytest.approx(14.4 / 672)


def test_no_data_means_no_alert_and_a_full_budget() -> None:
    status = slo_status(availability(), FixedTelemetry(), WINDOWS)
    assert status.firing == []
    assert status.windows[0].long_burn is None
    assert status.budget_remaining == 1.0


def test_latency_slo_counts_minutes_over_the_threshold() -> None:
    slo = Slo(
        name="search-latency",
        service="search",
        objective=0.99,
        indicator=Indicator(kind="latency", metric="latency_p99_ms", threshold=400),
    )
    telemetry = FixedTelemetry().set("search", "latency_p99_ms", steady(120, 50) + steady(900, 10))
    status = slo_status(slo, telemetry, WINDOWS)
    # 10 bad minutes of 60 = 16.7% bad against a 1% budget: 16.7x over 1h, 100x over 5m.
    assert status.windows[0].long_burn == pytest.approx(100 / 6)
    assert status.windows[0].short_burn == pytest.approx(100)
    assert status.windows[0].firing


def test_burn_rate_anomaly_carries_labels_runbook_and_fingerprint() -> None:
    telemetry = FixedTelemetry().set("checkout", "error_ratio", steady(0.0, 300) + steady(0.3, 60))
    anomalies = burn_rate_anomalies(shipped(), telemetry, NOW, labels={"env": "sim"})
    fast = next(a for a in anomalies if a.labels["window"] == "1h/5m")
    assert fast.labels == {
        "env": "sim",
        "alertname": "ErrorBudgetBurn",
        "service": "checkout",
        "slo": "checkout-availability",
        "window": "1h/5m",
        "severity": "page",
    }
    assert fast.fingerprint == label_fingerprint(fast.labels)
    assert fast.source == "slo"
    assert fast.annotations["runbook"] == "slo-burn"
    assert fast.starts_at == NOW
    assert "300.0x" in fast.annotations["summary"]
    assert {a.labels["service"] for a in anomalies} == {"checkout"}


def test_a_healthy_fleet_raises_no_burn_anomalies() -> None:
    telemetry = FixedTelemetry()
    for service in ("web", "checkout", "inventory", "recommendations"):
        telemetry.set(service, "error_ratio", steady(0.0003, 360))
    assert burn_rate_anomalies(shipped(), telemetry, NOW) == []


def test_budget_exhausted_once_the_window_budget_is_spent() -> None:
    # 28d x 0.1% = 40.32 bad minutes; 100 minutes at 50% errors is 50.
    assert budget_exhausted("checkout", shipped(), errors(steady(0.5, 100)))
    assert not budget_exhausted("checkout", shipped(), errors(steady(0.5, 60)))
    assert not budget_exhausted("no-such-service", shipped(), errors(steady(0.5, 100)))


class AveragingTelemetry(FixedTelemetry):
    """A backend that averages long windows itself (as the simulator does)."""

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        return 0.002 if minutes >= 3 * 24 * 60 else None


def test_windows_use_the_backends_average_when_it_has_one() -> None:
    status = slo_status(availability(), AveragingTelemetry(), WINDOWS)
    assert status.windows[2].long_ratio == pytest.approx(0.002)
    assert status.windows[2].short_ratio is None
    assert not status.windows[2].firing


def test_budget_uses_the_backends_long_window_average() -> None:
    # The simulator answers a 28-day average from a few hours of history plus a prior.
    slo = availability(window="28d")
    assert budget_remaining(slo, AveragingTelemetry()) == pytest.approx(1 - 2.0)
