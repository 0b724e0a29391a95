"""The specialists: what each one is for and which tools it may use.

A table rather than eight modules: offline they share one runbook-following reasoner, and
what differs between them (purpose, tool set) is data. Their names are the catalog's
(`opsloop.models.catalog.SpecialistName`), which runbooks and the graph's routing use too.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.models.catalog import SpecialistName

# Every specialist judges metrics against the service's own baseline and reads its logs as
# template classes; what else each may call follows what its runbooks need to tell causes apart.
_COMMON = frozenset({"metric_stat", "metric_change", "metric_trend", "log_search", "log_classes",
                     "service_info"})
_PATH = frozenset({"dependency_health", "callers_report"})  # the topology around a service
_CHANGES = frozenset({"recent_deploys", "changes_before"})


@dataclass(frozen=True)
class Specialist:
    name: SpecialistName
    purpose: str
    tools: frozenset[str]


SPECIALISTS: dict[str, Specialist] = {
    s.name: s
    for s in (
        Specialist("health", "SLOs, error budgets and unhealthy instances", _COMMON | _PATH),
        Specialist("incident", "customer-facing outages: bad changes, failing dependencies",
                   _COMMON | _PATH | _CHANGES
                   | {"recent_flag_changes", "failover_target", "traffic_origin"}),
        Specialist("remediation", "process and host faults: leaks, full disks, crash loops",
                   _COMMON | _CHANGES),
        Specialist("rollout", "progressive feature-flag rollouts and kill switches",
                   _COMMON | _CHANGES | {"recent_flag_changes", "flag_states", "traffic_origin"}),
        Specialist("capacity", "saturation, traffic growth and scaling",
                   _COMMON | _PATH | _CHANGES | {"traffic_origin"}),
        Specialist("performance", "latency baselines and regressions",
                   _COMMON | _PATH | _CHANGES | {"traffic_origin"}),
        Specialist("resilience", "chaos experiments and their steady-state hypotheses",
                   _COMMON | _CHANGES | {"running_experiments", "dependency_health"}),
        Specialist("cost", "spend, runaway scaling and savings",
                   _COMMON | _CHANGES | {"traffic_origin"}),
    )
}
