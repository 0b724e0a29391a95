"""The capacity agent: per service and resource, a forecast with intervals, time to exhaustion,
and the decision capacity.yaml asks for — scale ahead of the crossing, alert, or escalate.

Every few hours it reads each service's CPU, memory, disk and saturation history (capacity.yaml
`forecast.history`), forecasts `forecast.horizon` ahead (opsloop.forecast: the model and why
it was chosen are in the report), and decides per series with `decide`, a pure function that
names the rule that decided, strictest first:

1. **escalate** — the resource is at `escalate_at` now, or the forecast reaches `escalate_at`
   or its `limit` (exhaustion) sooner than `forecast.lead_time`, the time a person needs:
   a finding (critical) and a signal; no proposal, as escalate_at means "a human even if
   scaling is possible" — the scale-out that would help is named in the evidence;
2. **alert** — at or forecast to reach `alert_at` within the horizon: a finding (warning) and
   a signal, and for a resource replicas relieve, the scale-out proposal as well;
3. **scale** — at or forecast to reach `scale_at` within the horizon: for CPU and saturation
   a scale_out proposal sized so the forecast peak (upper 80% bound) stays under scale_at,
   inside capacity.yaml's replica bounds and step; memory and disk are not relieved by more
   replicas (a leak or a fill follows each replica), so for them it is a finding (info).

Replicas are a resource too, for services with an autoscaler (capacity_replicas): the
replicas it will need against its maximum, when the maximum is reached, alert or escalate
from capacity.yaml's `autoscaling` — never scale, and the scale-out above is withheld for
a service whose autoscaler is near its maximum (raising it is a person's decision).

Crossings are where the forecast's mean reaches a level; the 80% interval's bounds give the
earliest and latest time (the report shows both). The agent never acts: its proposals go
through the incidents' guardrails -> approval -> act -> verify path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from opsloop.agents.signals import signal_id, write_signals
from opsloop.forecast import Crossing, Forecast, Kind, crossing, forecast, regular, step_for
from opsloop.forecast.model import NotEnoughHistory
from opsloop.models import RemediationAction, RemediationProposal, Signal
from opsloop.policy.schema.capacity import Replicas, ResourceThresholds
from opsloop.scheduled.agents.capacity_replicas import (
    analyse_replicas,
    finding_parts,
    observe_replicas,
)
from opsloop.scheduled.agents.capacity_report import write_reports
from opsloop.scheduled.base import AgentContext, Analysis, Finding

# More replicas spread load (CPU, saturation); they do not empty a disk or a leaking heap.
SCALES_WITH_REPLICAS = frozenset({"cpu_utilization", "saturation"})
FILLS = frozenset({"disk_utilization"})  # forecast as a linear fill, not a seasonal level
FILL_STEP = 5  # minutes
FILL_HISTORY = 7 * 24 * 60  # minutes of a fill's history forecast from
HORIZON_PER_HISTORY = 2  # never forecast further ahead than twice the history seen
LEVEL = 80  # the interval the crossing times are reported with
ORDER = ("none", "scale", "alert", "escalate")


@dataclass(frozen=True)
class Decision:
    """What to do about one series, and the capacity.yaml rule that decided it."""

    action: str  # none | scale | alert | escalate
    rule: str
    reason: str


def _at(c: Crossing, steps: int) -> bool:
    return c.expected is not None and c.expected <= steps


def decide(resource: str, thresholds: ResourceThresholds, latest: float,
           crossings: dict[str, Crossing], lead_steps: int, step_minutes: int) -> Decision:
    """The strictest decision the forecast calls for (see the module docstring)."""
    rule = f"capacity.yaml:resources.{resource}"

    def when(name: str) -> str:
        steps = crossings[name].expected or 0
        return "now" if steps == 0 else f"in ~{_hours(steps, step_minutes)}"

    if latest >= thresholds.escalate_at:
        return Decision("escalate", f"{rule}.escalate_at",
                        f"at {latest:.2f} now, past escalate_at {thresholds.escalate_at:g}")
    for name in ("limit", "escalate_at"):
        if _at(crossings[name], lead_steps):
            level = getattr(thresholds, name)
            what = "exhausted" if name == "limit" else "past escalate_at"
            return Decision("escalate", "capacity.yaml:forecast.lead_time",
                            f"forecast {what} ({level:g}) {when(name)}, sooner than the "
                            f"{_hours(lead_steps, step_minutes)} a person needs")
    for name, action in (("alert_at", "alert"), ("scale_at", "scale")):
        if crossings[name].expected is not None:
            level = getattr(thresholds, name)
            return Decision(action, f"{rule}.{name}",
                            f"forecast reaches {name} {level:g} {when(name)}")
    return Decision("none", "", "stays under scale_at over the horizon")


def target_replicas(current: int, peak: float, scale_at: float, service: str,
                    bounds: Replicas) -> tuple[int | None, str]:
    """Replicas that keep `peak` (load per replica scales as 1/replicas) under `scale_at`,
    inside capacity.yaml's bounds and step; None with the reason when no scale-out fits."""
    top = bounds.bounds_for(service).max
    if current >= top:
        return None, f"already at capacity.yaml's maximum of {top} replicas"
    needed = max(current + 1, math.ceil(current * peak / scale_at))
    target = min(needed, top, current + bounds.max_scale_step)
    note = "" if target >= needed else (
        f"; {needed} would be needed, capped by capacity.yaml "
        f"({'max' if target == top else 'max_scale_step'})")
    return target, (f"{current} → {target} replicas brings the forecast peak (80% upper) "
                    f"from {peak:.2f} to {peak * current / target:.2f} (scale_at "
                    f"{scale_at:g}){note}")


class Capacity:
    name = "capacity"
    purpose = ("Forecast each service's CPU, memory, disk, saturation and the replicas its "
               "autoscaler will need with prediction intervals; time to exhaustion (or to "
               "the autoscaler's maximum); scale ahead of the crossing, alert, or escalate "
               "when exhaustion comes before a person could act.")
    tools = ("metric_history", "service_catalog")

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        policy = ctx.policies.capacity
        services = {s.name: s.replicas for s in ctx.telemetry.services()}
        rows: list[dict[str, Any]] = []
        for service in sorted(services):
            for resource in policy.resources:
                try:
                    points = ctx.telemetry.metric(service, resource,
                                                 policy.forecast.history).points
                except KeyError:
                    continue
                finite = [p for p in points if math.isfinite(p.value)]
                if len(finite) < 2:
                    continue
                span = (finite[-1].at - finite[0].at).total_seconds() / 60
                # A fill has no daily cycle to resolve, and its rate can change within
                # the hour (a log level switched): it keeps 5-minute points.
                # Its rate is what it has been lately: the last FILL_HISTORY is enough.
                step = min(step_for(span), FILL_STEP) if resource in FILLS else step_for(span)
                grid = regular([p.at for p in finite], [p.value for p in finite], step)
                values = grid.values
                if resource in FILLS:
                    values = values[-FILL_HISTORY // step:]
                    span = min(span, FILL_HISTORY)
                rows.append({"service": service, "resource": resource,
                             "end": grid.end.isoformat(), "step_minutes": grid.step_minutes,
                             "history_minutes": round(span), "filled": grid.filled,
                             # The newest bucket, not the newest minute: one noisy
                             # minute over a threshold is not "there now".
                             "latest": round(float(values[-1]), 6),
                             "values": [round(float(v), 6) for v in values]})
        autoscalers = [row for row in (observe_replicas(ctx, service, services[service])
                                       for service in sorted(services)) if row is not None]
        return {"at": ctx.now.isoformat(), "replicas": services, "series": rows,
                "autoscalers": autoscalers}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        policy = ctx.policies.capacity
        replicas: dict[str, int] = observed.get("replicas", {})
        rows = [_analyse_series(row, policy.resources[row["resource"]],
                                policy.forecast.horizon, policy.forecast.lead_time)
                for row in observed.get("series", []) if row["resource"] in policy.resources]
        autoscalers = [analyse_replicas(row, policy) for row in observed.get("autoscalers", [])]
        # An autoscaler at or near its maximum: more replicas is raising the maximum, which
        # is a person's call (capacity_replicas), so the agent's own scale-out is withheld.
        capped = {r["service"]: r for r in autoscalers if r["decision"]["action"] != "none"}
        proposals, findings, signals = [], [], []
        for service in sorted({r["service"] for r in rows}):
            mine = [r for r in rows if r["service"] == service]
            scaled = _scale(service, mine, replicas.get(service), policy.replicas,
                            policy.resources)
            if scaled is not None and service in capped:
                top = capped[service]["autoscaler"]["max_replicas"]
                for r in mine:
                    if r.get("scale_note"):
                        r["scale_note"] = (f"withheld: the autoscaler is forecast at its "
                                           f"maximum of {top} replicas, and raising it is a "
                                           f"person's decision ({r['scale_note']})")
                scaled = None
            if scaled is not None:
                proposals.append(scaled)
            findings += [_finding(r) for r in mine if r["decision"]["action"] != "none"]
        findings += [_replicas_finding(r) for r in autoscalers
                     if r["decision"]["action"] != "none"]
        for f in findings:
            if f.level != "info":
                signals.append(Signal(
                    id=signal_id("capacity_forecast", f.subject), kind="capacity_forecast",
                    title=f.summary, evidence=f.evidence,
                    suggested_mission=f"Give {f.subject.split(' ')[0]} the headroom it is "
                                      f"forecast to run out of, or remove what consumes it",
                    created_at=ctx.now))
        written = write_signals(signals, ctx.signals_dir) if signals else []
        counts = {a: sum(r["decision"]["action"] == a for r in rows) for a in ORDER[1:]}
        headline = (f"{len(rows)} series forecast: {counts['escalate']} to escalate, "
                    f"{counts['alert']} to alert, {counts['scale']} to scale; "
                    f"{len(proposals)} scale-out proposal(s)")
        if autoscalers:
            near = sum(r["decision"]["action"] != "none" for r in autoscalers)
            headline += f"; {len(autoscalers)} autoscaler(s), {near} near their maximum"
        report = {"at": observed.get("at"), "headline": headline,
                  "policy": policy.forecast.model_dump(),
                  "autoscaling": policy.autoscaling.model_dump(), "rows": rows,
                  "autoscalers": autoscalers,
                  "proposals": [p.model_dump(mode="json") for p in proposals],
                  "findings": [f.model_dump(mode="json") for f in findings]}
        reports = write_reports(ctx.reports_dir / f"capacity-{ctx.due_at.date().isoformat()}",
                                report, observed.get("series", []))
        return Analysis(summary=headline, findings=findings, proposals=proposals,
                        reports=[str(p) for p in reports], signals=[str(p) for p in written])


def _hours(steps: int, step_minutes: int) -> str:
    minutes = steps * step_minutes
    return f"{minutes / 60:.1f} h" if minutes >= 60 else f"{minutes} min"


def _crossing_row(c: Crossing, end: datetime, step: int) -> dict[str, Any]:
    def at(steps: int | None) -> str | None:
        return None if steps is None else _iso(end, steps * step)

    return {"level": c.limit, "expected": at(c.expected), "earliest": at(c.earliest),
            "latest": at(c.latest),
            "expected_hours": None if c.expected is None else c.expected * step / 60}


def _iso(end: datetime, minutes: float) -> str:
    from datetime import timedelta

    return (end + timedelta(minutes=minutes)).isoformat()


def _analyse_series(row: dict[str, Any], thresholds: ResourceThresholds, horizon_minutes: int,
                    lead_minutes: int) -> dict[str, Any]:
    step = int(row["step_minutes"])
    horizon = min(horizon_minutes, HORIZON_PER_HISTORY * max(row["history_minutes"], step))
    steps = max(1, math.ceil(horizon / step))
    out = {k: row[k] for k in ("service", "resource", "end", "step_minutes", "latest",
                               "history_minutes")}
    kind = Kind.FILL if row["resource"] in FILLS else Kind.LEVEL
    try:
        fc = forecast(np.asarray(row["values"], dtype=float), step, steps, kind)
    except (NotEnoughHistory, ArithmeticError, ValueError) as exc:
        return {**out, "decision": {"action": "none", "rule": "",
                                    "reason": f"no forecast: {exc}"}, "forecast": None}
    levels = {name: getattr(thresholds, name)
              for name in ("scale_at", "alert_at", "escalate_at", "limit")}
    crossings = {name: crossing(fc, level, LEVEL, now=row["latest"])
                 for name, level in levels.items()}
    decision = decide(row["resource"], thresholds, float(row["latest"]), crossings,
                      max(1, math.ceil(lead_minutes / step)), step)
    end = datetime.fromisoformat(row["end"])
    return {**out, "horizon_minutes": steps * step, "forecast": _forecast_row(fc),
            "crossings": {n: _crossing_row(c, end, step) for n, c in crossings.items()},
            "exhaustion": _crossing_row(crossings["limit"], end, step),
            "peak_hi80": float(np.max(fc.hi80)), "decision": vars(decision)}


def _forecast_row(fc: Forecast) -> dict[str, Any]:
    def r(a: np.ndarray) -> list[float]:
        return [round(float(v), 6) for v in a]

    return {"model": fc.model, "rule": fc.rule, "mean": r(fc.mean), "lo80": r(fc.lo80),
            "hi80": r(fc.hi80), "lo95": r(fc.lo95), "hi95": r(fc.hi95)}


def _scale(service: str, rows: list[dict[str, Any]], current: int | None, bounds: Replicas,
           resources: Mapping[Any, ResourceThresholds]) -> RemediationProposal | None:
    """One scale_out per service, for the resource that needs the most replicas."""
    wanted = []
    for row in rows:
        action = row["decision"]["action"]
        if row["resource"] not in SCALES_WITH_REPLICAS or action not in ("scale", "alert",
                                                                         "escalate"):
            continue
        if current is None:
            row["scale_note"] = "current replica count unknown: cannot size a scale-out"
            continue
        target, why = target_replicas(current, row["peak_hi80"],
                                      resources[row["resource"]].scale_at, service, bounds)
        row["scale_note"] = why
        if target is not None and action != "escalate":
            wanted.append((target, row, why))
    if not wanted:
        return None
    target, row, why = max(wanted, key=lambda w: w[0])
    sure = row["crossings"]["scale_at"]["latest"] is not None  # even the lower bound crosses
    return RemediationProposal(
        action=RemediationAction(
            id=f"capacity-{service}", type="scale_out", service=service,
            params={"replicas": target},
            reason=f"{row['resource']}: {row['decision']['reason']}"),
        specialist="capacity", hypothesis_id=f"capacity:{service}:{row['resource']}",
        # Below the guardrails' min_confidence when only the mean crosses: a person looks.
        confidence=0.9 if sure else 0.6,
        rationale=f"{row['decision']['reason']} ({row['forecast']['model']}); {why}")


def _finding(row: dict[str, Any]) -> Finding:
    d = row["decision"]
    exh = row["exhaustion"]
    level = {"escalate": "critical", "alert": "warning"}.get(d["action"], "info")
    evidence = [d["reason"], f"rule {d['rule']}",
                f"model {row['forecast']['model']}: {row['forecast']['rule']}"]
    if exh["expected"] is not None:
        evidence.append(f"exhaustion ({exh['level']:g}) expected {exh['expected'][:16]}, "
                        f"{LEVEL}% interval {(exh['earliest'] or '?')[:16]} to "
                        f"{(exh['latest'] or 'beyond the horizon')[:16]}")
    else:
        evidence.append(f"no exhaustion ({exh['level']:g}) expected within "
                        f"{row['horizon_minutes'] / 60:.0f} h")
    if row.get("scale_note"):
        evidence.append(f"scale-out: {row['scale_note']}")
    return Finding(kind=f"capacity_{d['action']}", level=level,
                   subject=f"{row['service']} {row['resource']}",
                   summary=f"{row['service']} {row['resource']}: {d['reason']}",
                   evidence=evidence,
                   data={k: row[k] for k in ("service", "resource", "latest", "exhaustion",
                                             "decision")})


def _replicas_finding(row: dict[str, Any]) -> Finding:
    level, evidence = finding_parts(row)
    return Finding(kind=f"capacity_{row['decision']['action']}", level=level,
                   subject=f"{row['service']} replicas",
                   summary=f"{row['service']} replicas: {row['decision']['reason']}",
                   evidence=evidence,
                   data={k: row[k] for k in ("service", "resource", "latest", "replicas_now",
                                             "autoscaler", "time_to_max", "decision")})
