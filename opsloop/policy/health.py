"""SLO evaluation: burn rates per window pair (SRE Workbook), error budget, change freeze."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel

from opsloop.fingerprint import label_fingerprint
from opsloop.models import Anomaly
from opsloop.policy.schema import BurnWindow, Policies, Slo, format_minutes
from opsloop.policy.series import window_mean, window_values
from opsloop.tools.protocols import Telemetry


class WindowBurn(BaseModel):
    """One row of the burn-rate table, evaluated."""

    window: str  # "1h/5m"
    severity: str  # page | ticket
    factor: float
    threshold: float  # the error ratio both windows must exceed: factor x (1 - objective)
    long_ratio: float | None
    short_ratio: float | None
    long_burn: float | None
    short_burn: float | None
    firing: bool


class SloStatus(BaseModel):
    slo: str
    service: str
    objective: float
    windows: list[WindowBurn]
    budget_remaining: float  # 1 = untouched, 0 = spent, below 0 = overspent

    @property
    def firing(self) -> list[WindowBurn]:
        return [w for w in self.windows if w.firing]


def bad_ratio(slo: Slo, telemetry: Telemetry, minutes: int) -> float | None:
    """The fraction of bad events over the last `minutes`; None when there is no data."""
    if slo.indicator.kind == "error_ratio":
        return window_mean(telemetry, slo.service, slo.indicator.metric, minutes)
    values = window_values(telemetry, slo.service, slo.indicator.metric, minutes)
    if not values:
        return None
    threshold = slo.indicator.threshold or 0.0
    return sum(1 for v in values if v > threshold) / len(values)


def burn_rate(slo: Slo, telemetry: Telemetry, minutes: int) -> float | None:
    """How many times faster than sustainable the budget burns (1 = spent exactly on time)."""
    ratio = bad_ratio(slo, telemetry, minutes)
    return None if ratio is None else ratio / slo.error_budget


def budget_remaining(slo: Slo, telemetry: Telemetry) -> float:
    """Share of the window's error budget left (1 untouched, 0 spent, below 0 overspent).

    Each minute weighs the same (steady traffic assumed). Minutes before the backend's
    history count as the backend's `average()` says (the simulator fills them with the
    service's prior error ratio); without `average()` they count as good.
    """
    average: Callable[[str, str, int], float | None] | None = getattr(telemetry, "average", None)
    if slo.indicator.kind == "error_ratio" and average is not None:
        try:
            bad_fraction = average(slo.service, slo.indicator.metric, slo.time_window) or 0.0
        except KeyError:
            bad_fraction = 0.0
    else:
        values = window_values(telemetry, slo.service, slo.indicator.metric, slo.time_window)
        if slo.indicator.kind == "error_ratio":
            bad_minutes = sum(values)
        else:
            threshold = slo.indicator.threshold or 0.0
            bad_minutes = float(sum(1 for v in values if v > threshold))
        bad_fraction = bad_minutes / slo.time_window
    return 1.0 - bad_fraction / slo.error_budget


def slo_status(slo: Slo, telemetry: Telemetry, windows: Sequence[BurnWindow]) -> SloStatus:
    """Burn per window pair and budget left. A pair fires when BOTH its windows' error
    ratios are above factor x (1 - objective), strictly, as the Workbook's rules write it."""
    rows: list[WindowBurn] = []
    for pair in windows:
        threshold = pair.factor * slo.error_budget
        long_ratio = bad_ratio(slo, telemetry, pair.long)
        short_ratio = bad_ratio(slo, telemetry, pair.short)
        rows.append(
            WindowBurn(
                window=pair.label,
                severity=pair.severity,
                factor=pair.factor,
                threshold=threshold,
                long_ratio=long_ratio,
                short_ratio=short_ratio,
                long_burn=None if long_ratio is None else long_ratio / slo.error_budget,
                short_burn=None if short_ratio is None else short_ratio / slo.error_budget,
                firing=(
                    long_ratio is not None
                    and short_ratio is not None
                    and long_ratio > threshold
                    and short_ratio > threshold
                ),
            )
        )
    return SloStatus(
        slo=slo.name,
        service=slo.service,
        objective=slo.objective,
        windows=rows,
        budget_remaining=budget_remaining(slo, telemetry),
    )


def burn_rate_anomalies(
    policies: Policies,
    telemetry: Telemetry,
    now: datetime,
    labels: Mapping[str, str] | None = None,
) -> list[Anomaly]:
    """One `ErrorBudgetBurn` anomaly per SLO and firing window pair.

    `labels` (e.g. {"env": "sim"}) are added to every anomaly so intake can group them.
    """
    anomalies: list[Anomaly] = []
    for slo in policies.health.slos:
        status = slo_status(slo, telemetry, policies.health.burn_rate_windows)
        for row in status.firing:
            alert_labels = {
                **(labels or {}),
                "alertname": "ErrorBudgetBurn",
                "service": slo.service,
                "slo": slo.name,
                "window": row.window,
                "severity": row.severity,
            }
            long_w, short_w = row.window.split("/")
            anomalies.append(
                Anomaly(
                    fingerprint=label_fingerprint(alert_labels),
                    labels=alert_labels,
                    annotations={
                        "summary": (
                            f"{slo.service}: SLO {slo.name} burning error budget "
                            f"{row.long_burn:.1f}x over {long_w} and "
                            f"{row.short_burn:.1f}x over {short_w} (alert at {row.factor:g}x)"
                        ),
                        "description": (
                            f"Error ratio {row.long_ratio:.2%} over {long_w} against an "
                            f"objective of {slo.objective:.3%}; at this rate the "
                            f"{format_minutes(slo.time_window)} budget lasts "
                            f"{_time_to_exhaust(slo, row)}. Budget left: "
                            f"{status.budget_remaining:.1%}."
                        ),
                        "runbook": "slo-burn",
                    },
                    starts_at=now,
                    source="slo",
                )
            )
    return anomalies


def _time_to_exhaust(slo: Slo, row: WindowBurn) -> str:
    burn = row.long_burn or 0.0
    if burn <= 0:
        return "forever"
    minutes = slo.time_window / burn
    if minutes >= 2 * 24 * 60:
        return f"about {minutes / (24 * 60):.0f} days"
    if minutes >= 120:
        return f"about {minutes / 60:.0f} hours"
    return f"about {minutes:.0f} minutes"


def budget_exhausted(service: str, policies: Policies, telemetry: Telemetry) -> bool:
    """True when any SLO of the service is at or below health.yaml's change-freeze line."""
    line = policies.health.change_freeze.budget_remaining_lte
    return any(
        budget_remaining(slo, telemetry) <= line for slo in policies.health.slos_for(service)
    )
