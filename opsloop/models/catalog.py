"""The shared vocabulary: metric names every telemetry backend serves, action types every
actuator understands (and whether it can undo them). Policies are checked against these.
"""

from __future__ import annotations

METRICS: tuple[str, ...] = (
    "requests_per_second",
    "error_ratio",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "cpu_utilization",
    "memory_utilization",
    "disk_utilization",
    "saturation",
    "cost_per_hour",
    "replicas",
)

# Action type -> reversible (an actuator can undo it after a failed verification).
ACTION_TYPES: dict[str, bool] = {
    "rollback_deploy": True,
    "restart": False,
    "replace_instance": False,
    "scale_out": True,
    "scale_in": True,
    "disable_flag": True,
    "set_flag_rollout": True,
    "failover": True,
    "purge_logs": False,
    "expand_volume": False,
    "abort_experiment": False,
}
