"""`opsloop agents`: the scheduled agents, their last and next runs, history, and run one now."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings

if TYPE_CHECKING:
    from opsloop.scheduler.ledger import AgentRun


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("agents", parents=[common],
                       help="scheduled agents: schedule, last and next run, history, run now")
    verbs = p.add_subparsers(dest="agents_command", metavar="VERB")
    lst = verbs.add_parser("list", parents=[common], help="every agent (the default)")
    lst.add_argument("--json", action="store_true")
    run = verbs.add_parser("run", parents=[common], help="run one agent now")
    run.add_argument("name")
    run.add_argument("--environment", metavar="REF",
                     help="production to run against: sim:<id> or remote:sim=<url>,... "
                          "(default: a fresh simulation of --scenario)")
    run.add_argument("--scenario", default="traffic_surge",
                     help="with no --environment: the simulation to start (default "
                          "traffic_surge)")
    run.add_argument("--json", action="store_true")
    hist = verbs.add_parser("history", parents=[common], help="an agent's runs, newest first")
    hist.add_argument("name")
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=agents)


def agents(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.policy import load_policies
    from opsloop.scheduled import registry
    from opsloop.scheduler.ledger import RunLedger

    verb = args.agents_command or "list"
    if verb in ("run", "history") and args.name not in registry.names():
        raise UserError(str(registry.UnknownAgent(args.name)))
    policies = load_policies(settings.policies_dir, allow_unsafe=settings.allow_unsafe_policies)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        if verb == "history":
            runs = ledger.history(args.name, limit=max(1, args.limit))
            return _show_runs(ui, f"{args.name}: runs, newest first", runs, args.json)
        if verb == "run":
            return _run(args, settings, ui, ledger)
        return _list(args, ui, policies, ledger)
    finally:
        ledger.close()


def _list(args: argparse.Namespace, ui: Ui, policies: Any, ledger: Any) -> int:
    from opsloop.scheduler.driver import agent_statuses, status_row

    rows: list[dict[str, Any]] = [status_row(r) for r in
                                  agent_statuses(policies, ledger, datetime.now(UTC))]
    if args.json:
        ui.json(rows)
        return 0
    ui.table("scheduled agents (policies/schedule.yaml)",
             ["agent", "schedule", "last run", "status", "next run (wall clock)"],
             [[r["name"],
               f"{r['cron']} {r['timezone']}" if r["cron"] else "not scheduled",
               (r["last_run"]["started_at"][:16] if r["last_run"] else "never"),
               (r["last_run"]["status"] if r["last_run"] else "—"),
               (r["next_run"][:16] if r["next_run"] else "—")] for r in rows])
    ui.err.print("a running `opsloop run` schedules on production's clock; `opsloop agents "
                 "run NAME` runs one now", markup=False)
    return 0


def _run(args: argparse.Namespace, settings: Settings, ui: Ui, ledger: Any) -> int:
    from opsloop.environments import UnknownEnvironment, new_simulation, open_environment
    from opsloop.graph.runner import OperateLoop
    from opsloop.scheduler.driver import Scheduler
    from opsloop.simulator import UnknownScenarioError
    from opsloop.store import StoreError

    if args.environment:
        ref = args.environment
    else:
        try:
            ref, env = new_simulation(args.scenario, settings.seed, settings)
        except UnknownScenarioError as exc:
            raise UserError(str(exc)) from None
        env.close()
    loop = OperateLoop(settings)
    try:
        try:
            probe = open_environment(ref, settings)
        except UnknownEnvironment as exc:
            raise UserError(str(exc)) from None
        now = probe.now()
        probe.close()
        scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
        ui.err.print(f"running {args.name} against {ref} …", markup=False)
        try:
            run = scheduler.run_now(args.name, now)
        except StoreError as exc:
            raise UserError(str(exc)) from None
    finally:
        loop.close()
    code = _show_runs(ui, f"{args.name}: this run", [run], args.json)
    return 1 if run.status == "failed" else code


def _show_runs(ui: Ui, title: str, runs: list[AgentRun], as_json: bool) -> int:
    if as_json:
        ui.json([r.model_dump(mode="json") for r in runs])
        return 0
    ui.table(title, ["run", "trigger", "started", "status", "took", "findings", "proposals",
                     "summary"],
             [[r.run_id, r.trigger + (f" (+{r.missed} missed)" if r.missed else ""),
               r.started_at.isoformat()[:16], r.status,
               f"{r.seconds:.1f}s" if r.seconds is not None else "—",
               str(len(r.findings)), str(len(r.proposals)),
               (r.error or r.summary)[:80]] for r in runs])
    for r in runs:
        for report in r.reports:
            ui.err.print(f"  wrote {report}", markup=False)
    return 0
