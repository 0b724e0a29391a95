"""A scheduled run's own report, for agents whose analysis wrote none: every run leaves a
readable record of what it looked at and found (`reports/runs/<agent>/<due>.md`), named by
the time it ran for, so a run replayed after a crash rewrites the same file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from opsloop.agents.markdown import atomic_write
from opsloop.scheduled.base import Analysis


def write_run_report(reports_dir: Path, agent: str, due_at: datetime,
                     analysis: Analysis) -> Path:
    lines = [f"# {agent}: run for {due_at:%Y-%m-%d %H:%M} UTC", "",
             analysis.summary or "Nothing to report.", ""]
    if analysis.findings:
        lines += ["## Findings", ""]
        for f in analysis.findings:
            lines.append(f"- **{f.level}** {f.kind} — {f.subject}: {f.summary}")
            lines += [f"  - {e}" for e in f.evidence]
        lines.append("")
    if analysis.proposals:
        lines += ["## Proposed (decided by policy, like any change)", ""]
        lines += [f"- {p.action.describe()}: {p.rationale or p.action.reason}"
                  for p in analysis.proposals]
        lines.append("")
    if analysis.signals:
        lines += ["## Signals filed", ""] + [f"- {s}" for s in analysis.signals] + [""]
    path = reports_dir / "runs" / agent / f"{due_at:%Y-%m-%dT%H%MZ}.md"
    return atomic_write(path, "\n".join(lines))
