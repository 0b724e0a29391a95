"""The weekly health-target review: one row per SLO in health.yaml, and each service's
error-budget policy state, as an SRE lead brings them to the weekly meeting.

Every number comes from `opsloop.policy.health` (the same SLI, budget and state the burn-rate
alerts and the guardrails use), never a second computation. Per SLO: SLI over 7 and 28 days,
budget remaining over its window, the current burn rate, its bucket (health.yaml `review`),
the budget each incident of the week consumed, the service's deploys and flag changes, and
the change against last week (last week's report, else the SLI of the 7 days before).

Telemetry answers "the last N minutes" only: the window ends at production's clock when the
run started. Where the backend holds less history than a window, the report says how much was
recorded; the rest of the window is what the backend's `average()` says (the simulator fills
it with each service's long-run error ratio), and is labelled so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.models import EventKind, Incident, IncidentStatus
from opsloop.policy.health import bad_ratio, bad_shares, budget_remaining, budget_state, burn_rate
from opsloop.policy.schema import Slo
from opsloop.policy.schema.health import HealthReview as ReviewPolicy
from opsloop.scheduled.base import AgentContext, Analysis, Finding
from opsloop.scheduled.charts import save_png
from opsloop.tools.protocols import Telemetry

WEEK = 7 * 24 * 60
MONTH = 28 * 24 * 60
NO_DATA = "no data"
_OPEN = {IncidentStatus.OPEN, IncidentStatus.AWAITING_APPROVAL}
_STATE_MEANS = {"normal": "remediation.yaml alone decides",
                "hold": "risk-adding changes need a human",
                "freeze": "risk-adding changes are denied; only risk-reducing ones run"}


class HealthReview:
    name = "health-review"
    purpose = ("Weekly health-target review: per SLO its SLI, error budget, burn and bucket, "
               "what spent the budget (incidents, deploys, flag changes), and each service's "
               "error-budget policy state (normal, hold, freeze).")
    tools = ("slo_status", "metric_history", "deploys", "flag_changes", "incident_history")

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        health = ctx.policies.health
        since = ctx.now - timedelta(minutes=WEEK)
        week, last_week = iso_week(ctx.due_at), iso_week(ctx.due_at - timedelta(days=7))
        previous = _previous_rows(ctx.reports_dir / f"health-{last_week}.json")
        # Opened up to a week before the window: a long incident still burning counts too.
        incidents = [i for i in ctx.store.incidents(since=since - timedelta(minutes=WEEK))
                     if _span(i, ctx.now)[1] >= since]
        rows = [_observe_slo(slo, ctx.telemetry, health.review.burn_window, since, ctx.now,
                             incidents, previous) for slo in health.slos]
        services = {}
        for service in sorted({slo.service for slo in health.slos}):
            state = budget_state(service, ctx.policies, ctx.telemetry)
            services[service] = {
                **state.model_dump(mode="json"), "remaining": _num(state.remaining),
                "deploys": _changes(ctx.telemetry, service, "deploys"),
                "flag_changes": _changes(ctx.telemetry, service, "flag_changes")}
        return {"week": week, "previous_week": last_week,
                "previous_report": previous is not None,
                "window": {"start": since.isoformat(), "end": ctx.now.isoformat()},
                "rows": rows, "services": services}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        review = ctx.policies.health.review
        rows = [{**row, "bucket": bucket(row["budget_remaining"], review)}
                for row in observed.get("rows", [])]
        services: dict[str, Any] = observed.get("services", {})
        unhealthy = sorted((r for r in rows if r["bucket"] != review.healthy),
                           key=lambda r: -math.inf if r["budget_remaining"] is None
                           else r["budget_remaining"])
        findings = [_slo_finding(row, services.get(row["service"], {}), review)
                    for row in unhealthy]
        findings += [_state_finding(service, s) for service, s in services.items()
                     if s["state"] != "normal"]
        headline = _headline(rows, services, review)
        report = {**observed, "headline": headline, "rows": rows,
                  "buckets": [b.model_dump() for b in review.buckets],
                  "findings": [f.model_dump(mode="json") for f in findings]}
        base = ctx.reports_dir / f"health-{observed.get('week', iso_week(ctx.due_at))}"
        charts = _charts(base, rows, review, report["window"])
        md = atomic_write(base.with_suffix(".md"), render(report, [p.name for p in charts]))
        js = atomic_write(base.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
        return Analysis(summary=headline, findings=findings,
                        reports=[str(md), str(js), *(str(p) for p in charts)])


def iso_week(due_at: datetime) -> str:
    """The ISO week the 7 days before `due_at` mostly fall in: a Monday run names last week."""
    year, week, _ = (due_at - timedelta(days=3.5)).isocalendar()
    return f"{year}-W{week:02d}"


def bucket(remaining: float | None, review: ReviewPolicy) -> str:
    """health.yaml's bucket for a budget remaining; an unmeasured one is "no data"."""
    return NO_DATA if remaining is None or not math.isfinite(remaining) \
        else review.bucket_for(remaining)


# -- observe -------------------------------------------------------------------------------


def _num(value: float | None) -> float | None:
    """A finite number, or None: NaN and inf are not measurements (and not JSON)."""
    return value if value is not None and math.isfinite(value) else None


def _sli(ratio: float | None) -> float | None:
    ratio = _num(ratio)
    return None if ratio is None else 1.0 - ratio


def _observe_slo(slo: Slo, telemetry: Telemetry, burn_window: int, since: datetime,
                 now: datetime, incidents: list[Incident],
                 previous: dict[str, Any] | None) -> dict[str, Any]:
    try:
        # One series read per SLO: the week (charts, incidents); 28 days only when the
        # backend holds more than a week, to say how much of the month was recorded.
        points = telemetry.metric(slo.service, slo.indicator.metric, WEEK).points
        recorded = len(points) if len(points) < WEEK else len(
            telemetry.metric(slo.service, slo.indicator.metric, MONTH).points)
    except KeyError:
        points, recorded = [], 0
    week_points = [(p.at, share) for p, share in
                   zip(points, bad_shares(slo, (p.value for p in points)), strict=True)
                   if p.at > since]
    sli_7d = _sli(bad_ratio(slo, telemetry, WEEK))
    remaining = _num(budget_remaining(slo, telemetry)) if recorded else None
    row: dict[str, Any] = {
        "slo": slo.name, "service": slo.service, "objective": slo.objective,
        "window_minutes": slo.time_window, "recorded_minutes": recorded,
        "sli_7d": sli_7d, "sli_28d": _sli(bad_ratio(slo, telemetry, MONTH)),
        "budget_remaining": remaining,
        "burn_rate": _num(burn_rate(slo, telemetry, burn_window)),
        "hourly": _hourly(week_points, since, slo.error_budget),
        "incidents": [_consumed(i, slo, week_points, now)
                      for i in incidents if slo.service in i.services],
    }
    before = (previous or {}).get(slo.name)
    if before is not None:
        row["last_week"] = {"source": "report", "sli_7d": _num(before.get("sli_7d")),
                            "budget_remaining": _num(before.get("budget_remaining"))}
    else:
        fortnight = _num(bad_ratio(slo, telemetry, 2 * WEEK))
        this = None if sli_7d is None else 1.0 - sli_7d
        prior = None if fortnight is None or this is None else 2 * fortnight - this
        row["last_week"] = {"source": "telemetry", "sli_7d": _sli(prior),
                            "budget_remaining": None}
    return row


def _hourly(points: list[tuple[datetime, float]], since: datetime,
            budget: float) -> dict[str, Any]:
    """Mean bad share per hour of the week (None: no minute, or a minute not a number)."""
    hours: dict[int, list[float]] = {}
    for at, share in points:
        # The window is (since, now]: minute 1..60 after `since` is hour 0, `now` ends hour 167.
        minute = int((at - since).total_seconds() // 60)
        hours.setdefault((minute - 1) // 60, []).append(share)
    keys = sorted(hours)
    means = [_num(sum(hours[h]) / len(hours[h])) for h in keys]
    return {"at": [(since + timedelta(hours=h)).isoformat() for h in keys],
            "sli": [None if m is None else 1.0 - m for m in means],
            "burn": [None if m is None else m / budget for m in means]}


def _span(incident: Incident, now: datetime) -> tuple[datetime, datetime]:
    """From the first signal to mitigation or close (now, while it is still open)."""
    starts = [incident.opened_at, *(a.starts_at for a in incident.anomalies)]
    starts += [e.at for e in incident.timeline if e.kind is EventKind.FIRST_SIGNAL]
    ends = [e.at for e in incident.timeline
            if e.kind in (EventKind.VERIFIED, EventKind.CLOSED)]
    if ends:
        end = min(ends)
    elif incident.status in _OPEN:
        end = now
    else:
        end = max([incident.opened_at, *(e.at for e in incident.timeline)])
    return min(starts), end


def _consumed(incident: Incident, slo: Slo, points: list[tuple[datetime, float]],
              now: datetime) -> dict[str, Any]:
    """The bad-event share during the incident (inside the week) and the part of the SLO's
    whole-window budget those minutes spent."""
    start, end = _span(incident, now)
    shares = [share for at, share in points if start <= at <= end]
    total = sum(shares)
    return {"id": incident.id, "title": incident.title,
            "severity": incident.severity.value if incident.severity else None,
            "status": incident.status.value, "start": start.isoformat(),
            "end": end.isoformat(), "minutes": len(shares),
            "bad_share": _num(total / len(shares)) if shares else None,
            "budget_consumed": _num(total / (slo.error_budget * slo.time_window))
            if shares else None}


def _changes(telemetry: Telemetry, service: str, kind: str) -> list[dict[str, Any]]:
    try:
        found: Iterable[Any] = (telemetry.deploys(service, WEEK) if kind == "deploys"
                                else telemetry.flag_changes(service, WEEK))
    except KeyError:
        return []
    return [c.model_dump(mode="json") for c in found]


def _previous_rows(path: Path) -> dict[str, Any] | None:
    """Last week's rows by SLO name, if its report is there and readable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {r["slo"]: r for r in data["rows"] if isinstance(r, dict) and "slo" in r}
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- analyse ---------------------------------------------------------------------------------


def _level(name: str, review: ReviewPolicy) -> str:
    names = [b.name for b in review.buckets]
    if name not in names:
        return "warning"  # no data: nobody can say it is fine
    rank = names.index(name)
    return "info" if rank == 1 else "warning" if rank < len(names) - 2 else "critical"


def _slo_finding(row: dict[str, Any], service: dict[str, Any],
                 review: ReviewPolicy) -> Finding:
    evidence = [f"SLI 7d {_pct(row['sli_7d'], 3)}, 28d {_pct(row['sli_28d'], 3)} "
                f"(objective {_pct(row['objective'], 3)})"]
    evidence += [f"{i['id']} ({i['title']}) spent {_budget(i['budget_consumed'])} of the "
                 f"budget over {i['minutes']} min at {_pct(i['bad_share'], 2)} bad events"
                 for i in row["incidents"]]
    evidence += [f"deploy {d['previous_version']} → {d['version']} at {_when(d['at'])}"
                 for d in service.get("deploys", [])]
    evidence += [f"flag {c['key']} {c['from_percent']:g}% → {c['to_percent']:g}% at "
                 f"{_when(c['at'])}" for c in service.get("flag_changes", [])]
    if row["bucket"] == NO_DATA:
        summary = (f"{row['slo']}: no data — its budget cannot be measured, so it cannot be "
                   f"called healthy")
    else:
        summary = (f"{row['slo']} is {row['bucket']}: {_budget(row['budget_remaining'])} of "
                   f"its error budget left, burning {_x(row['burn_rate'])} now")
    return Finding(kind="slo_no_data" if row["bucket"] == NO_DATA else "slo_unhealthy",
                   subject=row["slo"], summary=summary, evidence=evidence,
                   level=_level(row["bucket"], review),
                   data={k: row[k] for k in ("service", "bucket", "budget_remaining",
                                             "sli_7d", "burn_rate")})


def _state_finding(service: str, state: dict[str, Any]) -> Finding:
    return Finding(kind="error_budget_policy", subject=service,
                   level="critical" if state["state"] == "freeze" else "warning",
                   summary=f"{service} is in {state['state']}: {_STATE_MEANS[state['state']]}",
                   evidence=[state["reason"], f"rule {state['rule']}"],
                   data={"state": state["state"], "rule": state["rule"],
                         "remaining": state["remaining"]})


def _headline(rows: list[dict[str, Any]], services: dict[str, Any],
              review: ReviewPolicy) -> str:
    healthy = sum(1 for r in rows if r["bucket"] == review.healthy)
    text = f"{healthy} of {len(rows)} SLOs {review.healthy.lower()}"
    no_data = sum(1 for r in rows if r["bucket"] == NO_DATA)
    if no_data:
        text += f" ({no_data} without data)"
    for state in ("freeze", "hold"):
        held = [s for s, v in services.items() if v["state"] == state]
        if held:
            text += f"; {', '.join(held)} in {state}"
    return text


def _when(iso: str) -> str:
    return iso[:16].replace("T", " ")


def _pct(value: float | None, digits: int = 1) -> str:
    return NO_DATA if value is None else f"{value:.{digits}%}"


def _budget(value: float | None) -> str:
    if value is None:
        return NO_DATA
    return f"{value:.0%}" if value >= -1 else f"{value:.0%} ({1 - value:.1f}x the budget spent)"


def _x(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.1f}x"


def _delta(row: dict[str, Any]) -> str:
    before = row["last_week"]
    if row["sli_7d"] is None or before["sli_7d"] is None:
        return NO_DATA
    text = f"{(row['sli_7d'] - before['sli_7d']) * 100:+.3f} pp"
    if before.get("budget_remaining") is not None and row["budget_remaining"] is not None:
        text += f", budget {(row['budget_remaining'] - before['budget_remaining']) * 100:+.0f} pts"
    return text


def render(report: dict[str, Any], charts: list[str]) -> str:
    """The review as markdown: headline, table, what needs attention and why, charts."""
    rows, services = report["rows"], report["services"]
    window = report["window"]
    lines = [f"# Health-target review, {report['week']}", "", f"**{report['headline']}.**", "",
             f"Seven days to {window['end'][:16].replace('T', ' ')} UTC (production's clock). "
             f"Buckets by error budget left: "
             + ", ".join(f"{b['name']} > {b['above']:.0%}" if b["above"] is not None
                         else f"{b['name']} otherwise" for b in report["buckets"]) + ".", "",
             "| SLO | objective | SLI 7d | SLI 28d | budget left | burn now | bucket "
             "| vs last week | incidents | deploys | flag changes | policy state |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|"]
    for r in rows:
        svc = services.get(r["service"], {})
        # *: the window reaches past recorded history (see "About these numbers").
        week, month, whole = (
            "*" if r["recorded_minutes"] < minutes else ""
            for minutes in (WEEK, MONTH, r["window_minutes"]))
        lines.append(
            f"| {r['slo']} | {_pct(r['objective'], 2)} | {_pct(r['sli_7d'], 3)}{week} | "
            f"{_pct(r['sli_28d'], 3)}{month} | {_budget(r['budget_remaining'])}{whole} | "
            f"{_x(r['burn_rate'])} | {r['bucket']} | {_delta(r)} | {len(r['incidents'])} | "
            f"{len(svc.get('deploys', []))} | {len(svc.get('flag_changes', []))} | "
            f"{svc.get('state', NO_DATA)} |")
    lines += ["", "## Needs attention", ""]
    lines += [f"- **{f['summary']}** ({f['level']}). " + "; ".join(f["evidence"]) + "."
              for f in report["findings"]] or ["- Nothing: every SLO is healthy."]
    lines += ["", "## Error-budget policy", "",
              "| service | state | budget left (worst SLO) | what it means | rule |",
              "|---|---|---:|---|---|"]
    lines += [f"| {s} | {v['state']} | {_budget(v['remaining'])} | {_STATE_MEANS[v['state']]} "
              f"| `{v['rule']}` |" for s, v in services.items()]
    spent = [(r, i) for r in rows for i in r["incidents"]]
    lines += ["", "## Budget spent by incidents", ""]
    if spent:
        lines += ["| incident | SLO | from | to | bad events | budget consumed |",
                  "|---|---|---|---|---:|---:|"]
        lines += [f"| {i['id']} {i['title']} | {r['slo']} | {i['start'][:16]} | "
                  f"{i['end'][:16]} | {_pct(i['bad_share'], 2)} | "
                  f"{_budget(i['budget_consumed'])} |" for r, i in spent]
    else:
        lines.append("No incident touched an SLO's service this week.")
    changes = sorted(
        [(d["at"], s, f"deploy {d['previous_version']} → {d['version']} ({d['kind']}, "
                      f"{d['author']})") for s, v in services.items() for d in v["deploys"]]
        + [(c["at"], s, f"flag {c['key']} {c['from_percent']:g}% → {c['to_percent']:g}%"
                        f"{'' if c['enabled'] else ' (disabled)'} ({c['author'] or '?'})")
           for s, v in services.items() for c in v["flag_changes"]])
    lines += ["", "## Changes this week", ""]
    lines += [f"- {at[:16].replace('T', ' ')} {s}: {what}" for at, s, what in changes] or [
        "- none"]
    lines += ["", "## Charts", ""]
    lines += [f"![{name}]({name})" for name in charts]
    lines += ["", "## About these numbers", ""]
    short = [r for r in rows if r["recorded_minutes"] < MONTH]
    if short:
        least = min(r["recorded_minutes"] for r in short)
        lines.append(f"- \\* Telemetry holds {_duration(least)} or more of recorded history "
                     f"per SLO, less than the window: the unrecorded part of a starred figure "
                     f"is the backend's long-run average, not a measurement. Charts and "
                     f"incident figures use recorded minutes only.")
    sources = {r["last_week"]["source"] for r in rows}
    lines.append(f"- Last week: {report['previous_week']} report" if sources == {"report"}
                 else f"- Last week: no {report['previous_week']} report for every SLO; the "
                      f"SLI of the 7 days before this window from telemetry instead.")
    lines.append("- A budget that cannot be measured is *no data*, never healthy.")
    return "\n".join(lines) + "\n"


def _duration(minutes: int) -> str:
    return f"{minutes / 1440:.1f} days" if minutes >= 1440 else f"{minutes / 60:.1f} hours"


# -- charts ----------------------------------------------------------------------------------


_COLOURS = ["#2e7d32", "#9e9d24", "#f9a825", "#ef6c00", "#c62828", "#6a1b9a"]


def _charts(base: Path, rows: list[dict[str, Any]], review: ReviewPolicy,
            window: dict[str, str]) -> list[Path]:
    """Budget left per SLO coloured by bucket; hourly SLI (and burn) per SLO over the week."""
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg")  # headless: the review runs on servers
    import matplotlib.pyplot as plt

    names = [b.name for b in review.buckets]
    colour = {n: _COLOURS[min(i, len(_COLOURS) - 1)] for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    for y, r in enumerate(rows):
        value = r["budget_remaining"]
        if value is None:
            ax.barh(y, 1, color="white", edgecolor="grey", hatch="//")
            ax.text(0.02, y, NO_DATA, va="center", fontsize=8)
        else:
            shown = max(value, -1.0)  # a budget spent many times over is clipped at -100%
            ax.barh(y, shown, color=colour[r["bucket"]])
            ax.text(max(shown, 0) + 0.01, y, f"{value:.0%}", va="center", fontsize=8)
    for b in review.buckets:
        if b.above is not None:
            ax.axvline(b.above, color="grey", lw=0.6, ls=":")
    ax.set_yticks(range(len(rows)), [r["slo"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-1.05, 1.15)
    ax.set_xlabel("error budget remaining (clipped at -100%)")
    ax.set_title("Error budget remaining per SLO")
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colour[n]) for n in names], labels=names,
              fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    paths = [save_png(fig, base.with_name(base.name + "-budget.png"))]

    cols = 3
    grid_rows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(4.2 * cols, 2.6 * grid_rows),
                             squeeze=False)
    for ax, r in zip(axes.flat, rows, strict=False):
        hourly = r["hourly"]
        xs = [datetime.fromisoformat(a) for a in hourly["at"]]
        ys = [math.nan if v is None else v * 100 for v in hourly["sli"]]
        ax.plot(xs, ys, lw=1, color=colour.get(r["bucket"], "grey"))
        ax.axhline(r["objective"] * 100, color="black", lw=0.6, ls="--")
        budget = 1 - r["objective"]
        burn = ax.secondary_yaxis(
            "right", functions=(lambda s, b=budget: (100 - s) / 100 / b,
                                lambda x, b=budget: 100 - x * b * 100))
        burn.set_ylabel("burn (x)", fontsize=7)
        burn.tick_params(labelsize=6)
        ax.set_title(f"{r['slo']} ({r['bucket']})", fontsize=8)
        ax.set_ylabel("SLI % (hourly)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_xlim(datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"]))
        if not any(math.isfinite(y) for y in ys):
            ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center")
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    fig.suptitle("SLI per hour over the week, recorded hours only (dashed: objective; "
                 "right axis: the same as burn rate)",
                 fontsize=9)
    fig.autofmt_xdate()
    # Fixed margins: tight_layout measures every tick label of every panel, and doubles the
    # time the chart takes.
    fig.subplots_adjust(left=0.06, right=0.94, top=0.92, bottom=0.08, hspace=0.35, wspace=0.4)
    paths.append(save_png(fig, base.with_name(base.name + "-sli.png")))
    return paths
