"""One service's computed telemetry for one simulated minute, shared by physics and logs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Reading:
    """One service's telemetry for one minute, with the causes behind its errors (for logs)."""

    rps: float
    error: float
    p50: float
    p95: float
    p99: float
    cpu: float
    memory: float
    disk: float
    saturation: float
    cost: float
    replicas: int
    latency_ratio: float  # own p99 against the healthy own p99
    causes: dict[str, float] = field(default_factory=dict)  # own error contributions
    upstream: dict[str, float] = field(default_factory=dict)  # callee -> surfaced error share
    oom_instance: str | None = None
