"""Shared helpers for the policy tests (no tests here): shipped policies, fixed telemetry."""

from __future__ import annotations

import functools
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsloop.models import MetricPoint, MetricSeries, ServiceInfo
from opsloop.policy import Policies, load_policies

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

# The built-in fleet's call graph (caller -> callees).
FLEET: dict[str, tuple[int, list[str]]] = {
    "web": (1, ["api-gateway"]),
    "api-gateway": (1, ["checkout", "search", "recommendations"]),
    "checkout": (1, ["payments", "inventory", "redis"]),
    "payments": (1, []),
    "postgres": (1, []),
    "inventory": (2, ["postgres"]),
    "search": (2, ["redis"]),
    "redis": (2, []),
    "recommendations": (3, ["postgres"]),
}


@functools.cache
def shipped() -> Policies:
    """policies/ as shipped, read once per run (every policy model is frozen)."""
    return load_policies(POLICIES_DIR)


def copy_policies(tmp: Path) -> Path:
    target = tmp / "policies"
    shutil.copytree(POLICIES_DIR, target)
    return target


def edit(directory: Path, name: str, old: str, new: str) -> None:
    path = directory / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


class FixedTelemetry:
    """Telemetry over fixed per-minute series; a metric never set reads as no data."""

    def __init__(self, series: dict[tuple[str, str], list[float]] | None = None) -> None:
        self.series = series or {}

    def set(self, service: str, metric: str, values: list[float]) -> FixedTelemetry:
        self.series[(service, metric)] = values
        return self

    def services(self) -> list[ServiceInfo]:
        return [
            ServiceInfo(name=name, tier=tier, dependencies=deps, replicas=4, version="1")
            for name, (tier, deps) in FLEET.items()
        ]

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        if service not in FLEET:
            raise KeyError(service)
        values = self.series.get((service, metric), [])[-minutes:]
        start = NOW - timedelta(minutes=len(values))
        points = [
            MetricPoint(at=start + timedelta(minutes=i), value=v) for i, v in enumerate(values)
        ]
        return MetricSeries(service=service, metric=metric, points=points)


def steady(value: float, minutes: int) -> list[float]:
    return [value] * minutes
