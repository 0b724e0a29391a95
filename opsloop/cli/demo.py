"""`opsloop demo` and `opsloop scenarios`: the loop on the built-in simulated production."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from opsloop.cli.render import Ui, UserError
from opsloop.models import DecisionOutcome, Incident
from opsloop.settings import Settings
from opsloop.simulator import SCENARIOS

if TYPE_CHECKING:
    from opsloop.watch import ScenarioRun


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="run fault scenarios round the loop")
    p.add_argument(
        "--scenario",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="scenarios to run (one or more, repeatable; default: all). See `opsloop scenarios`",
    )
    p.add_argument("--seed", type=int, default=None, help="simulation seed (default: settings)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=demo)
    s = sub.add_parser("scenarios", parents=[common], help="list the built-in fault scenarios")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=scenarios)


def scenarios(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    rows = [
        {"name": s.name, "title": s.title, "description": s.description} for s in SCENARIOS.values()
    ]
    if args.json:
        ui.json(rows)
    else:
        ui.table("Built-in scenarios", ["name", "title"], [[r["name"], r["title"]] for r in rows])
    return 0


def outcome(incident: Incident) -> str:
    if incident.status.value == "awaiting_approval":
        return "pending approval"
    if incident.verification is not None:
        return "verified" if incident.verification.passed else "verification failed"
    return incident.status.value


def summarize(run: ScenarioRun, seconds: float) -> dict[str, Any]:
    expected = SCENARIOS[run.scenario].expected
    row: dict[str, Any] = {
        "scenario": run.scenario,
        "seed": run.seed,
        "environment": run.environment,
        "seconds": round(seconds, 2),
        "fault_at": run.fault_at.isoformat(),
        "detected_at": run.detected_at.isoformat() if run.detected_at else None,
        "expected_category": expected.category,
    }
    if not run.incidents:
        return {**row, "incident": None, "outcome": "not detected", "correct": False}
    incident = run.incidents[0]
    cause = incident.root_cause
    row.update(
        incident=incident.id,
        severity=incident.severity.value if incident.severity else None,
        specialists=incident.specialists,
        specialist=next(
            (d.specialist for d in incident.diagnoses if cause and d.top and d.top.id == cause.id),
            None,
        ),
        root_cause=cause.category if cause and not incident.novel else None,
        cause=cause.cause if cause else None,
        confidence=cause.confidence if cause else None,
        actions=[
            {
                "action": c.action.describe(),
                "decision": c.decision.outcome.value if c.decision else None,
                "rule": c.decision.rule if c.decision else None,
            }
            for c in incident.actions
        ],
        outcome=outcome(incident),
        status=incident.status.value,
        approvals_waiting=[
            c.id
            for c in incident.actions
            if c.decision is not None and c.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
            and incident.status.value == "awaiting_approval"
        ],
        postmortem=incident.postmortem_path,
        signals=incident.signal_paths,
    )
    row["correct"] = row["root_cause"] == expected.category
    return row


def demo(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    names = args.scenario or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise UserError(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    seed = settings.seed if args.seed is None else args.seed
    from opsloop.graph.runner import OperateLoop  # langgraph + chromadb: only when run
    from opsloop.watch import run_scenario

    loop = OperateLoop(settings)
    rows = []
    try:
        for n, name in enumerate(names, 1):
            ui.err.print(f"[{n}/{len(names)}] {name}: simulating…", markup=False)
            started = time.perf_counter()
            run = run_scenario(loop, name, seed, lambda m: ui.err.print("    " + m, markup=False))
            row = summarize(run, time.perf_counter() - started)
            rows.append(row)
            ui.err.print(
                f"    {row.get('severity') or '-'} → {row.get('root_cause') or 'no cause'}"
                f" → {row['outcome']} ({row['seconds']:.1f}s)",
                markup=False,
            )
    finally:
        loop.close()
    if args.json:
        ui.json(rows)
    else:
        render_summary(rows, ui)
    return 0 if all(r["incident"] for r in rows) else 1


def render_summary(rows: list[dict[str, Any]], ui: Ui) -> None:
    table_rows = []
    for r in rows:
        actions = "\n".join(f"{a['action']} → {a['decision']}" for a in r.get("actions") or [])
        drafts = "\n".join(filter(None, [r.get("postmortem"), *(r.get("signals") or [])]))
        table_rows.append(
            [
                r["scenario"],
                r.get("incident") or "-",
                r.get("severity") or "-",
                r.get("specialist") or "-",
                f"{r.get('root_cause') or 'novel'}" + (" ✓" if r["correct"] else " ✗"),
                actions or "-",
                r["outcome"],
                drafts or "-",
            ]
        )
    ui.table(
        "opsloop demo",
        [
            "scenario",
            "incident",
            "sev",
            "specialist",
            "root cause",
            "actions → policy",
            "outcome",
            "drafts",
        ],
        table_rows,
    )
    waiting = sum(1 for r in rows if r["outcome"] == "pending approval")
    if waiting:
        ui.out.print(
            f"{waiting} incident(s) wait for a human: `opsloop approvals`, then "
            "`opsloop approve ID` / `reject ID --reason ...` / `modify ID --set k=v`.",
            markup=False,
        )
