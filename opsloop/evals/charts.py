"""PNG charts for the eval report (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: a headless backend for CI and servers
import matplotlib.pyplot as plt

RATES = ("severity_accuracy", "routing_accuracy", "root_cause_top1", "root_cause_top3",
         "remediation_correctness", "verification_accuracy", "approval_precision",
         "approval_recall", "postmortem_completeness", "postmortem_consistency", "pass_rate")
TIMES = ("median_minutes_to_detect", "median_minutes_to_mitigate", "median_minutes_to_verify")


def _bars(path: Path, title: str, labels: list[str], series: dict[str, list[float]],
          ylabel: str, ylim: tuple[float, float] | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(labels) * max(1, len(series))), 4.2))
    width = 0.8 / max(1, len(series))
    for n, (name, values) in enumerate(series.items()):
        xs = [i + n * width - 0.4 + width / 2 for i in range(len(labels))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(result: dict[str, Any], directory: Path) -> list[Path]:
    """Accuracy per metric, time to detect/mitigate/verify, and pass/fail per case."""
    directory.mkdir(parents=True, exist_ok=True)
    summary = result["summary"]
    models = list(summary)
    paths = [
        _bars(directory / "accuracy.png", "Decision accuracy by metric",
              [m.replace("_", " ") for m in RATES],
              {m: [summary[m].get(k) or 0.0 for k in RATES] for m in models}, "rate", (0, 1.05)),
        _bars(directory / "times.png", "Median simulated minutes from fault",
              ["detect", "mitigate", "verify"],
              {m: [summary[m].get(k) or 0.0 for k in TIMES] for m in models}, "minutes"),
    ]
    cases = sorted({row["case"] for row in result["cases"]})
    passed = {(row["model"], row["case"]): 0.0 for row in result["cases"]}
    runs: dict[tuple[str, str], int] = {}
    for row in result["cases"]:
        key = (row["model"], row["case"])
        passed[key] += 1.0 if row["passed"] else 0.0
        runs[key] = runs.get(key, 0) + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(cases) + 2), 1.0 + 0.5 * len(models)))
    grid = [[passed.get((m, c), 0.0) / max(1, runs.get((m, c), 1)) for c in cases]
            for m in models]
    ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models, fontsize=8)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels([c.split("/")[-1] for c in cases], rotation=90, fontsize=6)
    ax.set_title("Cases passed (green) per model")
    fig.tight_layout()
    fig.savefig(directory / "cases.png", dpi=110)
    plt.close(fig)
    paths.append(directory / "cases.png")
    return paths
