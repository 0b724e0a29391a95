"""Replicas as a capacity resource: the replicas a service's autoscaler will need against
its maximum, when the maximum is reached, and what capacity.yaml says to do about it.

The demand is the autoscaler's own: a Kubernetes HPA on CPU wants
`ceil(replicas x CPU utilisation / target CPU)` replicas, so the series forecast is
`needed = replicas x cpu_utilization / target_cpu` (unrounded), from the same CPU and
replica telemetry the capacity agent reads. The maximum is reached when `needed` reaches
`max_replicas`: past it the replicas run hotter than the target and nothing automatic adds
more. The autoscaler's limits come from the change feed (the newest "HorizontalPodAutoscaler
<service> updated (... -> targetCPU T%, maxReplicas M)" line within the history read),
else from capacity.yaml's `autoscaling.services`; a service with neither has no row.

`decide_replicas` (pure, names the rule): **escalate** when `needed` is at the maximum now or
forecast to reach it sooner than `forecast.lead_time`; **alert** when it is forecast to
reach `autoscaling.alert_at` x max (or the maximum) within the horizon; else nothing. Never
scale: a scale-out past the autoscaler's maximum is raising the maximum, a person's call,
so while a service's autoscaler is near its maximum the agent's own scale-out for that
service is withheld and the finding says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from opsloop.forecast import Crossing, Kind, crossing, forecast, regular, step_for
from opsloop.forecast.model import NotEnoughHistory
from opsloop.policy.schema.capacity import AutoscalerSpec, CapacityPolicy
from opsloop.scheduled.base import AgentContext

RESOURCE = "replicas"
LEVEL = 80
HORIZON_PER_HISTORY = 2
HPA_UPDATED = re.compile(r"HorizontalPodAutoscaler (?P<service>\S+) updated \(.*-> "
                         r"targetCPU (?P<target>\d+(?:\.\d+)?)%, "
                         r"maxReplicas (?P<max>\d+)\)")
HPA_LOG = "HorizontalPodAutoscaler .* updated"


@dataclass(frozen=True)
class Decision:
    action: str  # none | alert | escalate
    rule: str
    reason: str


def autoscaler_for(ctx: AgentContext, service: str, minutes: int
                   ) -> tuple[AutoscalerSpec, str] | None:
    """The service's autoscaler limits and where they came from, or None when unknown."""
    try:
        lines = ctx.telemetry.logs(service, minutes, HPA_LOG, limit=50)
    except KeyError:
        lines = []
    for line in reversed(lines):  # the newest update is the one in force
        found = HPA_UPDATED.search(line.message)
        if found and found["service"] == service:
            spec = AutoscalerSpec(max_replicas=int(found["max"]),
                                  target_cpu=float(found["target"]) / 100)
            return spec, f"change feed {line.at.isoformat()[:16]}"
    declared = ctx.policies.capacity.autoscaling.services.get(service)
    if declared is None:
        return None
    return declared, f"capacity.yaml:autoscaling.services.{service}"


def observe_replicas(ctx: AgentContext, service: str, replicas_now: int | None
                     ) -> dict[str, Any] | None:
    """The needed-replicas series of one autoscaled service (None: no autoscaler known)."""
    policy = ctx.policies.capacity
    found = autoscaler_for(ctx, service, policy.forecast.history)
    if found is None:
        return None
    spec, source = found
    try:
        cpu = ctx.telemetry.metric(service, "cpu_utilization", policy.forecast.history).points
        count = {p.at: p.value
                 for p in ctx.telemetry.metric(service, RESOURCE, policy.forecast.history).points}
    except KeyError:
        return None
    pairs = [(p.at, count[p.at] * p.value / spec.target_cpu) for p in cpu
             if p.at in count and math.isfinite(p.value) and math.isfinite(count[p.at])]
    if len(pairs) < 2:
        return None
    span = (pairs[-1][0] - pairs[0][0]).total_seconds() / 60
    grid = regular([t for t, _ in pairs], [v for _, v in pairs], step_for(span))
    return {"service": service, "resource": RESOURCE, "end": grid.end.isoformat(),
            "step_minutes": grid.step_minutes, "history_minutes": round(span),
            "latest": round(float(grid.values[-1]), 4), "replicas_now": replicas_now,
            "autoscaler": {"max_replicas": spec.max_replicas, "target_cpu": spec.target_cpu,
                           "source": source},
            "values": [round(float(v), 4) for v in grid.values]}


def decide_replicas(max_replicas: int, alert_at: float, latest: float,
                    crossings: dict[str, Crossing], lead_steps: int, step_minutes: int
                    ) -> Decision:
    """Escalate at the maximum now or sooner than the lead time, alert within the horizon."""
    rule = "capacity.yaml:autoscaling"
    if latest >= max_replicas:
        return Decision("escalate", f"{rule}.max",
                        f"needs {latest:.1f} replicas now, at or past the autoscaler's "
                        f"maximum of {max_replicas}: raising it is a person's decision")
    at_max = crossings["max"].expected
    if at_max is not None and at_max <= lead_steps:
        return Decision("escalate", "capacity.yaml:forecast.lead_time",
                        f"forecast to need the autoscaler's maximum of {max_replicas} "
                        f"replicas in ~{_hours(at_max, step_minutes)}, sooner than the "
                        f"{_hours(lead_steps, step_minutes)} a person needs to raise it")
    for name, what in (("max", f"the maximum of {max_replicas}"),
                       ("alert_at", f"{alert_at:.0%} of the maximum of {max_replicas}")):
        steps = crossings[name].expected
        if steps is not None:
            return Decision("alert", f"{rule}.alert_at",
                            f"forecast to need {what} replicas in ~"
                            f"{_hours(steps, step_minutes)}")
    return Decision("none", "", f"stays under {alert_at:.0%} of the autoscaler's maximum")


def analyse_replicas(row: dict[str, Any], policy: CapacityPolicy) -> dict[str, Any]:
    """Forecast, time to the maximum with its interval, and the decision for one row."""
    step = int(row["step_minutes"])
    horizon = min(policy.forecast.horizon,
                  HORIZON_PER_HISTORY * max(row["history_minutes"], step))
    steps = max(1, math.ceil(horizon / step))
    out = {k: v for k, v in row.items() if k != "values"}
    top = int(row["autoscaler"]["max_replicas"])
    try:
        fc = forecast(np.asarray(row["values"], dtype=float), step, steps, Kind.LEVEL)
    except (NotEnoughHistory, ArithmeticError, ValueError) as exc:
        return {**out, "forecast": None,
                "decision": {"action": "none", "rule": "", "reason": f"no forecast: {exc}"}}
    alert_at = policy.autoscaling.alert_at
    crossings = {"alert_at": crossing(fc, alert_at * top, LEVEL, now=row["latest"]),
                 "max": crossing(fc, float(top), LEVEL, now=row["latest"])}
    decision = decide_replicas(top, alert_at, float(row["latest"]), crossings,
                               max(1, math.ceil(policy.forecast.lead_time / step)), step)
    end = datetime.fromisoformat(row["end"])

    def at(s: int | None) -> str | None:
        return None if s is None else (end + timedelta(minutes=s * step)).isoformat()

    def crossing_row(c: Crossing) -> dict[str, Any]:
        return {"level": c.limit, "expected": at(c.expected), "earliest": at(c.earliest),
                "latest": at(c.latest),
                "expected_hours": None if c.expected is None else c.expected * step / 60}

    return {**out, "horizon_minutes": steps * step,
            "forecast": {"model": fc.model, "rule": fc.rule,
                         "mean": [round(float(v), 3) for v in fc.mean],
                         "hi80": [round(float(v), 3) for v in fc.hi80]},
            "peak_hi80": round(float(np.max(fc.hi80)), 3),
            "crossings": {n: crossing_row(c) for n, c in crossings.items()},
            "time_to_max": crossing_row(crossings["max"]), "decision": vars(decision)}


def finding_parts(row: dict[str, Any]) -> tuple[str, list[str]]:
    """The finding level and evidence for an autoscaler row that needs attention."""
    d, t, a = row["decision"], row["time_to_max"], row["autoscaler"]
    evidence = [d["reason"], f"rule {d['rule']}",
                f"autoscaler max {a['max_replicas']}, target CPU {a['target_cpu']:.0%} "
                f"(from {a['source']}); {row['replicas_now']} replicas now, needs "
                f"{row['latest']:.1f}",
                f"needed = replicas x CPU / target CPU, model {row['forecast']['model']}"]
    if t["expected"] is not None:
        evidence.append(f"maximum reached {t['expected'][:16]}, {LEVEL}% interval "
                        f"{(t['earliest'] or '?')[:16]} to "
                        f"{(t['latest'] or 'beyond the horizon')[:16]}")
    evidence.append("not scaled: past the autoscaler's maximum, raising it is a person's "
                    "decision")
    return ("critical" if d["action"] == "escalate" else "warning"), evidence


def _hours(steps: int, step_minutes: int) -> str:
    minutes = steps * step_minutes
    return f"{minutes / 60:.1f} h" if minutes >= 60 else f"{minutes} min"
