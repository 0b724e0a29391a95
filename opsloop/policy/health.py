"""SLO evaluation: burn rates per window pair (SRE Workbook), error budget, and the
error-budget policy state (normal / hold / freeze) the guardrails obey."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel

from opsloop.fingerprint import label_fingerprint
from opsloop.models import Anomaly
from opsloop.policy.schema import BurnWindow, Policies, Slo, format_minutes
from opsloop.policy.schema.health import BudgetStateName
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


def bad_shares(slo: Slo, values: Iterable[float]) -> list[float]:
    """Each minute's bad fraction under the SLO's indicator: the error ratio itself, or 1/0
    for a latency minute over/under its threshold. A non-finite value stays NaN (unknown),
    never good: `nan > threshold` would otherwise count it as a good minute."""
    if slo.indicator.kind == "error_ratio":
        return [v if math.isfinite(v) else math.nan for v in values]
    threshold = slo.indicator.threshold or 0.0
    return [math.nan if not math.isfinite(v) else 1.0 if v > threshold else 0.0 for v in values]


def bad_ratio(slo: Slo, telemetry: Telemetry, minutes: int) -> float | None:
    """The fraction of bad events over the last `minutes`; None when there is no data
    (NaN when the data holds a value that is not a number)."""
    if slo.indicator.kind == "error_ratio":
        return window_mean(telemetry, slo.service, slo.indicator.metric, minutes)
    shares = bad_shares(slo, window_values(telemetry, slo.service, slo.indicator.metric, minutes))
    return sum(shares) / len(shares) if shares else None


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
        bad_fraction = sum(bad_shares(slo, values)) / slo.time_window
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


class BudgetState(BaseModel):
    """A service's error-budget policy state, and the SLO and rule that put it there."""

    service: str
    state: BudgetStateName
    remaining: float | None  # the lowest budget remaining of its SLOs; None: none measurable
    slo: str | None = None  # the SLO that decided
    rule: str  # e.g. health.yaml:error_budget_policy.hold
    reason: str


_RANK: dict[BudgetStateName, int] = {"normal": 0, "hold": 1, "freeze": 2}
_POLICY = "health.yaml:error_budget_policy"


def budget_state(service: str, policies: Policies, telemetry: Telemetry) -> BudgetState:
    """normal / hold / freeze for `service`: the strictest state any of its SLOs puts it in
    (health.yaml `error_budget_policy`); an unmeasurable budget counts as `no_data` says."""
    policy = policies.health.error_budget_policy
    slos = policies.health.slos_for(service)
    if not slos:
        return BudgetState(service=service, state="normal", remaining=None, rule="health.yaml:slos",
                           reason=f"no SLO in health.yaml covers {service}: no budget to guard")
    found: list[BudgetState] = []
    for slo in slos:
        remaining = budget_remaining(slo, telemetry)
        if not math.isfinite(remaining):
            found.append(BudgetState(
                service=service, state=policy.no_data, remaining=None, slo=slo.name,
                rule=f"{_POLICY}.no_data",
                reason=f"{slo.name}: budget remaining cannot be measured ({remaining}); "
                       f"treated as {policy.no_data}"))
            continue
        state = policy.state_for(remaining)
        line = policy.line(state)
        found.append(BudgetState(
            service=service, state=state, remaining=remaining, slo=slo.name,
            rule=f"{_POLICY}.{state}" if line is not None else _POLICY,
            reason=(f"{slo.name}: {remaining:.1%} of the error budget left, at or below the "
                    f"{state} line {line.budget_remaining_lte:.0%}") if line is not None
            else f"{slo.name}: {remaining:.1%} of the error budget left"))
    worst = max(_RANK[b.state] for b in found)
    deciding = [b for b in found if _RANK[b.state] == worst]
    # Among equals, the unmeasurable one first (it is why), then the least budget left.
    pick = min(deciding, key=lambda b: -math.inf if b.remaining is None else b.remaining)
    measured = [b.remaining for b in found if b.remaining is not None]
    return pick.model_copy(update={"remaining": min(measured) if measured else None})


def budget_exhausted(service: str, policies: Policies, telemetry: Telemetry) -> bool:
    """True when the service is in an error-budget freeze (health.yaml error_budget_policy)."""
    return budget_state(service, policies, telemetry).state == "freeze"
