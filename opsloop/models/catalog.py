"""The shared vocabulary: metric names every telemetry backend serves, action types every
actuator understands (and whether it can undo them), the specialists, and the diagnostic
tools with their parameters. Policies, runbooks and backends are checked against these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

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
    "deploy_version": True,  # a published release forward (security patches); undo redeploys
    # A GameDay: its rollbacks run inside the run, so there is nothing left to undo after.
    "run_chaos_experiment": False,
}

# The specialists a runbook may name and the supervisor may route to; what each is for and
# which tools it may call is the agents' table (opsloop/agents/specialists.py).
SpecialistName = Literal[
    "health", "incident", "remediation", "rollout", "capacity", "performance", "resilience", "cost"
]
SPECIALIST_NAMES: tuple[SpecialistName, ...] = get_args(SpecialistName)


ParamType = type[str] | type[int] | type[float]
ParamDefault = str | int | float | None


@dataclass(frozen=True)
class ToolParam:
    """One parameter of a diagnostic tool: its type, and the default when it is optional."""

    type: ParamType
    required: bool = False
    default: ParamDefault = None


def _needs(kind: ParamType) -> ToolParam:
    return ToolParam(kind, required=True)


def _may(kind: ParamType, default: ParamDefault) -> ToolParam:
    return ToolParam(kind, default=default)


# Tool name -> its parameters, in call order. Runbook checks are validated against this;
# the toolbox refuses to register a tool whose signature says anything else.
TOOLS: dict[str, dict[str, ToolParam]] = {
    "metric_stat": {"service": _needs(str), "metric": _needs(str), "minutes": _may(int, 10),
                    "agg": _may(str, "avg")},
    "metric_change": {"service": _needs(str), "metric": _needs(str), "minutes": _may(int, 10),
                      "baseline_minutes": _may(int, 60)},
    "metric_trend": {"service": _needs(str), "metric": _needs(str), "minutes": _may(int, 60)},
    "log_search": {"service": _needs(str), "pattern": _needs(str), "minutes": _may(int, 15),
                   "level": _may(str, None)},
    "recent_deploys": {"service": _needs(str), "minutes": _may(int, 60)},
    "recent_flag_changes": {"service": _needs(str), "minutes": _may(int, 60)},
    "flag_states": {"service": _needs(str)},
    "dependency_health": {"service": _needs(str), "minutes": _may(int, 5)},
    "running_experiments": {"service": _needs(str)},
    "service_info": {"service": _needs(str)},
    # The causal evidence layer (opsloop/tools/log_templates.py, opsloop/tools/evidence.py).
    "log_classes": {"service": _needs(str), "minutes": _may(int, 15),
                    "baseline_minutes": _may(int, 120)},
    "callers_report": {"service": _needs(str), "minutes": _may(int, 15)},
    "traffic_origin": {"service": _needs(str), "minutes": _may(int, 15),
                       "baseline_minutes": _may(int, 60)},
    "failover_target": {"service": _needs(str)},
    "changes_before": {"service": _needs(str), "minutes": _may(int, 120)},
}

# The template classes `log_classes` and `callers_report` sort mined log templates into;
# runbooks name them (`classes.tls.surging`, `worst_class == dns`). The first that matches a
# template wins, so the order runs from the most specific cause to the most generic symptom;
# what each matches is opsloop/tools/log_templates.py's table. `other` is everything else.
LogClass = Literal[
    "tls", "dns", "oom", "disk_full", "pool_exhausted", "resource_limit", "cpu", "rate_limited",
    "auth", "retry", "connection_refused", "timeout", "unavailable", "cache_miss", "exception",
    "config", "other",
]
LOG_CLASSES: tuple[LogClass, ...] = get_args(LogClass)
