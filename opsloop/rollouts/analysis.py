"""A rollout step's analysis, with Argo Rollouts' semantics
(https://argoproj.github.io/argo-rollouts/features/analysis/).

Each metric is measured `measurements` times over the step's interval (consecutive equal
windows, each the mean of its points). One measurement is judged as Argo's `EvaluateResult`
does: the failure condition first (met: Failed; no success condition: Successful), then the
success condition (met: Successful; no failure condition: Failed); neither met: Inconclusive.
A window with no points, or with a NaN or infinite point, is no data: `no_data` says what it
counts as (default Inconclusive, never Successful).

A metric is Failed when its failed measurements exceed `failure_limit`, or more than
`consecutive_failure_limit` of them come in a row; else Inconclusive when its inconclusive
ones exceed `inconclusive_limit`; else Successful. The analysis takes the worst metric:
Failed, then Inconclusive, then Successful.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from opsloop.models.catalog import METRICS
from opsloop.models.policy_file import StrictModel


class Phase(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


_WORST = {Phase.SUCCESSFUL: 0, Phase.INCONCLUSIVE: 1, Phase.FAILED: 2}


class Condition(StrictModel):
    """Bounds a measured value is compared with; every bound given must hold."""

    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Condition:
        if all(v is None for v in (self.lt, self.lte, self.gt, self.gte)):
            raise ValueError("a condition needs at least one of lt, lte, gt, gte")
        return self

    def holds(self, value: float) -> bool:
        return ((self.lt is None or value < self.lt) and (self.lte is None or value <= self.lte)
                and (self.gt is None or value > self.gt)
                and (self.gte is None or value >= self.gte))

    def describe(self) -> str:
        ops = (("<", self.lt), ("<=", self.lte), (">", self.gt), (">=", self.gte))
        return " and ".join(f"{op} {v:g}" for op, v in ops if v is not None)


class MetricCheck(StrictModel):
    """One analysis metric: a telemetry metric of the flag's service and its conditions."""

    name: str
    metric: str  # a telemetry metric, e.g. error_ratio, latency_p99_ms
    success: Condition | None = None
    failure: Condition | None = None

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; metrics: {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _one(self) -> MetricCheck:
        if self.success is None and self.failure is None:
            raise ValueError(f"metric {self.name!r} needs a success or a failure condition "
                             "(or both)")
        return self


class AnalysisSpec(StrictModel):
    """How a step is analysed (Argo's AnalysisTemplate fields, in snake case)."""

    metrics: list[MetricCheck] = Field(min_length=1)
    measurements: int = Field(default=5, ge=1, le=60)
    failure_limit: int = Field(default=0, ge=0)
    consecutive_failure_limit: int | None = Field(default=None, ge=0)
    inconclusive_limit: int = Field(default=0, ge=0)
    no_data: Literal["inconclusive", "failed"] = "inconclusive"


class Measurement(BaseModel):
    value: float | None  # None: no data in the window
    phase: Phase


class MetricResult(BaseModel):
    name: str
    metric: str
    phase: Phase
    reason: str
    measurements: list[Measurement]


class AnalysisResult(BaseModel):
    phase: Phase
    reason: str  # which metric decided, and why
    metrics: list[MetricResult]


def judge(value: float | None, check: MetricCheck, no_data: str) -> Phase:
    """One measurement, as Argo's EvaluateResult judges it (see the module docstring)."""
    if value is None or not math.isfinite(value):
        return Phase.FAILED if no_data == "failed" else Phase.INCONCLUSIVE
    if check.failure is not None:
        if check.failure.holds(value):
            return Phase.FAILED
        if check.success is None:
            return Phase.SUCCESSFUL
    if check.success is not None:
        if check.success.holds(value):
            return Phase.SUCCESSFUL
        if check.failure is None:
            return Phase.FAILED
    return Phase.INCONCLUSIVE


def windows(points: Sequence[float], count: int) -> list[float | None]:
    """`count` consecutive equal windows' means; None for a window with no points or with a
    non-finite one (a NaN is missing data, not a number to average over)."""
    out: list[float | None] = []
    n = len(points)
    for i in range(count):
        chunk = points[i * n // count:(i + 1) * n // count]
        ok = bool(chunk) and all(math.isfinite(v) for v in chunk)
        out.append(sum(chunk) / len(chunk) if ok else None)
    return out


def assess(check: MetricCheck, values: Sequence[float | None], spec: AnalysisSpec
           ) -> MetricResult:
    """A metric's phase from its measurements, with Argo's limits."""
    measured = [Measurement(value=v, phase=judge(v, check, spec.no_data)) for v in values]
    phases = [m.phase for m in measured]
    failed = phases.count(Phase.FAILED)
    inconclusive = phases.count(Phase.INCONCLUSIVE)
    run = longest = 0
    for p in phases:
        run = run + 1 if p is Phase.FAILED else 0
        longest = max(longest, run)
    conds = " / ".join(f"{k} {c.describe()}" for k, c in
                       (("success", check.success), ("failure", check.failure)) if c)
    shown = ", ".join("no data" if v is None else f"{v:.4g}" for v in values)
    where = f"{check.name} ({check.metric}: {shown}; {conds})"
    if failed > spec.failure_limit:
        return MetricResult(name=check.name, metric=check.metric, phase=Phase.FAILED,
                            measurements=measured,
                            reason=f"{where}: {failed} failed > failure_limit "
                                   f"{spec.failure_limit}")
    limit = spec.consecutive_failure_limit
    if limit is not None and longest > limit:
        return MetricResult(name=check.name, metric=check.metric, phase=Phase.FAILED,
                            measurements=measured,
                            reason=f"{where}: {longest} failed in a row > "
                                   f"consecutive_failure_limit {limit}")
    if inconclusive > spec.inconclusive_limit:
        return MetricResult(name=check.name, metric=check.metric, phase=Phase.INCONCLUSIVE,
                            measurements=measured,
                            reason=f"{where}: {inconclusive} inconclusive > "
                                   f"inconclusive_limit {spec.inconclusive_limit}")
    return MetricResult(name=check.name, metric=check.metric, phase=Phase.SUCCESSFUL,
                        measurements=measured, reason=f"{where}: within limits")


def analyse(spec: AnalysisSpec, series: Mapping[str, Sequence[float] | None]) -> AnalysisResult:
    """The analysis of one step from each metric's points over the step (None: the metric
    could not be read at all, which is no data in every window)."""
    results = []
    for check in spec.metrics:
        points = series.get(check.metric)
        values = (windows(points, spec.measurements) if points is not None
                  else [None] * spec.measurements)
        results.append(assess(check, values, spec))
    worst = max(results, key=lambda r: _WORST[r.phase])
    return AnalysisResult(phase=worst.phase, reason=worst.reason, metrics=results)
