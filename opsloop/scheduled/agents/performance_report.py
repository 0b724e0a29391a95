"""The performance agent's report: markdown, JSON and a PNG of the series that changed.

Named by the hour the run is due (`performance-2026-11-02T09`): a re-run of the same hour
overwrites, the next hour's run writes its own.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from opsloop.agents.markdown import atomic_write
from opsloop.models import RemediationProposal
from opsloop.regress.changepoints import ALPHA, MIN_SIZE, PENALTY
from opsloop.regress.regressions import RULES, MetricChange
from opsloop.scheduled.base import Finding
from opsloop.scheduled.charts import save_png

MAX_PANELS = 12


def report_base(reports_dir: Path, due_at: datetime) -> Path:
    return reports_dir / f"performance-{due_at:%Y-%m-%dT%H}"


def write_report(reports_dir: Path, due_at: datetime, observed: dict[str, Any],
                 found: list[MetricChange], proposed: dict[int, str],
                 baselines: dict[str, dict[str, Any]], findings: list[Finding],
                 proposals: list[RemediationProposal], headline: str) -> list[Path]:
    """The markdown, JSON and PNG of one run; returns their paths. `proposed`: the action
    proposed for a change, by its position in `found`."""
    base = report_base(reports_dir, due_at)
    rows = [{**c.to_dict(), "proposal": proposed.get(i)} for i, c in enumerate(found)]
    data = {"headline": headline, "now": observed.get("now"), "since": observed.get("since"),
            "method": _method(), "baselines": baselines, "changes": rows,
            "regressions": [r for r in rows if r["regression"]],
            "findings": [f.model_dump(mode="json", exclude={"data"}) for f in findings],
            "proposals": [p.model_dump(mode="json") for p in proposals]}
    chart = _chart(base.with_suffix(".png"), observed, found)
    md = atomic_write(base.with_suffix(".md"), render(data, chart.name))
    js = atomic_write(base.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
    return [md, js, chart]


def _method() -> dict[str, Any]:
    return {"resolution_minutes": 5, "detector": "ruptures KernelCPD, linear kernel (l2), Pelt",
            "penalty": f"{PENALTY:g}·ln(n) in units of the series' robust noise",
            "min_segment_points": MIN_SIZE, "test": "Mann-Whitney U, two-sided",
            "alpha": ALPHA,
            "rules": [{"metric": r.metric, "worse": "up" if r.worse > 0 else "down",
                       "min_change": r.min_change, "min_absolute": r.min_absolute}
                      for r in RULES]}


def _when(iso: str | None) -> str:
    return (iso or "")[:16].replace("T", " ")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def render(data: dict[str, Any], chart: str) -> str:
    lines = [f"# Performance, {_when(data['now'])} UTC", "", f"**{data['headline']}.**", "",
             f"Change points since {_when(data['since'])} (production's clock) against each "
             f"service's baseline before it. Method: {data['method']['detector']}, penalty "
             f"{data['method']['penalty']}, Mann-Whitney p < {ALPHA:g}.", "",
             "## Regressions", ""]
    table = ["| time | service | metric | change | mean before | mean after | % change "
             "| p-value | held | proposal |", "|---|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in data["regressions"]:
        a = r["attributed_to"]
        cause = "unattributed" if a is None else a["what"] + ("" if a["own"] else
                                                              " (dependency)")
        table.append(
            f"| {_when(r['at'])} | {r['service']} | {r['metric']} | {cause} | "
            f"{r['mean_before']:.4g} | {r['mean_after']:.4g} | {_pct(r['change'])} | "
            f"{r['p_value']:.2g} | {r['held_minutes']} min"
            f"{', holding' if r['persistent'] else ''} | "
            f"{r['proposal'] or '—'} |")
    lines += table if data["regressions"] else ["None."]
    others = [r for r in data["changes"] if not r["regression"]]
    lines += ["", "## Other changes (improvements, or under the rules' thresholds)", ""]
    lines += [f"- {_when(r['at'])} {r['service']} {r['metric']} {_pct(r['change'])} "
              f"({r['mean_before']:.4g} → {r['mean_after']:.4g}, p={r['p_value']:.2g})"
              for r in others] or ["- none"]
    lines += ["", "## Proposals", ""]
    lines += [f"- `{p['action']['type']}` {p['action']['service']} to "
              f"{p['action']['params'].get('to_version')} (confidence {p['confidence']:.2f}): "
              f"{p['rationale']}" for p in data["proposals"]] or ["- none"]
    lines += ["", "## Baselines (before the window, 5-minute medians)", "",
              "| service | metric | median | mean | p05 | p95 | noise |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for service, metrics in sorted(data["baselines"].items()):
        for metric, b in metrics.items():
            lines.append(f"| {service} | {metric} | " + (
                "no data | | | | |" if b is None else
                f"{b['median']:.4g} | {b['mean']:.4g} | {b['p05']:.4g} | {b['p95']:.4g} | "
                f"{b['noise']:.1%} |"))
    lines += ["", "## Chart", "", f"![{chart}]({chart})", ""]
    return "\n".join(lines)


def _chart(path: Path, observed: dict[str, Any], found: list[MetricChange]) -> Path:
    """Each regressed series (else each service's p99) with its change points, the segment
    means and the attributed change marked."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the agent runs on servers
    import matplotlib.pyplot as plt

    series: dict[str, Any] = observed.get("series", {})
    regressed = [c for c in found if c.regression]
    panels = list(dict.fromkeys((c.service, c.metric) for c in regressed))
    if not panels:
        panels = [(s, "latency_p99_ms") for s in sorted(series)
                  if "latency_p99_ms" in series[s]]
    panels = panels[:MAX_PANELS]
    cols = min(3, max(len(panels), 1))
    grid = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(grid, cols, figsize=(max(4.6 * cols, 9.5), 2.8 * grid + 0.6),
                             squeeze=False)
    for ax, (service, metric) in zip(axes.flat, panels, strict=False):
        data = series.get(service, {}).get(metric, {"times": [], "values": []})
        xs = [datetime.fromisoformat(t) for t in data["times"]]
        ax.plot(xs, data["values"], lw=0.8, color="#455a64")
        for c in (c for c in found if (c.service, c.metric) == (service, metric)):
            colour = "#c62828" if c.regression else "#2e7d32"
            ax.axvline(c.at, color=colour, lw=1.2)
            ax.hlines([c.point.mean_before, c.point.mean_after],
                      [xs[c.point.index - c.point.n_before], c.at],
                      [c.at, xs[min(c.point.index + c.point.n_after, len(xs)) - 1]],
                      colors=colour, lw=1, linestyles=":")
            if c.attribution is not None:
                ax.axvline(c.attribution.change.at, color="#6a1b9a", lw=1, ls="--")
                ax.annotate(c.attribution.change.what[:40], (c.attribution.change.at, 0.98),
                            xycoords=("data", "axes fraction"), fontsize=6, rotation=90,
                            va="top", ha="right", color="#6a1b9a")
        if "since" in observed:
            ax.axvline(datetime.fromisoformat(observed["since"]), color="grey", lw=0.6, ls=":")
        ax.set_title(f"{service} {metric}", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("5-minute medians; red: regression change point, green: other change, "
                 "purple dashed: the change it is attributed to, grey: window start",
                 fontsize=8)
    fig.autofmt_xdate()
    fig.subplots_adjust(left=0.06, right=0.97, top=0.88, bottom=0.14, hspace=0.5, wspace=0.3)
    return save_png(fig, path)
