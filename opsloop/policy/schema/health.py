"""health.yaml: SLOs (OpenSLO-like) and the multi-window multi-burn-rate table as data."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from opsloop.policy.schema.base import Minutes, PolicyFile, StrictModel, format_minutes


class Indicator(StrictModel):
    """What counts as a bad event.

    `error_ratio`: the metric is already bad/total per minute (request errors).
    `latency`: time slices — a minute whose metric exceeds `threshold` is a bad minute
    (OpenSLO's Timeslices budgeting), because per-request latencies are not in telemetry.
    """

    kind: Literal["error_ratio", "latency"]
    metric: str = "error_ratio"
    threshold: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _latency_needs_threshold(self) -> Indicator:
        if self.kind == "latency" and self.threshold is None:
            raise ValueError("a latency indicator needs `threshold` (e.g. 400 for 400 ms)")
        if self.kind == "error_ratio" and self.threshold is not None:
            raise ValueError("`threshold` only applies to latency indicators; remove it")
        return self


class Slo(StrictModel):
    name: str = Field(min_length=1)
    service: str = Field(min_length=1)
    description: str = ""
    indicator: Indicator
    # Strictly between 0 and 1: 1.0 leaves no error budget and every burn rate divides by zero.
    objective: float = Field(gt=0, lt=1)
    time_window: Minutes = 28 * 24 * 60

    @property
    def error_budget(self) -> float:
        """The bad fraction the objective allows, e.g. 0.001 for 99.9%."""
        return 1.0 - self.objective


class BurnWindow(StrictModel):
    """One row of the SRE Workbook table: both windows above factor x budget -> alert."""

    long: Minutes
    short: Minutes
    factor: float = Field(gt=0)
    severity: Literal["page", "ticket"]

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnWindow:
        if self.short >= self.long:
            raise ValueError(
                f"short window {format_minutes(self.short)} must be shorter than "
                f"long window {format_minutes(self.long)}"
            )
        return self

    @property
    def label(self) -> str:
        return f"{format_minutes(self.long)}/{format_minutes(self.short)}"


class ChangeFreeze(StrictModel):
    """A service whose budget remaining is at or below this is frozen (see remediation.yaml)."""

    budget_remaining_lte: float = Field(default=0.0, le=1)


class HealthPolicy(PolicyFile):
    slos: list[Slo] = Field(default_factory=list)
    burn_rate_windows: list[BurnWindow] = Field(min_length=1)
    change_freeze: ChangeFreeze = ChangeFreeze()

    def slos_for(self, service: str) -> list[Slo]:
        return [slo for slo in self.slos if slo.service == service]
