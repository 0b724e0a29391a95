"""The cost review's report: the markdown a person reads and the chart of daily spend."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.scheduled.charts import save_png


def _dates(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _money(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def _coverage(report: dict[str, Any]) -> str:
    rec = report["recorded"]
    if rec["from"] is None:
        later = rec.get("minutes_after_month", 0)
        return ("**No cost data was recorded for this period.**" + (
            f" The telemetry holds {later} minute(s) after {report['month']}: they belong to "
            "the next month's review." if later else ""))
    prev = max((r["previous_coverage"] for r in report["services"]), default=0.0)
    return (f"**Recorded: {rec['from'][:13]}h to {rec['to'][:13]}h — {rec['coverage']:.0%} of "
            f"{report['month']}, {prev:.0%} of the month before.**" if rec["coverage"] < 1
            or prev < 1 else "Both months fully recorded.")


def render(report: dict[str, Any]) -> str:
    lim = report["limits"]
    period = report["period"]
    lines = [
        f"# Cost review {report['month']}", "",
        f"**{report['headline']}.**", "",
        f"Source: `{report['source']['metric']}` per service, {report['source']['resolution']}"
        f" (read up to {period['now'][:16]}). Spend is what was recorded: nothing is "
        "extrapolated. Where the telemetry holds less than the month, `coverage` says how "
        "much; month-over-month compares the mean spend per recorded hour. Anomalies: days "
        f"with at least {lim['min_day_minutes'] // 60}h recorded whose mean $/h has a robust "
        f"z-score (median/MAD of the service's days in both months, MAD floored at "
        f"{lim['mad_floor']:.0%} of the median) of {lim['z_cut']:g} or more.", "",
        _coverage(report), "",
        f"![daily spend per service]({report['chart']})", "",
        "## Spend by service", "",
        "| service | spend | coverage | $/h | previous $/h | change | slope $/day per day |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["services"]:
        change = "—" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%"
        s = r["slope_usd_per_day"]
        slope = "—" if s is None else f"{s:+.2f}" if abs(s) >= 0.005 else "0.00"
        rate = "—" if r["usd_per_hour"] is None else f"{r['usd_per_hour']:.2f}"
        prev = "—" if r["previous_usd_per_hour"] is None else f"{r['previous_usd_per_hour']:.2f}"
        name = r["service"] + (f" (error: {r['error']})" if r["error"] else "")
        lines.append(f"| {name} | {_money(r['spend'])} | {r['coverage']:.0%} | {rate} | "
                     f"{prev} | {change} | {slope} |")
    lines += ["", "## Anomalies", ""]
    if not report["episodes"]:
        lines.append("No day stood out from its service's baseline.")
    days = {(a["service"], a["day"]): a for a in report["anomalies"]}
    for e in report["episodes"]:
        when = e["first"] if e["days"] == 1 else f"{e['first']} to {e['last']}"
        lines.append(f"- **{e['service']} {when}** ({e['days']} day(s) "
                     f"{'above' if e['direction'] == 'up' else 'below'} "
                     f"{e['baseline_usd_per_hour']:.2f} $/h): {_money(e['spend'])}, "
                     f"peak z {e['peak_z']:+.1f}")
        if e["days"] <= 7:
            for d in _dates(e["first"], e["last"]):
                a = days[(e["service"], d)]
                lines.append(f"  - {d}: {_money(a['spend'])} at {a['usd_per_hour']:.2f} $/h "
                             f"(z {a['z']:+.1f})")
        for c in e["changes"]:
            lines.append(f"  - change {c['at'][:16]}: {c['what']}")
        for i in e["incidents"]:
            acts = "; ".join(f"{x['action']} {x['decision'] or 'undecided'}"
                             f"{', ' + x['approval'] if x['approval'] else ''}"
                             f" → {x['result'] or 'not run'}" for x in i["actions"])
            tail = f": {acts}" if acts else ""
            lines.append(f"  - done: {i['id']} {i['title']} ({i['status']}){tail}")
        if not e["changes"] and not e["incidents"]:
            lines.append("  - no deploy, flag change or incident near it: worth a look")
    lines += ["", "## What was done (cost incidents)", ""]
    if not report["incidents"]:
        lines.append("No incident this period was about cost.")
    for i in report["incidents"]:
        acts = ", ".join(f"{x['action']} ({x['result'] or x['decision'] or 'proposed'})"
                         for x in i["actions"]) or "no action"
        lines.append(f"- {i['id']} {i['opened_at'][:16]} {i['title']} — {i['status']}; "
                     f"cause {i['category'] or 'unknown'}; {acts}")
    lines += ["", "## Savings proposed and taken", ""]
    if not report["savings"]:
        lines.append("No cost action (scale_in) was proposed.")
    else:
        lines += ["| incident | action | decision | approval | result | $/h before | "
                  "$/h after | saved per month |", "|---|---|---|---|---|---:|---:|---:|"]
        for s in report["savings"]:
            before = "—" if s["usd_per_hour_before"] is None else f"{s['usd_per_hour_before']:.2f}"
            after = "—" if s["usd_per_hour_after"] is None else f"{s['usd_per_hour_after']:.2f}"
            lines.append(f"| {s['incident']} | {s['action']} | {s['decision'] or '—'} | "
                         f"{s['approval'] or '—'} | {s['result'] or 'not run'}"
                         f"{' (reverted)' if s['reverted'] else ''} | {before} | {after} | "
                         f"{_money(s['saved_usd_per_month'])} |")
        lines += ["", f"Before/after: mean $/h over the {lim['savings_window_hours']}h on each "
                  "side of the action; saved per month = the difference x 720h, for actions "
                  "that ran and stayed."]
    for problem in report["unreadable"]:
        lines.append(f"- skipped (unreadable incident): {problem}")
    return "\n".join(lines) + "\n"


def draw(path: Path, report: dict[str, Any]) -> Path:
    """Daily spend per service over both months; anomalous days circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import date2num

    fig, ax = plt.subplots(figsize=(10, 4.8))
    partial_x: list[float] = []
    partial_y: list[float] = []
    for service, days in sorted(report["daily"].items()):
        if not days:
            continue
        xs = [date2num(date.fromisoformat(d)) for d in days]
        # A day's spend at its recorded rate, so a partly recorded day is not drawn as a drop.
        ys = [v["spend"] / v["minutes"] * 1440 for v in days.values()]
        ax.plot(xs, ys, marker=".", linewidth=1.2, label=service)
        for x, y, v in zip(xs, ys, days.values(), strict=True):
            if v["minutes"] < 1440:
                partial_x.append(x)
                partial_y.append(y)
    if partial_x:
        ax.scatter(partial_x, partial_y, marker="x", color="black", s=30, zorder=4,
                   label="day partly recorded")
    for a in report["anomalies"]:
        ax.scatter([date2num(date.fromisoformat(a["day"]))], [a["usd_per_hour"] * 24], s=160,
                   facecolors="none", edgecolors="red", linewidths=2, zorder=5)
    ax.axvline(date2num(datetime.fromisoformat(report["period"]["start"])), color="grey",
               linestyle="--", linewidth=1)
    ax.set_title(f"Daily spend per service (USD), {report['month']} and the month before; "
                 "anomalies circled")
    ax.set_ylabel("USD per day (recorded mean $/h x 24)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=3)
    else:
        ax.text(0.5, 0.5, "no cost data recorded", transform=ax.transAxes, ha="center")
    ax.xaxis_date()
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_png(fig, path)
