"""The capacity report: markdown, JSON and a PNG chart per run, in work/reports/."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.scheduled.charts import save_png

MAX_PANELS = 9
HISTORY_SHOWN_DAYS = 3


def write_reports(base: Path, report: dict[str, Any], series: list[dict[str, Any]]) -> list[Path]:
    """`<base>.md`, `<base>.json` and `<base>.png`; a re-run for the same date replaces them."""
    chart = _chart(base.with_suffix(".png"), report["rows"], series)
    md = atomic_write(base.with_suffix(".md"),
                      render(report, None if chart is None else chart.name))
    js = atomic_write(base.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    return [md, js, *([] if chart is None else [chart])]


def _when(iso: str | None) -> str:
    return "—" if iso is None else iso[:16].replace("T", " ")


def _span(crossing: dict[str, Any]) -> str:
    """The interval of a crossing: earliest to latest ("beyond": past the horizon)."""
    if crossing["earliest"] is None:
        return "—"
    return f"{_when(crossing['earliest'])} to " + (
        _when(crossing["latest"]) if crossing["latest"] else "beyond the horizon")


def render(report: dict[str, Any], chart: str | None) -> str:
    """The report as markdown: headline, what to do, every series' forecast."""
    rows = report["rows"]
    policy = report["policy"]
    lines = [f"# Capacity forecast, {_when(report.get('at'))} UTC", "",
             f"**{report['headline']}.**", "",
             f"Horizon {policy['horizon'] / 60:.0f} h (at most twice the history held), "
             f"lead time a person needs {policy['lead_time'] / 60:.0f} h, history read "
             f"{policy['history'] / 1440:.0f} days. Crossing times are where the forecast mean "
             f"reaches a level; earliest and latest where the 80% interval's upper and lower "
             f"bounds do.", ""]
    acting = [r for r in rows if r["decision"]["action"] != "none"]
    lines += ["## Needs attention", ""]
    lines += [f"- **{r['service']} {r['resource']}: {r['decision']['action']}** — "
              f"{r['decision']['reason']} (`{r['decision']['rule']}`)"
              + (f"; exhausted ({r['exhaustion']['level']:g}) {_when(r['exhaustion']['expected'])}"
                 f", 80% interval {_span(r['exhaustion'])}"
                 if r.get("exhaustion", {}).get("expected") else "")
              + (f"; scale-out: {r['scale_note']}" if r.get("scale_note") else "")
              for r in acting] or ["- Nothing: every series stays under scale_at."]
    lines += ["", "## Proposals", ""]
    lines += [f"- `{p['action']['type']}({p['action']['service']}, replicas="
              f"{p['action']['params']['replicas']})` — {p['rationale']} (confidence "
              f"{p['confidence']:.1f}; decided by the guardrails)"
              for p in report["proposals"]] or ["- none"]
    lines += ["", "## Every series", "",
              "| service | resource | now | model | peak (80% upper) | scale_at at | "
              "alert_at at | exhaustion expected | exhaustion 80% interval | decision |",
              "|---|---|---:|---|---:|---|---|---|---|---|"]
    for r in rows:
        if r.get("forecast") is None:
            lines.append(f"| {r['service']} | {r['resource']} | {r['latest']:.2f} | — | — | — "
                         f"| — | — | — | {r['decision']['reason']} |")
            continue
        c, e = r["crossings"], r["exhaustion"]
        lines.append(
            f"| {r['service']} | {r['resource']} | {r['latest']:.2f} | "
            f"{r['forecast']['model']} | {r['peak_hi80']:.2f} | "
            f"{_when(c['scale_at']['expected'])} | {_when(c['alert_at']['expected'])} | "
            f"{_when(e['expected'])} | {_span(e)} | "
            f"{r['decision']['action']} |")
    lines += _autoscalers(report)
    if chart:
        lines += ["", "## Chart", "", f"![forecasts]({chart})"]
    lines += ["", "## How the models are chosen", "",
              "A fill (disk) is Holt's linear trend; a level (CPU, memory, saturation) is ETS "
              "in log space with daily seasonality from three days of hourly history, MSTL "
              "with daily and weekly seasonality from three weeks when a weekly pattern shows, "
              "non-seasonal ETS below that (opsloop/forecast/model.py). Backtest: "
              "`opsloop eval forecast`."]
    return "\n".join(lines) + "\n"


def _autoscalers(report: dict[str, Any]) -> list[str]:
    """Replicas against each autoscaler's maximum (capacity_replicas)."""
    rows = report.get("autoscalers") or []
    if not rows:
        return []
    alert_at = report.get("autoscaling", {}).get("alert_at", 0.9)
    lines = ["", "## Autoscalers: replicas needed against the maximum", "",
             f"Needed = replicas x CPU / the autoscaler's target CPU (what an HPA asks for), "
             f"forecast like any level; alert when it is forecast to reach {alert_at:.0%} of "
             f"the maximum within the horizon, escalate at the maximum sooner than the lead "
             f"time. Never scaled: past the maximum is a person's decision.", "",
             "| service | replicas now | needed now | max | target CPU | from | "
             "peak needed (80% upper) | max reached | 80% interval | decision |",
             "|---|---:|---:|---:|---:|---|---:|---|---|---|"]
    for r in rows:
        a = r["autoscaler"]
        if r.get("forecast") is None:
            lines.append(f"| {r['service']} | {r['replicas_now']} | {r['latest']:.1f} | "
                         f"{a['max_replicas']} | {a['target_cpu']:.0%} | {a['source']} | — | "
                         f"— | — | {r['decision']['reason']} |")
            continue
        t = r["time_to_max"]
        lines.append(f"| {r['service']} | {r['replicas_now']} | {r['latest']:.1f} | "
                     f"{a['max_replicas']} | {a['target_cpu']:.0%} | {a['source']} | "
                     f"{r['peak_hi80']:.1f} | {_when(t['expected'])} | {_span(t)} | "
                     f"{r['decision']['action']}: {r['decision']['reason']} |")
    return lines


def _chart(path: Path, rows: list[dict[str, Any]], series: list[dict[str, Any]]) -> Path | None:
    """History, forecast, 80%/95% intervals, thresholds and limit for the series that need
    attention (else the ones closest to scale_at), at most MAX_PANELS."""
    shown = [r for r in rows if r.get("forecast") is not None]
    if not shown:
        return None
    rank = {"escalate": 0, "alert": 1, "scale": 2, "none": 3}
    shown.sort(key=lambda r: (rank[r["decision"]["action"]], -r["peak_hi80"]))
    shown = shown[:MAX_PANELS]
    values = {(s["service"], s["resource"]): s for s in series}
    import matplotlib

    matplotlib.use("Agg")  # headless: the agent runs on servers
    import matplotlib.pyplot as plt

    cols = min(3, len(shown))
    grid_rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(4.6 * cols, 2.9 * grid_rows),
                             squeeze=False)
    for ax, r in zip(axes.flat, shown, strict=False):
        s = values[(r["service"], r["resource"])]
        step = timedelta(minutes=s["step_minutes"])
        end = datetime.fromisoformat(s["end"])
        hist = s["values"][-int(HISTORY_SHOWN_DAYS * 1440 // s["step_minutes"]):]
        hx = [end - step * (len(hist) - 1 - i) for i in range(len(hist))]
        f = r["forecast"]
        fx = [end + step * (i + 1) for i in range(len(f["mean"]))]
        ax.plot(hx, hist, lw=0.9, color="#37474f", label="history")
        ax.fill_between(fx, f["lo95"], f["hi95"], color="#90caf9", alpha=0.45, lw=0,
                        label="95%")
        ax.fill_between(fx, f["lo80"], f["hi80"], color="#42a5f5", alpha=0.55, lw=0,
                        label="80%")
        ax.plot(fx, f["mean"], lw=1.1, color="#0d47a1", label="forecast")
        for name, style in (("scale_at", ":"), ("alert_at", "--"), ("escalate_at", "-.")):
            ax.axhline(r["crossings"][name]["level"], color="#ef6c00", lw=0.7, ls=style)
        ax.axhline(r["exhaustion"]["level"], color="#c62828", lw=1.2, label="limit")
        ax.set_title(f"{r['service']} {r['resource']}: {r['decision']['action']}", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=6, loc="upper left")
    fig.suptitle("Capacity forecasts (orange: scale_at dotted, alert_at dashed, escalate_at "
                 "dash-dot; red: limit)", fontsize=9)
    fig.autofmt_xdate()
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.1, hspace=0.45, wspace=0.25)
    return save_png(fig, path)
