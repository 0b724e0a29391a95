"""The cost agent's daily report: markdown, JSON and a PNG chart in work/reports/."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.scheduled.charts import save_png

MAX_PANELS = 6


def write_reports(base: Path, report: dict[str, Any]) -> list[Path]:
    """`<base>.md`, `<base>.json` and `<base>.png`; a re-run for the same date replaces them."""
    chart = _chart(base.with_suffix(".png"), report)
    md = atomic_write(base.with_suffix(".md"), render(report, None if chart is None
                                                      else chart.name))
    js = atomic_write(base.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    return [md, js, *([] if chart is None else [chart])]


def cost_agent_anomalies(reports: Path, start: datetime, end: datetime
                         ) -> tuple[list[dict[str, Any]], list[str]]:
    """For the monthly review: the anomalies of the daily reports that started in [start,
    end), the newest report's view of each (by id), and the reports that could not be read."""
    found: dict[str, dict[str, Any]] = {}
    unreadable: list[str] = []
    for path in sorted(reports.glob("cost-daily-*.json")):
        try:
            anomalies = json.loads(path.read_text(encoding="utf-8")).get("anomalies", [])
            for a in anomalies:
                # Episodes under raise_at stay in the daily JSON: noise for a monthly read.
                if (a["decision"]["action"] != "list"
                        and start <= datetime.fromisoformat(a["start"]) < end):
                    found[a["id"]] = {**a, "report": path.name}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            unreadable.append(f"{path}: {type(exc).__name__}: {exc}")
    return sorted(found.values(), key=lambda a: a["start"]), unreadable


def agent_section(agent: dict[str, Any]) -> str:
    """The monthly review's markdown section listing them (empty when there are none)."""
    if not agent["anomalies"] and not agent["unreadable"]:
        return ""
    lines = ["", "## The daily cost agent's anomalies", ""]
    for a in agent["anomalies"]:
        pct = "—" if a.get("impact_pct") is None else f"{a['impact_pct']:+.0f}%"
        lines.append(f"- {a['start'][:16]} {a['service']} ({a['region']}, {a['usage_type']}): "
                     f"${a['actual_usd']:,.2f} against ${a['expected_usd']:,.2f}, impact "
                     f"${a['impact_usd']:,.2f} ({pct}); {a['decision']['action']}: "
                     f"{a['decision']['reason']}")
    lines += [f"- unreadable: {u}" for u in agent["unreadable"]]
    return "\n".join(lines) + "\n"


def _when(iso: str) -> str:
    return iso[:16].replace("T", " ")


def render(report: dict[str, Any], chart: str | None) -> str:
    w = report["window"]
    lines = [f"# Cost, {report['date']}", "", report["headline"], "",
             f"Judged: {_when(w['start'])} to {_when(w['end'])} UTC, each hour against the "
             f"forecast's upper 95% bound (expected spend from up to "
             f"{report['policy']['history'] // 1440} days of hourly history).", ""]
    anomalies = [a for a in report["anomalies"] if a["decision"]["action"] != "list"]
    small = len(report["anomalies"]) - len(anomalies)
    lines += ["## Anomalies", ""]
    if small:
        lines += [f"{small} episode(s) above the 95% bound but under raise_at "
                  f"(${report['policy']['raise_at']['impact_usd']:g} and "
                  f"{report['policy']['raise_at']['impact_pct']:g}%): in the JSON only.", ""]
    if not anomalies:
        lines += ["Nothing raised." if small or unjudged_count(report) else
                  "Nothing: no service, region or usage type spent above expected.", ""]
    else:
        lines += ["| decision | service | region | usage type | start | end | actual | "
                  "expected | impact | impact % |", "|---|---|---|---|---|---|---|---|---|---|"]
        for a in anomalies:
            end = "ongoing" if a["ongoing"] else _when(a["end"])
            pct = "—" if a["impact_pct"] is None else f"{a['impact_pct']:+.0f}%"
            lines.append(f"| {a['decision']['action']} | {a['service']} | {a['region']} | "
                         f"{a['usage_type']} | {_when(a['start'])} | {end} | "
                         f"${a['actual_usd']:,.2f} | ${a['expected_usd']:,.2f} | "
                         f"${a['impact_usd']:,.2f} | {pct} |")
        lines.append("")
        for a in anomalies:
            lines.append(f"- `{a['id']}`: {a['decision']['reason']} "
                         f"({a['decision']['rule']})"
                         + "".join(f"; near it: {c['what']} at {_when(c['at'])}"
                                   for c in a.get("changes", [])))
        lines.append("")
    unjudged = [x for x in report["series"] if "note" in x]
    if unjudged:
        lines += [f"Not judged ({len(unjudged)}):", ""]
        lines += [f"- {x['service']} {x['region']} {x['usage_type']}: {x['note']}"
                  for x in unjudged]
        lines.append("")
    skipped = sum("skipped" in x for x in report["series"])
    if skipped:
        lines += [f"{skipped} small series spent under raise_at's "
                  f"${report['policy']['raise_at']['impact_usd']:g} in the window: not "
                  f"forecast (nothing there could be raised).", ""]
    if report.get("planned"):
        lines += ["## Planned activity in force", ""]
        lines += [f"- `{m['id']}` {m.get('service')} (region {m.get('region') or 'all'}, "
                  f"usage type {m.get('usage_type') or 'all'}) from {_when(m['start'])}"
                  + (f" to {_when(m['end'])}" if m.get("end") else "")
                  + f", by {m.get('by')}: {m.get('why')}" for m in report["planned"]]
        lines.append("")
    lines += ["## Rightsizing (replicas requested vs CPU used)", ""]
    sized = report["rightsizing"]
    if not any(r.get("target") or r.get("requests_target") for r in sized):
        lines += ["Nothing to propose.", ""]
    for r in sized:
        if r.get("target") or r.get("requests_target"):
            lines.append(f"- {r['service']}: {r['note']}")
    lines.append("")
    if report.get("opencost_problems"):
        lines += ["## OpenCost allocations not ingested", "",
                  "(for a file, the number after it is the allocation's position in it)", ""]
        lines += [f"- {p['file']}:{p['line']} {p['column']}={p['value']!r}: {p['problem']}"
                  for p in report["opencost_problems"]]
        lines.append("")
    if report["problems"]:
        lines += ["## FOCUS rows not ingested", ""]
        lines += [f"- {p['file']}:{p['line']} {p['column']}={p['value']!r}: {p['problem']}"
                  for p in report["problems"]]
        lines.append("")
    lines += ["## Sources", ""]
    lines += [f"- {name}: {count} row(s)" for name, count in report["sources"].items()]
    if report.get("feedback_problem"):
        lines.append(f"- feedback: {report['feedback_problem']}")
    if chart:
        lines += ["", f"![spend against expected]({chart})"]
    return "\n".join(lines) + "\n"


def unjudged_count(report: dict[str, Any]) -> int:
    return sum("note" in x for x in report["series"])


def _chart(path: Path, report: dict[str, Any]) -> Path | None:
    """Actual and expected spend with the 95% bound over the window for the series with
    anomalies (else the most expensive), at most MAX_PANELS."""
    shown = [s for s in report["series"] if s.get("expected")]
    if not shown:
        return None
    shown.sort(key=lambda s: (-len(s["anomalies"]), -sum(s["actual"])))
    shown = shown[:MAX_PANELS]
    import matplotlib

    matplotlib.use("Agg")  # headless: the agent runs on servers
    import matplotlib.pyplot as plt

    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.9 * rows), squeeze=False)
    start = datetime.fromisoformat(report["window"]["start"])
    for ax, s in zip(axes.flat, shown, strict=False):
        x = [start + timedelta(hours=i) for i in range(len(s["actual"]))]
        ax.plot(x, s["upper95"], lw=0.8, color="#90caf9", label="95% upper")
        ax.plot(x, s["expected"], lw=1.0, color="#0d47a1", label="expected")
        ax.plot(x, s["actual"], lw=1.1, color="#c62828", label="actual")
        for a in s["anomalies"]:
            ax.axvspan(datetime.fromisoformat(a["start"]), datetime.fromisoformat(a["end"]),
                       color="#ffcdd2", alpha=0.5, lw=0)
        ax.set_title(f"{s['service']} {s['region']} {s['usage_type']} (USD/h)", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=6, loc="upper left")
    fig.autofmt_xdate()
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.12, hspace=0.45, wspace=0.25)
    return save_png(fig, path)
