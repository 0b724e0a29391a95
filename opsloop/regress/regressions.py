"""One service's metric: its change points in a window, which are regressions, and why.

A change point is a regression when it moves the metric the bad way (latency and errors up,
throughput down) by at least the metric's rule: a relative change of the mean and, where a
tiny base makes relative changes meaningless (an error ratio of 0.03%), an absolute one. It
is *persistent* when it is the series' last change point, i.e. it still holds now, and has
held for `persist_for`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsloop.regress.attribute import Attribution, ProductionChange, attribute
from opsloop.regress.changepoints import ChangePoint, Detector, change_points
from opsloop.regress.series import step_of


@dataclass(frozen=True)
class MetricRule:
    """When a change of one metric counts as a regression."""

    metric: str
    worse: int  # +1: higher is worse (latency, errors); -1: lower is worse (throughput)
    min_change: float  # relative change of the mean, 0.03 = 3%
    min_absolute: float = 0.0  # and at least this much in the metric's unit

    def is_regression(self, point: ChangePoint) -> bool:
        change = point.change
        delta = point.mean_after - point.mean_before
        return (change is not None and delta * self.worse > 0
                and abs(change) >= self.min_change and abs(delta) >= self.min_absolute)


# The metrics a service's performance baseline is kept for, and their regression rules.
RULES: tuple[MetricRule, ...] = (
    MetricRule("latency_p50_ms", +1, 0.03),
    MetricRule("latency_p99_ms", +1, 0.03),
    # Relative changes of a ratio near zero are noise-sized: also +0.1 percentage points.
    MetricRule("error_ratio", +1, 0.5, 0.001),
    # Traffic follows the day (a few % over hours): only a clear drop is a regression.
    MetricRule("requests_per_second", -1, 0.10),
)


@dataclass(frozen=True)
class MetricChange:
    """One significant change point of one metric, as the report shows it."""

    service: str
    metric: str
    at: datetime
    point: ChangePoint
    regression: bool
    persistent: bool  # still holds at the end of the series, and has for `persist_for`
    held_for: timedelta  # from the change to the next one, or to the series' end
    attribution: Attribution | None

    def to_dict(self) -> dict[str, Any]:
        a = self.attribution
        return {"service": self.service, "metric": self.metric, "at": self.at.isoformat(),
                **self.point.to_dict(), "regression": self.regression,
                "persistent": self.persistent,
                "held_minutes": int(self.held_for.total_seconds() // 60),
                "attributed_to": None if a is None else {
                    **a.change.model_dump(mode="json"), "own": a.own,
                    "rivals": [r.what for r in a.rivals]}}


def find_changes(service: str, rule: MetricRule, times: Sequence[datetime],
                 values: Sequence[float], changes: Sequence[ProductionChange], *,
                 since: datetime, persist_for: timedelta,
                 detector: Detector | None = None) -> list[MetricChange]:
    """The change points of one metric at or after `since`, judged and attributed."""
    if len(times) != len(values):
        raise ValueError(f"{service} {rule.metric}: {len(times)} times for "
                         f"{len(values)} values")
    points = change_points(values, detector)
    if not points:
        return []
    step = step_of(list(times))
    end = times[-1] + step
    found = []
    for i, point in enumerate(points):
        at = times[point.index]
        if at < since:
            continue
        last = i == len(points) - 1
        held = (end if last else times[points[i + 1].index]) - at
        found.append(MetricChange(
            service=service, metric=rule.metric, at=at, point=point,
            regression=rule.is_regression(point),
            persistent=last and held >= persist_for, held_for=held,
            attribution=attribute(at, service, changes)))
    return found
