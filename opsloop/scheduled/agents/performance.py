"""Performance (hourly): per-service regressions against the service's own baseline."""

from __future__ import annotations

from typing import Any

from opsloop.scheduled.base import AgentContext, Analysis


class Performance:
    name = "performance"
    purpose = ("Keep per-service baselines of latency, error ratio and throughput; find "
               "regressions by change-point detection and attribute each to the change "
               "before it.")
    tools = ("metric_history", "deploys", "flag_changes")

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        return {}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        return Analysis(summary="performance: not built yet")
