"""The specialists: what each one is for and which tools it may use.

A table rather than eight modules: offline they share one runbook-following reasoner, and
what differs between them (purpose, tool set) is data. Their names are the catalog's
(`opsloop.models.catalog.SpecialistName`), which runbooks and the graph's routing use too.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.models.catalog import SpecialistName

_COMMON = frozenset({"metric_stat", "metric_change", "metric_trend", "log_search", "service_info"})


@dataclass(frozen=True)
class Specialist:
    name: SpecialistName
    purpose: str
    tools: frozenset[str]


SPECIALISTS: dict[str, Specialist] = {
    s.name: s
    for s in (
        Specialist("health", "SLOs, error budgets and unhealthy instances",
                   _COMMON | {"dependency_health"}),
        Specialist("incident", "customer-facing outages: bad changes, failing dependencies",
                   _COMMON | {"recent_deploys", "recent_flag_changes", "dependency_health"}),
        Specialist("remediation", "process and host faults: leaks, full disks, crash loops",
                   _COMMON | {"recent_deploys"}),
        Specialist("rollout", "progressive feature-flag rollouts and kill switches",
                   _COMMON | {"recent_flag_changes", "flag_states", "recent_deploys"}),
        Specialist("capacity", "saturation, traffic growth and scaling", _COMMON),
        Specialist("performance", "latency baselines and regressions",
                   _COMMON | {"recent_deploys", "dependency_health"}),
        Specialist("resilience", "chaos experiments and their steady-state hypotheses",
                   _COMMON | {"running_experiments", "dependency_health"}),
        Specialist("cost", "spend, runaway scaling and savings", _COMMON | {"recent_deploys"}),
    )
}
