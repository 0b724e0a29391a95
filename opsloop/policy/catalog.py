"""What the rest of opsloop can do, as the policy checker needs to know it.

Mirrors the tables in docs/INTERFACES.md; the checker warns when a policy names an action
or metric outside them, because such a policy would silently never apply.
"""

from __future__ import annotations

# Action type -> reversible (the actuator can undo it).
ACTUATOR_ACTIONS: dict[str, bool] = {
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

METRICS: frozenset[str] = frozenset(
    {
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
    }
)
