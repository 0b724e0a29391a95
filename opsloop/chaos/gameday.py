"""One GameDay run end to end: the engine's run, its report, where both are kept.

The journal and the engine's log stay with the run (`<state>/chaos/<run id>/`); the report
goes with the other reports (`<work>/reports/gameday-<run id>.md` and `.json`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from opsloop.chaos.engine import run_experiment, write_json
from opsloop.chaos.experiments import Experiment
from opsloop.chaos.report import (
    Detection,
    GameDayReport,
    build_report,
    render_markdown,
    report_paths,
)

# Given the target's minute at the start, the fault's and the rollbacks' (None: the target
# tells no clock): the alerts opsloop's own detection raised for the experiment's services
# in between.
Watcher = Callable[[Experiment, int | None, int | None, int | None], list[Detection]]


def run_gameday(experiment: Experiment, target_url: str, *, state_dir: Path, reports_dir: Path,
                run_id: str, watch: Watcher | None = None,
                started_at: datetime | None = None) -> GameDayReport:
    """Run `experiment` against `target_url` and write its GameDay report. `started_at`:
    production's clock at the start (policy spaces runs on it); default the wall clock."""
    journal = run_experiment(experiment, target_url, state_dir / "chaos" / run_id, run_id)
    detections = None
    if watch is not None:
        timeline = journal["opsloop"]["timeline"]
        start = timeline[0]["minute"] if timeline else None
        fault = next((t["minute"] for t in timeline if t["phase"] == "method"
                      and t.get("type") == "action"), None)
        until = next((t["minute"] for t in timeline if t["event"] == "rollbacks_started"), None)
        detections = watch(experiment, start, fault, until)
    report = build_report(experiment, journal, detections)
    if started_at is not None:
        report = report.model_copy(update={"started_at": started_at.isoformat()})
    markdown, data = report_paths(reports_dir, run_id)
    write_json(data, report.model_dump(mode="json"))
    markdown.write_text(render_markdown(report), encoding="utf-8")
    return report


def history(reports_dir: Path) -> tuple[list[GameDayReport], list[str]]:
    """Every GameDay report kept, oldest first; an unreadable one is named, not fatal."""
    reports: list[GameDayReport] = []
    problems: list[str] = []
    for path in sorted(reports_dir.glob("gameday-*.json")) if reports_dir.is_dir() else []:
        try:
            reports.append(GameDayReport.model_validate(json.loads(path.read_text("utf-8"))))
        except (OSError, ValueError, ValidationError) as exc:
            problems.append(f"{path}: not a GameDay report ({str(exc).splitlines()[0]})")
    reports.sort(key=lambda r: r.started_at)
    return reports, problems
