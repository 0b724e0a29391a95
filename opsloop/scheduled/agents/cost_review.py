"""The monthly cost review: spend by service and its trend, cost anomalies and what was done
about them, and the savings proposed and taken — from the cost metric there is.

Source: each service's `cost_per_hour` (USD/h), one point per minute, read through
`Telemetry.metric` for the closed month and the month before it. A minute's spend is its
point / 60; an hour's and a day's spend are the sums of the minutes recorded in them.
Nothing is extrapolated: where the telemetry holds less than the month (the simulator
records only what it has simulated), the report says how much of it was recorded, and a
month's comparison with the previous one uses the mean spend per recorded hour.

When the daily cost agent has run, its anomalies (work/reports/cost-daily-*.json: start, end,
service / region / usage type, impact, decision, planned-activity feedback) for the month are
read too and listed beside the review's own; the review does not re-judge them.

Anomalies are days whose mean spend per hour is far from the service's own baseline: the
robust z-score 0.6745 * (x - median) / MAD of the days before it (up to `baseline_days`;
the nearest days either side early in the record): Iglewicz and Hoaglin's modified z-score,
|z| >= 3.5 is their outlier cut. A perfectly flat service has MAD 0, so
the MAD is floored at `mad_floor` of the median: a day must then be ~5x that off to count.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.models import ActionStatus, DecisionOutcome, Incident
from opsloop.scheduled.agents.cost_daily_report import agent_section, cost_agent_anomalies
from opsloop.scheduled.agents.cost_report import draw, render
from opsloop.scheduled.base import AgentContext, Analysis, Finding

METRIC = "cost_per_hour"
COST_ACTIONS = ("scale_in",)  # actions whose purpose is spending less


@dataclass(frozen=True)
class CostLimits:
    """The review's thresholds; the defaults are what the report header states."""

    z_cut: float = 3.5  # modified z-score beyond which a day is an anomaly
    mad_floor: float = 0.02  # of the median: the least spread a baseline is assumed to have
    min_day_minutes: int = 360  # a day with fewer recorded minutes is not compared
    min_baseline_days: int = 5  # fewer compared days before a day: it is not judged
    baseline_days: int = 14  # a day is judged against at most this many days before it
    trend_pct: float = 25.0  # a month-over-month change this large is a finding
    change_window_hours: int = 24  # deploys and flag changes this long before a day count
    savings_window_hours: int = 6  # spend compared before and after a cost action


def closed_month(due_at: datetime) -> tuple[datetime, datetime, datetime]:
    """(previous month start, closed month start, closed month end), UTC: the review due on
    any day of December closes November."""
    end = datetime(due_at.year, due_at.month, 1, tzinfo=UTC)
    start = (end - timedelta(days=1)).replace(day=1)
    previous = (start - timedelta(days=1)).replace(day=1)
    return previous, start, end


class CostReview:
    """Spend by service and trend, anomalies and what was done, savings proposed and taken."""

    name = "cost-review"
    purpose = ("Monthly cost review: spend per service against the previous month, cost "
               "anomalies with the changes near them and what was done, savings proposed and "
               "taken. Findings only.")
    tools = ("metric_history", "deploys", "flag_changes", "incident_history")

    def __init__(self, limits: CostLimits | None = None) -> None:
        self.limits = limits or CostLimits()

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        previous, start, end = closed_month(ctx.due_at)
        minutes = max(0, math.ceil((ctx.now - previous).total_seconds() / 60) + 1)
        services: dict[str, Any] = {}
        for info in ctx.telemetry.services():
            services[info.name] = _hours(ctx, info.name, minutes, previous, end)
        since = previous - timedelta(hours=self.limits.change_window_hours)
        span = max(0, math.ceil((ctx.now - since).total_seconds() / 60))
        deploys = [{"at": d.at.isoformat(), "service": d.service, "what":
                    f"{d.kind} {d.version} (was {d.previous_version}) by {d.author}"}
                   for d in ctx.telemetry.deploys(None, span) if d.at < end]
        flags = [{"at": f.at.isoformat(), "service": f.service, "what":
                  f"flag {f.key} {f.from_percent:g}% -> {f.to_percent:g}% by {f.author}"}
                 for f in ctx.telemetry.flag_changes(None, span) if f.at < end]
        problems: list[str] = []
        incidents = [_incident(i) for i in ctx.store.incidents(problems, since=previous)
                     if i.opened_at < end]
        agent_anomalies, agent_unreadable = cost_agent_anomalies(ctx.reports_dir, start, end)
        return {"month": start.strftime("%Y-%m"), "previous": previous.isoformat(),
                "cost_agent": {"anomalies": agent_anomalies, "unreadable": agent_unreadable},
                "start": start.isoformat(), "end": end.isoformat(), "now": ctx.now.isoformat(),
                "read_minutes": minutes, "services": services, "changes": deploys + flags,
                "incidents": incidents, "unreadable": problems}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        report = review(observed, self.limits)
        report["cost_agent"] = observed.get("cost_agent", {"anomalies": [], "unreadable": []})
        base = ctx.reports_dir / f"cost-{observed['month']}"
        chart = draw(base.with_suffix(".png"), report)
        report["chart"] = chart.name
        md = atomic_write(base.with_suffix(".md"),
                          render(report) + agent_section(report["cost_agent"]))
        js = atomic_write(base.with_suffix(".json"),
                          json.dumps(report, indent=2, default=str) + "\n")
        findings = findings_of(report)
        return Analysis(summary=report["headline"], findings=findings,
                        reports=[str(md), str(js), str(chart)])


def _hours(ctx: AgentContext, service: str, minutes: int, since: datetime,
           until: datetime) -> dict[str, Any]:
    """Hourly [spend USD, minutes recorded] of one service from its per-minute points."""
    try:
        series = ctx.telemetry.metric(service, METRIC, minutes) if minutes else None
    except Exception as exc:  # one backend's bad series stays in its row, never the report
        return {"hours": {}, "error": f"{type(exc).__name__}: {exc}"}
    hours: dict[str, list[float]] = {}
    later = 0  # points after the month: the next review's, named so an empty one is explained
    for point in series.points if series is not None else []:
        later += point.at >= until
        if not (since <= point.at < until) or not math.isfinite(point.value):
            continue
        key = point.at.replace(minute=0, second=0, microsecond=0).isoformat()
        cell = hours.setdefault(key, [0.0, 0])
        cell[0] += point.value / 60
        cell[1] += 1
    return {"hours": hours, "error": None, "after_month": later}


def _incident(incident: Incident) -> dict[str, Any]:
    cause = incident.root_cause
    return {
        "id": incident.id, "title": incident.title, "status": incident.status.value,
        "opened_at": incident.opened_at.isoformat(), "services": incident.services,
        "category": cause.category if cause else None, "cause_service":
        cause.service if cause else None,
        "alerts": sorted({a.name for a in incident.anomalies}),
        "alert_metrics": sorted({a.labels.get("metric", "") for a in incident.anomalies} - {""}),
        "actions": [{
            "action": c.action.describe(), "type": c.action.type, "service": c.action.service,
            "decision": None if c.decision is None else c.decision.outcome.value,
            "rule": None if c.decision is None else c.decision.rule,
            "approval": None if c.approval is None else
            f"{c.approval.verdict.past} by {c.approval.by}",
            "result": None if c.result is None else c.result.status.value,
            "at": None if c.result is None else c.result.at.isoformat(),
            "reverted": c.revert is not None and c.revert.status is ActionStatus.SUCCEEDED,
            "auto": c.decision is not None and c.decision.outcome is DecisionOutcome.AUTO,
        } for c in incident.actions],
    }


# -- the numbers ----------------------------------------------------------------------------

def _days(hours: dict[str, list[float]]) -> dict[date, tuple[float, int]]:
    out: dict[date, tuple[float, int]] = {}
    for key, (spend, count) in hours.items():
        day = datetime.fromisoformat(key).date()
        s, n = out.get(day, (0.0, 0))
        out[day] = (s + spend, n + int(count))
    return out


def _month_days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def robust_z(values: list[float], x: float, floor: float) -> tuple[float, float, float]:
    """(z, median, MAD) of `x` against `values`, MAD floored at `floor` x |median|."""
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    scale = max(mad, floor * abs(med), 1e-9)
    return 0.6745 * (x - med) / scale, med, mad


def _slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope (USD/day per day) of daily spend; None below three days."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return None if den == 0 else sum((x - mx) * (y - my) for x, y in points) / den


def _near(items: list[dict[str, Any]], service: str, since: datetime,
          until: datetime) -> list[dict[str, Any]]:
    return [i for i in items if i["service"] == service
            and since <= datetime.fromisoformat(i["at"]) < until]


def cost_related(incident: dict[str, Any], service: str) -> bool:
    """About spend on `service`: a cost root cause, a cost alert, or a cost action there."""
    on_service = service in incident["services"] or incident["cause_service"] == service
    cost_cause = "cost" in (incident["category"] or "")
    cost_alert = METRIC in incident["alert_metrics"] or any(
        "cost" in a.lower() for a in incident["alerts"])
    cost_action = any(a["type"] in COST_ACTIONS and a["service"] == service
                      for a in incident["actions"])
    return cost_action or (on_service and (cost_cause or cost_alert))


def review(observed: dict[str, Any], limits: CostLimits) -> dict[str, Any]:
    """Every number the report shows, from what `observe` read."""
    previous = datetime.fromisoformat(observed["previous"])
    start = datetime.fromisoformat(observed["start"])
    end = datetime.fromisoformat(observed["end"])
    month_days = _month_days(start.date(), end.date())
    prev_days = _month_days(previous.date(), start.date())
    rows, anomalies, savings, daily = [], [], [], {}
    for service, data in observed["services"].items():
        days = _days(data["hours"])
        daily[service] = {d.isoformat(): {"spend": round(days[d][0], 4), "minutes": days[d][1]}
                          for d in sorted(days)}
        this = [days[d] for d in month_days if d in days]
        last = [days[d] for d in prev_days if d in days]
        spend, minutes = sum(s for s, _ in this), sum(n for _, n in this)
        prev_spend, prev_minutes = sum(s for s, _ in last), sum(n for _, n in last)
        rate = spend / minutes * 60 if minutes else None
        prev_rate = prev_spend / prev_minutes * 60 if prev_minutes else None
        change = (100 * (rate - prev_rate) / prev_rate
                  if rate is not None and prev_rate else None)
        full = [(i, days[d][0] / days[d][1] * 1440) for i, d in enumerate(month_days)
                if d in days and days[d][1] >= limits.min_day_minutes]
        slope = _slope(full)
        rows.append({
            "service": service, "spend": round(spend, 2), "minutes": minutes,
            "coverage": round(minutes / (len(month_days) * 1440), 4),
            "usd_per_hour": None if rate is None else round(rate, 4),
            "previous_spend": round(prev_spend, 2), "previous_minutes": prev_minutes,
            "previous_coverage": round(prev_minutes / (len(prev_days) * 1440), 4),
            "previous_usd_per_hour": None if prev_rate is None else round(prev_rate, 4),
            "change_pct": None if change is None else round(change, 1),
            "slope_usd_per_day": None if slope is None else round(slope, 4),
            "error": data.get("error"),
        })
        anomalies += _anomalies(service, days, month_days, prev_days, observed, limits)
        savings += _savings(service, data["hours"], observed, limits)
    rows.sort(key=lambda r: -r["spend"])
    runs = episodes(anomalies)
    stamps = sorted(h for data in observed["services"].values() for h in data["hours"])
    done = [i for i in observed["incidents"] if datetime.fromisoformat(i["opened_at"]) >= start
            and any(cost_related(i, s) for s in observed["services"])]
    total = sum(r["spend"] for r in rows)
    covered = max((r["coverage"] for r in rows), default=0.0)
    big = [r for r in rows if r["change_pct"] is not None
           and abs(r["change_pct"]) >= limits.trend_pct]
    headline = (f"{observed['month']}: ${total:,.2f} recorded across {len(rows)} services "
                f"({covered:.0%} of the month recorded); {len(anomalies)} anomalous day(s) in "
                f"{len(runs)} episode(s), "
                f"{len(big)} service(s) changed by {limits.trend_pct:g}% or more, "
                f"{sum(1 for s in savings if s['taken'])} cost action(s) taken")
    return {"month": observed["month"], "period": {"previous": observed["previous"],
            "start": observed["start"], "end": observed["end"], "now": observed["now"]},
            "source": {"metric": METRIC, "resolution": "1-minute points, summed per hour and "
                       "per day", "read_minutes": observed["read_minutes"]},
            "recorded": {"from": stamps[0] if stamps else None,
                         "to": stamps[-1] if stamps else None, "coverage": covered,
                         "minutes_after_month": max((d.get("after_month", 0) for d in
                                                     observed["services"].values()), default=0)},
            "limits": asdict(limits), "headline": headline, "total": round(total, 2),
            "services": rows, "daily": daily, "anomalies": anomalies, "episodes": runs,
            "incidents": done,
            "savings": savings, "unreadable": observed.get("unreadable", [])}


def _anomalies(service: str, days: dict[date, tuple[float, int]], month_days: list[date],
               prev_days: list[date], observed: dict[str, Any],
               limits: CostLimits) -> list[dict[str, Any]]:
    compared = {d: days[d][0] / days[d][1] * 60 for d in [*prev_days, *month_days]
                if d in days and days[d][1] >= limits.min_day_minutes}
    if len(compared) < limits.min_baseline_days:
        return []
    out = []
    for d in month_days:
        if d not in compared:
            continue
        # A trailing baseline, the days before this one, so a step up mid-month does not make
        # the normal days before it look anomalously low; early in the record, when too few
        # days come before, the nearest days either side stand in.
        values = [compared[x] for x in sorted(compared) if x < d][-limits.baseline_days:]
        if len(values) < limits.min_baseline_days:
            nearest = sorted((x for x in compared if x != d), key=lambda x: abs((x - d).days))
            values = [compared[x] for x in nearest[:limits.baseline_days]]
        z, med, mad = robust_z(values, compared[d], limits.mad_floor)
        if abs(z) < limits.z_cut:
            continue
        day_start = datetime(d.year, d.month, d.day, tzinfo=UTC)
        day_end = day_start + timedelta(days=1)
        since = day_start - timedelta(hours=limits.change_window_hours)
        incidents = [
            {"id": i["id"], "status": i["status"], "title": i["title"],
             "actions": [a for a in i["actions"] if a["service"] == service]}
            for i in observed["incidents"] if cost_related(i, service)
            and since <= datetime.fromisoformat(i["opened_at"]) < day_end + timedelta(days=1)]
        out.append({
            "service": service, "day": d.isoformat(), "spend": round(days[d][0], 2),
            "minutes": days[d][1], "usd_per_hour": round(compared[d], 4),
            "baseline_usd_per_hour": round(med, 4), "mad": round(mad, 4), "z": round(z, 1),
            "direction": "up" if z > 0 else "down",
            "changes": _near(observed["changes"], service, since, day_end),
            "incidents": incidents,
        })
    return out


def _savings(service: str, hours: dict[str, list[float]], observed: dict[str, Any],
             limits: CostLimits) -> list[dict[str, Any]]:
    """Cost actions on `service` in the month's incidents, with spend before and after."""
    start = datetime.fromisoformat(observed["start"])
    rates = {datetime.fromisoformat(k): s / n * 60 for k, (s, n) in hours.items() if n}
    out = []
    for incident in observed["incidents"]:
        if datetime.fromisoformat(incident["opened_at"]) < start:
            continue
        for a in incident["actions"]:
            if a["type"] not in COST_ACTIONS or a["service"] != service:
                continue
            taken = a["result"] == ActionStatus.SUCCEEDED.value and not a["reverted"]
            before = after = None
            if a["at"] is not None:
                at = datetime.fromisoformat(a["at"]).replace(minute=0, second=0, microsecond=0)
                w = limits.savings_window_hours
                b = [rates[h] for k in range(1, w + 1) if (h := at - timedelta(hours=k)) in rates]
                f = [rates[h] for k in range(1, w + 1) if (h := at + timedelta(hours=k)) in rates]
                before = statistics.fmean(b) if b else None
                after = statistics.fmean(f) if f else None
            delta = None if before is None or after is None else after - before
            out.append({
                "incident": incident["id"], "status": incident["status"], **a,
                "taken": taken,
                "usd_per_hour_before": None if before is None else round(before, 4),
                "usd_per_hour_after": None if after is None else round(after, 4),
                "saved_usd_per_month": None if delta is None or not taken
                else round(-delta * 24 * 30, 2),
            })
    return out


def episodes(anomalies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive anomalous days of one service in one direction, as one episode: a
    runaway that lasted a week is one thing to look at, not seven."""
    out: list[dict[str, Any]] = []
    for a in sorted(anomalies, key=lambda a: (a["service"], a["day"])):
        last = out[-1] if out else None
        day = date.fromisoformat(a["day"])
        if (last is not None and last["service"] == a["service"]
                and last["direction"] == a["direction"]
                and date.fromisoformat(last["last"]) + timedelta(days=1) == day):
            last["last"] = a["day"]
            last["days"] += 1
            last["spend"] = round(last["spend"] + a["spend"], 2)
            last["peak_z"] = max(last["peak_z"], a["z"], key=abs)
            last["changes"] += [c for c in a["changes"] if c not in last["changes"]]
            seen = {i["id"] for i in last["incidents"]}
            last["incidents"] += [i for i in a["incidents"] if i["id"] not in seen]
            continue
        out.append({"service": a["service"], "direction": a["direction"], "first": a["day"],
                    "last": a["day"], "days": 1, "spend": a["spend"], "peak_z": a["z"],
                    "baseline_usd_per_hour": a["baseline_usd_per_hour"],
                    "changes": list(a["changes"]), "incidents": list(a["incidents"])})
    return out


def findings_of(report: dict[str, Any]) -> list[Finding]:
    out = []
    for e in report["episodes"]:
        what = ", ".join(c["what"] for c in e["changes"]) or "no deploy or flag change"
        done = ", ".join(f"{i['id']} ({i['status']})" for i in e["incidents"]) or "no incident"
        when = e["first"] if e["days"] == 1 else f"{e['first']} to {e['last']}"
        out.append(Finding(
            kind="cost_anomaly", subject=e["service"], level="warning",
            summary=f"{e['service']} spent ${e['spend']:,.2f} on {when} ({e['days']} day(s) "
                    f"{'above' if e['direction'] == 'up' else 'below'} its "
                    f"${e['baseline_usd_per_hour']:.2f}/h baseline, peak z {e['peak_z']:+.1f}); "
                    f"near it: {what}; done: {done}",
            evidence=[when, *(c["at"] for c in e["changes"]),
                      *(i["id"] for i in e["incidents"])], data=e))
    trend = report["limits"]["trend_pct"]
    for r in report["services"]:
        if r["change_pct"] is None or abs(r["change_pct"]) < trend:
            continue
        out.append(Finding(
            kind="cost_trend", subject=r["service"],
            level="warning" if r["change_pct"] > 0 else "info",
            summary=f"{r['service']}: ${r['usd_per_hour']:.2f}/h in {report['month']} against "
                    f"${r['previous_usd_per_hour']:.2f}/h the month before "
                    f"({r['change_pct']:+.1f}%)",
            evidence=[f"coverage {r['coverage']:.0%}", f"previous {r['previous_coverage']:.0%}"],
            data=r))
    return out
