"""The cost agent (daily): spend per service, region and usage type against expected spend,
cost anomalies with their impact, planned-activity feedback, and rightsizing proposals.

Spend comes as FOCUS rows (`cost_focus`): the simulator's fleet, emitted from each service's
`cost_per_hour` through the Telemetry protocol, and any FOCUS CSV export dropped in
`work/focus/*.csv` (bad rows are named by file, line, column and value and left out), and
OpenCost /allocation responses (`cost_opencost`): saved in `work/opencost/*.json`, and
fetched from capacity.yaml's `cost.opencost.url` when one is set.
Anomalies are judged by `cost_anomalies` over capacity.yaml's `cost.window` ending at the
hour the run is due, so an anomaly nobody has answered is raised again on each daily run
it stays inside the window; one marked "planned activity" (`mark_planned_activity`: who,
why) is listed as planned and not raised again.

Rightsizing compares replicas requested with CPU used: a service whose p95 CPU over
`cost.rightsizing.window` is under `cpu_below` is a scale_in proposal sized so p95 CPU lands
at `target_cpu` (load per replica as 1/replicas), never below capacity.yaml's replica
minimum, and not while a planned activity covers the service. Where OpenCost reports the
service, its CPU used / requested (cpuCoreUsageAverage / cpuCoreRequestAverage) is the p95
judged instead; a service only OpenCost knows gets the requests it could shrink to, and no
proposal (there is no replica count to act on). The agent never acts: the
runner sends its proposals through the incidents' guardrails -> approval path.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from opsloop.agents.signals import signal_id, write_signals
from opsloop.models import RemediationAction, RemediationProposal, Signal
from opsloop.policy.schema.capacity import CostPolicy, Replicas
from opsloop.scheduled.agents.cost_anomalies import detect
from opsloop.scheduled.agents.cost_daily_report import write_reports
from opsloop.scheduled.agents.cost_focus import (
    Charge,
    charge_of,
    check_row,
    fleet_rows,
    problems_json,
    read_focus,
)
from opsloop.scheduled.agents.cost_opencost import cpu_requested_vs_used, fetch, read_files
from opsloop.scheduled.agents.cost_planned import (
    PLANNED,
    covers,
    load_feedback,
    mark_planned,
    window,
)
from opsloop.scheduled.base import AgentContext, Analysis, Finding
from opsloop.settings import Settings

HOUR = timedelta(hours=1)
FEEDBACK_FILE = "cost-feedback.json"
CHANGE_CONTEXT = timedelta(hours=24)  # changes this long before an anomaly are shown with it
SCALING_LOG = "HorizontalPodAutoscaler"


def feedback_path(settings: Settings) -> Path:
    return settings.state_dir / FEEDBACK_FILE


def focus_dir(settings: Settings) -> Path:
    return settings.work_dir / "focus"


def opencost_dir(settings: Settings) -> Path:
    """Saved OpenCost /allocation responses (*.json) the cost agent reads."""
    return settings.work_dir / "opencost"


def mark_planned_activity(settings: Settings, anomaly_id: str, by: str, why: str,
                          at: datetime) -> dict[str, Any]:
    """Mark a reported anomaly (by id, from the cost-daily reports) as planned activity."""
    for report in sorted((settings.work_dir / "reports").glob("cost-daily-*.json"),
                         reverse=True):
        for anomaly in json.loads(report.read_text(encoding="utf-8")).get("anomalies", []):
            if anomaly["id"] == anomaly_id:
                return mark_planned(feedback_path(settings), anomaly, by, why, at)
    raise KeyError(f"no cost anomaly {anomaly_id!r} in {settings.work_dir / 'reports'}"
                   f"/cost-daily-*.json: copy its id from a cost-daily report")


class Cost:
    name = "cost"
    purpose = ("Daily: spend per service, region and usage type from FOCUS rows against "
               "expected spend (weekly and daily seasonality); cost anomalies with their "
               "impact, escalated past capacity.yaml's thresholds; planned-activity feedback; "
               "rightsizing proposals from replicas requested vs CPU used.")
    tools = ("metric_history", "service_catalog", "deploys", "flag_changes", "logs")

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        policy = ctx.policies.capacity.cost
        end = ctx.due_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(minutes=policy.window)
        since = start - timedelta(minutes=policy.history)
        sim = fleet_rows(ctx.telemetry, ctx.now, since, end)
        charges: list[Charge] = []
        for row in sim:  # the emitter's rows pass the same check as anyone's
            if check_row(row) is None:
                charges.append(charge_of(row))
        files = sorted(focus_dir(ctx.settings).glob("*.csv"))
        imported, problems = read_focus(files)
        saved = sorted(opencost_dir(ctx.settings).glob("*.json"))
        opencost = read_files(saved, policy.opencost)
        fetched = fetch(policy.opencost, since, end)  # only when a URL is configured
        sources = {"simulator fleet (cost_per_hour)": len(sim),
                   f"FOCUS files in {focus_dir(ctx.settings)} ({len(files)})": len(imported),
                   f"OpenCost files in {opencost_dir(ctx.settings)} ({len(saved)})":
                   len(opencost.charges)}
        if policy.opencost.url:
            sources[f"OpenCost {policy.opencost.url}"] = len(fetched.charges)
        feedback, feedback_problem = load_feedback(feedback_path(ctx.settings))
        requested = cpu_requested_vs_used(
            opencost.requested + fetched.requested,
            end - timedelta(minutes=policy.rightsizing.window), end)
        infos = ctx.telemetry.services()
        usage = [_usage(ctx, i.name, i.replicas, policy) | (
            {"opencost": requested.pop(i.name)} if i.name in requested else {}) for i in infos]
        # Services only OpenCost knows: requested vs used, no replica count to act on.
        usage += [{"service": s, "replicas": None, "cpu_points": 0, "cpu_p95": None,
                   "cpu_mean": None, "opencost": r} for s, r in sorted(requested.items())]
        return {"at": ctx.now.isoformat(), "window": {"start": start.isoformat(),
                                                      "end": end.isoformat()},
                "series": hourly_cells([*charges, *imported, *opencost.charges,
                                        *fetched.charges], since, end),
                "sources": sources, "files": [str(p) for p in [*files, *saved]],
                "problems": problems_json(problems),
                "opencost_problems": problems_json(opencost.problems + fetched.problems),
                "feedback": feedback, "feedback_problem": feedback_problem,
                "usage": usage, "changes": _changes(ctx, start - CHANGE_CONTEXT)}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        policy = ctx.policies.capacity.cost
        start = datetime.fromisoformat(observed["window"]["start"])
        end = datetime.fromisoformat(observed["window"]["end"])
        feedback: dict[str, dict[str, Any]] = observed.get("feedback", {})
        series = [detect(s["key"], s["cells"], start, end, policy, feedback)
                  for s in observed["series"]]
        anomalies = [a for s in series for a in s["anomalies"]]
        for a in anomalies:
            a["changes"] = _near(observed.get("changes", []), a)
        anomalies.sort(key=lambda a: (-a["impact_usd"], a["id"]))
        raised = [a for a in anomalies if a["decision"]["action"] in ("raise", "escalate")]
        findings = [_finding(a) for a in raised]
        sizing = [_rightsize(u, ctx.policies.capacity.replicas, policy, feedback, end)
                  for u in observed.get("usage", [])]
        proposals = [p for _, p in sizing if p is not None]
        signals = [Signal(
            id=signal_id("cost_anomaly", a["service"], a["region"], a["usage_type"], a["start"]),
            kind="cost_anomaly", title=f.summary, evidence=f.evidence,
            suggested_mission=f"Find what made {a['service']} spend more in {a['region']} "
                              f"({a['usage_type']}) and undo it, or mark it planned activity",
            created_at=ctx.now) for a, f in zip(raised, findings, strict=True)]
        written = write_signals(signals, ctx.signals_dir) if signals else []
        escalated = sum(a["decision"]["action"] == "escalate" for a in anomalies)
        planned = sum(a["decision"]["action"] == PLANNED for a in anomalies)
        headline = (f"{len(series)} spend series over {policy.window // 60} h: "
                    f"{len(raised)} cost anomaly(ies) raised ({escalated} escalated), "
                    f"{planned} planned activity, {len(proposals)} rightsizing proposal(s); "
                    f"{len(observed.get('problems', []))} bad FOCUS row(s)")
        if observed.get("opencost_problems"):
            headline += f"; {len(observed['opencost_problems'])} bad OpenCost allocation(s)"
        unjudged = [x for x in series if "note" in x]
        if unjudged:
            headline += (f"; {len(unjudged)} series not judged (no expected spend yet: "
                         f"see the report)")
        report = {"date": end.date().isoformat(), "at": observed.get("at"),
                  "window": observed["window"], "headline": headline,
                  "policy": policy.model_dump(), "anomalies": anomalies,
                  "rightsizing": [r for r, _ in sizing], "series": series,
                  "proposals": [p.model_dump(mode="json") for p in proposals],
                  "problems": observed.get("problems", []),
                  "opencost_problems": observed.get("opencost_problems", []),
                  "planned": _in_force(feedback, start, end, policy.planned_activity_for),
                  "sources": observed.get("sources", {}),
                  "feedback_problem": observed.get("feedback_problem")}
        reports = write_reports(ctx.reports_dir / f"cost-daily-{ctx.due_at.date().isoformat()}",
                                report)
        return Analysis(summary=headline, findings=findings, proposals=proposals,
                        reports=[str(p) for p in reports], signals=[str(p) for p in written])


def hourly_cells(charges: list[Charge], since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Effective cost per (service, region, usage type) and hour; a charge period longer than
    an hour is spread evenly over its hours (only the hours inside [since, until) are kept)."""
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for c in charges:
        opened = c.start.replace(minute=0, second=0, microsecond=0)
        hours = max(1, math.ceil((c.end - opened) / HOUR))  # hour slots the charge touches
        cells = out.setdefault((c.service, c.region, c.usage_type), {})
        at, last = max(opened, since), min(c.end, until)
        while at < last:  # bounded by [since, until)
            key = at.isoformat()
            cells[key] = cells.get(key, 0.0) + c.effective_cost / hours
            at += HOUR
    return [{"key": {"service": s, "region": r, "usage_type": u}, "cells": cells}
            for (s, r, u), cells in sorted(out.items())]


def _usage(ctx: AgentContext, service: str, replicas: int, policy: CostPolicy
           ) -> dict[str, Any]:
    try:
        points = ctx.telemetry.metric(service, "cpu_utilization",
                                      policy.rightsizing.window).points
    except KeyError:
        points = []
    cpu = [p.value for p in points if math.isfinite(p.value)]
    return {"service": service, "replicas": replicas, "cpu_points": len(cpu),
            "cpu_p95": None if not cpu else round(float(np.percentile(cpu, 95)), 4),
            "cpu_mean": None if not cpu else round(float(np.mean(cpu)), 4)}


def _rightsize(usage: dict[str, Any], bounds: Replicas, policy: CostPolicy,
               feedback: dict[str, dict[str, Any]], end: datetime
               ) -> tuple[dict[str, Any], RemediationProposal | None]:
    """A scale_in proposal when replicas requested are far above CPU used (module doc)."""
    service, current = usage["service"], usage["replicas"]
    # OpenCost's requested vs used cores, when it has the service, is the direct measure.
    opencost: dict[str, Any] | None = usage.get("opencost")
    if opencost:
        p95, points, source = opencost["p95"], opencost["minutes"], "OpenCost used / requested"
    else:
        p95, points, source = usage["cpu_p95"], usage["cpu_points"], "CPU utilisation"
    rule = policy.rightsizing
    row: dict[str, Any] = {**usage, "target": None, "source": source}
    # Half the window's minutes: a service that only just started is not judged.
    if p95 is None or points < rule.window // 2 or p95 >= rule.cpu_below:
        return row, None
    for mark in feedback.values():
        if covers(mark, {"service": service}, end, policy.planned_activity_for):
            row["note"] = (f"p95 CPU {p95:.0%} but planned activity ({mark['by']}: "
                           f"{mark['why']}): not rightsized")
            return row, None
    if current is None:  # only OpenCost knows it: the requests can shrink, nothing to scale
        if opencost is None:
            return row, None
        cores = opencost["cores_requested"] * p95 / rule.target_cpu
        row["requests_target"] = round(cores, 3)
        row["note"] = (f"requests {opencost['cores_requested']:.2f} CPU cores, uses "
                       f"{opencost['cores_used']:.2f} (p95 {p95:.0%} of requested, from "
                       f"OpenCost): requests of ~{cores:.2f} cores put p95 near "
                       f"{rule.target_cpu:.0%}")
        return row, None
    low = bounds.bounds_for(service).min
    target = max(low, 1, math.ceil(current * p95 / rule.target_cpu))
    if target >= current:
        row["note"] = f"p95 CPU {p95:.0%} but already at capacity.yaml's minimum of {low}"
        return row, None
    row["target"] = target
    row["note"] = (f"{current} replicas requested, p95 CPU {p95:.0%} used ({source}) over "
                   f"{rule.window // 60} h (under {rule.cpu_below:.0%}): {current} → {target} "
                   f"replicas puts p95 CPU near {p95 * current / target:.0%} "
                   f"(target {rule.target_cpu:.0%}, minimum {low})")
    return row, RemediationProposal(
        action=RemediationAction(id=f"cost-rightsize-{service}", type="scale_in",
                                 service=service, params={"replicas": target},
                                 reason=row["note"]),
        specialist="cost", hypothesis_id=f"cost:{service}:rightsizing", confidence=0.8,
        rationale=f"rightsizing (capacity.yaml:cost.rightsizing): {row['note']}")


def _in_force(feedback: dict[str, dict[str, Any]], start: datetime, end: datetime,
              cover: int) -> list[dict[str, Any]]:
    """The planned-activity marks whose window overlaps the judged window."""
    out = []
    for ident, mark in sorted(feedback.items()):
        began, ends = window(mark, cover)
        if mark.get("verdict") == PLANNED and began < end and ends > start:
            out.append({"id": ident, **mark})
    return out


def _changes(ctx: AgentContext, since: datetime) -> list[dict[str, Any]]:
    """Deploys, flag changes and autoscaler changes since `since`: shown beside anomalies."""
    minutes = max(1, math.ceil((ctx.now - since).total_seconds() / 60))
    out = [{"at": d.at.isoformat(), "service": d.service,
            "what": f"{d.kind} {d.version} by {d.author}"}
           for d in ctx.telemetry.deploys(None, minutes)]
    out += [{"at": f.at.isoformat(), "service": f.service,
             "what": f"flag {f.key} {f.from_percent:g}% -> {f.to_percent:g}% by {f.author}"}
            for f in ctx.telemetry.flag_changes(None, minutes)]
    for info in ctx.telemetry.services():
        out += [{"at": line.at.isoformat(), "service": info.name, "what": line.message}
                for line in ctx.telemetry.logs(info.name, minutes, SCALING_LOG, limit=20)]
    return sorted(out, key=lambda c: c["at"])


def _near(changes: list[dict[str, Any]], anomaly: dict[str, Any]) -> list[dict[str, Any]]:
    start = datetime.fromisoformat(anomaly["start"])
    return [c for c in changes if c["service"] == anomaly["service"]
            and start - CHANGE_CONTEXT <= datetime.fromisoformat(c["at"]) <= start + HOUR]


def _finding(a: dict[str, Any]) -> Finding:
    level = "critical" if a["decision"]["action"] == "escalate" else "warning"
    pct = "—" if a["impact_pct"] is None else f"{a['impact_pct']:+.0f}%"
    until = "ongoing" if a["ongoing"] else a["end"][:16]
    return Finding(
        kind=f"cost_anomaly_{a['decision']['action']}", level=level,
        subject=f"{a['service']} {a['region']} {a['usage_type']}",
        summary=(f"{a['service']} ({a['region']}, {a['usage_type']}) spent "
                 f"${a['actual_usd']:,.2f} against ${a['expected_usd']:,.2f} expected from "
                 f"{a['start'][:16]} ({until}): impact ${a['impact_usd']:,.2f} ({pct})"),
        evidence=[a["decision"]["reason"], f"rule {a['decision']['rule']}", f"id {a['id']}",
                  *(f"{c['at'][:16]} {c['what']}" for c in a["changes"])],
        data={k: a[k] for k in ("id", "service", "region", "usage_type", "start", "end",
                                "actual_usd", "expected_usd", "impact_usd", "impact_pct")})
