"""The simulated fleet in Prometheus' text exposition format (version 0.0.4), for scraping.

Each catalog metric is a gauge `opsloop_sim_<metric>{service, team, tier}` holding the value
of the last simulated minute (latencies in seconds, Prometheus' base unit);
`opsloop_sim_service_info` carries the catalog (version, region, dependencies) as labels,
the way kube-state-metrics publishes `*_info` series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from opsloop.models.catalog import METRICS
from opsloop.simulator.state import SimState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "opsloop_sim_"

# Prometheus names carry base units: latencies go out in seconds (promql.yaml scales back).
_EXPOSED: dict[str, tuple[str, float]] = {
    "latency_p50_ms": ("latency_p50_seconds", 0.001),
    "latency_p95_ms": ("latency_p95_seconds", 0.001),
    "latency_p99_ms": ("latency_p99_seconds", 0.001),
}

_HELP = {
    "requests_per_second": "Requests served per second.",
    "error_ratio": "Failed requests / total requests over the last minute.",
    "latency_p50_ms": "Median request latency in seconds.",
    "latency_p95_ms": "95th percentile request latency in seconds.",
    "latency_p99_ms": "99th percentile request latency in seconds.",
    "cpu_utilization": "CPU used / CPU requested, 0..1.",
    "memory_utilization": "Memory used / memory limit, 0..1.",
    "disk_utilization": "Disk used / disk size, 0..1.",
    "saturation": "In-flight load / capacity, 0..1 and beyond when overloaded.",
    "cost_per_hour": "Spend in USD per hour.",
    "replicas": "Running replicas.",
}


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed escaped, as the text format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(state: SimState) -> str:
    """Every service's metrics at the last simulated minute, one family after another."""
    lines: list[str] = []
    services = sorted(state.services.values(), key=lambda s: s.name)
    for metric in METRICS:
        exposed, factor = _EXPOSED.get(metric, (metric, 1.0))
        name = PREFIX + exposed
        lines.append(f"# HELP {name} {_escape_help(_HELP.get(metric, metric))}")
        lines.append(f"# TYPE {name} gauge")
        for svc in services:
            values = state.series.get(svc.name, {}).get(metric, [])
            if not values:
                continue
            labels = _labels([("service", svc.name), ("team", svc.team), ("tier", str(svc.tier))])
            lines.append(f"{name}{labels} {_number(values[-1] * factor)}")
    info = PREFIX + "service_info"
    lines.append(f"# HELP {info} The service catalog; the value is always 1.")
    lines.append(f"# TYPE {info} gauge")
    for svc in services:
        deps = [c.callee for c in svc.calls]
        if svc.external_dependency:
            deps.append(svc.external_dependency)
        labels = _labels([
            ("dependencies", ",".join(deps)),
            ("region", svc.region),
            ("service", svc.name),
            ("team", svc.team),
            ("tier", str(svc.tier)),
            ("version", svc.version),
        ])
        lines.append(f"{info}{labels} 1")
    tick = PREFIX + "tick"
    lines.append(f"# HELP {tick} The last simulated minute (0 = 09:00 on the first day).")
    lines.append(f"# TYPE {tick} gauge")
    lines.append(f"{tick} {state.tick}")
    return "\n".join(lines) + "\n"
