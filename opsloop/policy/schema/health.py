"""health.yaml: SLOs (OpenSLO-like), the multi-window multi-burn-rate table, the error-budget
policy (normal / hold / freeze) and the weekly review's buckets, as data."""

from __future__ import annotations

from typing import Any, Literal

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


BudgetStateName = Literal["normal", "hold", "freeze"]
RiskAddingOutcome = Literal["needs_approval", "deny"]
_STRICTNESS = {"needs_approval": 1, "deny": 2}


class BudgetLine(StrictModel):
    """One error-budget policy state: a service is in it when the budget remaining of any of
    its SLOs is at or below `budget_remaining_lte`; risk-adding actions then get `risk_adding`."""

    budget_remaining_lte: float = Field(le=1)
    risk_adding: RiskAddingOutcome


class ErrorBudgetPolicy(StrictModel):
    """normal -> hold -> freeze as the budget runs out (SRE Workbook, "Example Error Budget
    Policy"). Which actions add risk is remediation.yaml's `risk` of each action type."""

    hold: BudgetLine | None = None  # None: no hold state, only freeze (the older policy)
    freeze: BudgetLine = BudgetLine(budget_remaining_lte=0.0, risk_adding="deny")
    # A budget that cannot be measured (NaN, inf from telemetry) is treated as this state.
    no_data: BudgetStateName = "hold"

    @model_validator(mode="after")
    def _freeze_is_stricter_than_hold(self) -> ErrorBudgetPolicy:
        if self.hold is None:
            return self
        if self.freeze.budget_remaining_lte > self.hold.budget_remaining_lte:
            raise ValueError(
                f"freeze.budget_remaining_lte {self.freeze.budget_remaining_lte:g} is above "
                f"hold.budget_remaining_lte {self.hold.budget_remaining_lte:g}: a freeze must "
                "start at or below the hold line"
            )
        if _STRICTNESS[self.freeze.risk_adding] < _STRICTNESS[self.hold.risk_adding]:
            raise ValueError(
                "freeze.risk_adding is looser than hold.risk_adding: a freeze must be at "
                "least as strict as a hold"
            )
        return self

    def state_for(self, remaining: float) -> BudgetStateName:
        """The state a finite budget remaining puts a service in."""
        if remaining <= self.freeze.budget_remaining_lte:
            return "freeze"
        if self.hold is not None and remaining <= self.hold.budget_remaining_lte:
            return "hold"
        return "normal"

    def line(self, state: BudgetStateName) -> BudgetLine | None:
        return {"hold": self.hold, "freeze": self.freeze}.get(state)


class ReviewBucket(StrictModel):
    """A weekly-review bucket: an SLO whose budget remaining is strictly above `above`."""

    name: str = Field(min_length=1)
    above: float | None = None  # None only on the last bucket: it takes what is left


_DEFAULT_BUCKETS = (
    ReviewBucket(name="Healthy", above=0.75),
    ReviewBucket(name="Observe", above=0.5),
    ReviewBucket(name="Needs attention", above=0.25),
    ReviewBucket(name="Unhealthy", above=0.0),
    ReviewBucket(name="Exhausted"),
)


class HealthReview(StrictModel):
    """The weekly health-target review: its buckets and the burn-rate window it reports."""

    buckets: list[ReviewBucket] = Field(default_factory=lambda: list(_DEFAULT_BUCKETS))
    burn_window: Minutes = 60

    @model_validator(mode="after")
    def _buckets_descend(self) -> HealthReview:
        if len(self.buckets) < 2:
            raise ValueError("buckets: list at least two, the last without `above`")
        *ranked, last = self.buckets
        if last.above is not None or any(b.above is None for b in ranked):
            raise ValueError("buckets: every bucket but the last needs `above`; the last has none")
        lines = [b.above for b in ranked if b.above is not None]
        if lines != sorted(lines, reverse=True) or len(set(lines)) != len(lines):
            raise ValueError(f"buckets: `above` must strictly descend, got {lines}")
        names = [b.name for b in self.buckets]
        if len(set(names)) != len(names):
            raise ValueError(f"buckets: names must be unique, got {names}")
        return self

    def bucket_for(self, remaining: float) -> str:
        """The first bucket whose line a finite budget remaining is above."""
        return next(b.name for b in self.buckets if b.above is None or remaining > b.above)

    @property
    def healthy(self) -> str:
        """The first (best) bucket's name."""
        return self.buckets[0].name


class HealthPolicy(PolicyFile):
    slos: list[Slo] = Field(default_factory=list)
    burn_rate_windows: list[BurnWindow] = Field(min_length=1)
    error_budget_policy: ErrorBudgetPolicy = ErrorBudgetPolicy()
    review: HealthReview = HealthReview()

    @model_validator(mode="before")
    @classmethod
    def _fold_change_freeze(cls, data: Any) -> Any:
        """The older `change_freeze: {budget_remaining_lte: x}` keeps its meaning: a freeze at
        that line, no hold, unmeasurable budgets not frozen, and remediation.yaml's
        change_freeze alone deciding what the freeze blocks."""
        if not isinstance(data, dict) or "change_freeze" not in data:
            return data
        if "error_budget_policy" in data:
            raise ValueError(
                "change_freeze and error_budget_policy both set: change_freeze is the older "
                "form of error_budget_policy.freeze; remove change_freeze"
            )
        older = data["change_freeze"]
        line = older.get("budget_remaining_lte", 0.0) if isinstance(older, dict) else None
        if (not isinstance(older, dict) or set(older) - {"budget_remaining_lte"}
                or isinstance(line, bool) or not isinstance(line, int | float) or line > 1):
            raise ValueError(
                "change_freeze: write `change_freeze: {budget_remaining_lte: 0.0}` (a number "
                "at most 1), or better, an error_budget_policy section"
            )
        rest = {k: v for k, v in data.items() if k != "change_freeze"}
        return {**rest, "error_budget_policy": {
            "hold": None, "no_data": "normal",
            "freeze": {"budget_remaining_lte": line, "risk_adding": "needs_approval"}}}

    def slos_for(self, service: str) -> list[Slo]:
        return [slo for slo in self.slos if slo.service == service]
