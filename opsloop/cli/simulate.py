"""`opsloop simulate`: a simulated month (or any number of days) of production, its incidents
taken round the loop and the scheduled agents' reviews written on the simulation's clock."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings

if TYPE_CHECKING:
    from opsloop.simulate import SimulationResult

MAX_DAYS = 366


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("simulate", parents=[common],
                       help="simulate days of production: faults, incidents, scheduled reviews")
    p.add_argument("--days", type=int, default=35,
                   help="simulated days (default 35: five weekly reviews and a monthly one)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed for the simulation and the fault plan (default: settings)")
    p.add_argument("--every", type=int, default=None, metavar="MINUTES",
                   help="evaluate alert rules every MINUTES simulated minutes (default 5)")
    p.add_argument("--detectors", action="store_true",
                   help="also run the streaming anomaly detectors (about 0.5 s more per "
                        "simulated hour: ~7 more minutes for 35 days)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=simulate)


def simulate(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    if not 1 <= args.days <= MAX_DAYS:
        raise UserError(f"--days must be between 1 and {MAX_DAYS}, got {args.days}")
    if args.every is not None and not 1 <= args.every <= 60:
        raise UserError(f"--every must be between 1 and 60 minutes, got {args.every}")
    used = [p for p in (settings.state_dir / "opsloop.db", settings.state_dir / "schedule.db")
            if p.exists()]
    if used:
        raise UserError(f"{settings.work_dir} already holds state ({used[0]}): a simulation "
                        f"starts its own clock, so give it a fresh --work-dir")
    from opsloop.graph.runner import OperateLoop  # langgraph + chromadb: only when run
    from opsloop.simulate import DEFAULT_EVALUATE_EVERY, Simulation

    seed = settings.seed if args.seed is None else args.seed
    loop = OperateLoop(settings)
    sim = Simulation(loop, seed, evaluate_every=args.every or DEFAULT_EVALUATE_EVERY,
                     detectors=args.detectors)
    try:
        ui.err.print(f"simulating {args.days} days from {sim.env.now():%Y-%m-%d %H:%M} "
                     f"(seed {seed}) into {settings.work_dir}", markup=False)
        result = sim.run(args.days, lambda line: ui.err.print(line, markup=False))
    finally:
        sim.close()
        loop.close()
    summary = summarize(result, settings.work_dir)
    reports = settings.work_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "simulation.json").write_text(json.dumps(summary, indent=2) + "\n",
                                              encoding="utf-8")
    if args.json:
        ui.json(summary)
    else:
        _print(summary, ui)
    return 0 if not summary["unfinished"] else 1


def summarize(result: SimulationResult, work_dir: Path) -> dict[str, Any]:
    """The simulation as people read it: what was injected, what the loop and agents did.
    Files are named relative to the work dir, so the summary travels with the reports."""
    incidents = [{"id": i.id, "opened_at": i.opened_at.isoformat(), "title": i.title,
                  "severity": i.severity.value if i.severity else None,
                  "status": i.status.value,
                  "root_cause": i.root_cause.category if i.root_cause else None,
                  "actions": [c.action.describe() for c in i.actions]}
                 for i in result.incidents]
    runs: dict[str, dict[str, int]] = {}
    for run in result.runs:
        counts = runs.setdefault(run.agent, {})
        counts[run.status] = counts.get(run.status, 0) + 1
    return {
        "environment": result.environment, "seed": result.seed,
        "start": result.start.isoformat(), "end": result.end.isoformat(),
        "days": len(result.days), "evaluate_every_minutes": result.evaluate_every,
        "wall_seconds": round(result.wall_seconds, 1),
        "faults": [{"at": f.at.isoformat(), "fault": f.name, "service": f.service,
                    "what": f.summary} for f in result.faults],
        "incidents": incidents,
        "unfinished": [i["id"] for i in incidents
                       if i["status"] in ("open", "awaiting_approval")],
        "approvals": result.answers,
        "agent_runs": runs,
        "reports": sorted({_relative(p, work_dir) for r in result.runs for p in r.reports}),
        "errors": result.errors,
        "per_day": [vars(d) for d in result.days],
    }


def _relative(path: str, work_dir: Path) -> str:
    try:
        return str(Path(path).relative_to(work_dir))
    except ValueError:
        return path


def _print(summary: dict[str, Any], ui: Ui) -> None:
    ui.table("faults injected (the answer key)", ["at", "fault", "service"],
             [[f["at"][:16], f["fault"], f["service"]] for f in summary["faults"]])
    ui.table("incidents", ["id", "opened", "sev", "status", "root cause"],
             [[i["id"], i["opened_at"][:16], i["severity"] or "-", i["status"],
               i["root_cause"] or "-"] for i in summary["incidents"]])
    ui.table("scheduled runs", ["agent", "runs"],
             [[a, ", ".join(f"{n} {s}" for s, n in sorted(c.items()))]
              for a, c in sorted(summary["agent_runs"].items())])
    ui.out.print(f"{summary['days']} days in {summary['wall_seconds']:.0f}s; "
                 f"{len(summary['reports'])} file(s) written by the agents; "
                 f"{len(summary['errors'])} error(s)", markup=False)
    for error in summary["errors"][:10]:
        ui.err.print(f"  {error}", markup=False, style="red")
