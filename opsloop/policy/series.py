"""Reading windows of telemetry the way every policy evaluator needs them."""

from __future__ import annotations

from collections.abc import Callable

from opsloop.tools.protocols import Telemetry


def window_values(telemetry: Telemetry, service: str, metric: str, minutes: int) -> list[float]:
    """The last `minutes` values, oldest first; empty when the service or metric is unknown."""
    try:
        return telemetry.metric(service, metric, minutes).values()
    except KeyError:
        return []


def window_mean(telemetry: Telemetry, service: str, metric: str, minutes: int) -> float | None:
    """Mean over the last `minutes` (each minute weighs the same); None without data.

    Uses the backend's `average()` when it has one: a 3-day window is 4,320 points that
    the simulator can sum without building them.
    """
    average: Callable[[str, str, int], float | None] | None = getattr(telemetry, "average", None)
    if average is not None:
        try:
            return average(service, metric, minutes)
        except KeyError:
            return None
    values = window_values(telemetry, service, metric, minutes)
    return sum(values) / len(values) if values else None
