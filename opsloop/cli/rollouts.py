"""`opsloop rollouts`: feature-flag rollouts — every flag with its percent and whether
rollouts.yaml manages it (`list`), and one managed flag's step, analysis, error-budget state
and what the rollouts agent would decide now (`show FLAG`).

Flags are read from a flagd flag file (`--flag-file`) or from production (`--environment`,
`--scenario`); `show` needs production, as the analysis reads the flag's service metrics.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings

if TYPE_CHECKING:
    from opsloop.models import FlagState
    from opsloop.policy import Policies
    from opsloop.tools.protocols import Production


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rollouts", parents=[common],
                       help="feature-flag rollouts: list, show one flag's step and analysis")
    _source_options(p, argparse.SUPPRESS)
    p.set_defaults(handler=list_rollouts, json=False, flag_file=None, environment=None,
                   scenario=None, minutes=0)
    verbs = p.add_subparsers(dest="rollouts_command", metavar="VERB")
    ls = verbs.add_parser("list", parents=[common],
                          help="every flag, its percent, and its plan when managed (default)")
    _source_options(ls, None)
    ls.set_defaults(handler=list_rollouts)
    s = verbs.add_parser("show", parents=[common],
                         help="one managed flag: step, analysis, budget, the agent's decision")
    s.add_argument("flag", metavar="FLAG", help="flagd flag key")
    _source_options(s, None, file=False)
    s.set_defaults(handler=show)
    _owner_verbs(verbs, common)


def _owner_verbs(verbs: Any, common: argparse.ArgumentParser) -> None:
    """The outcome owner's decisions; each names production (--environment) and who decides."""
    helps = {"advance": "move a flag to its plan's next step (or --to STEP), through the "
                        "change path",
             "hold": "stop the agent advancing a flag (a failing step is still killed)",
             "resume": "let the agent advance a held flag again",
             "kill": "switch a flag off now (disable_flag), through the change path",
             "answer": "answer a kill: temporary (you re-enable it) or rework"}
    for verb, text in helps.items():
        v = verbs.add_parser(verb, parents=[common], help=text)
        v.add_argument("flag", metavar="FLAG", help="flagd flag key (managed in rollouts.yaml)")
        if verb == "answer":
            v.add_argument("answer", choices=["temporary", "rework"])
        if verb == "advance":
            v.add_argument("--to", type=int, metavar="PERCENT", default=None,
                           help="a step of the plan above the current percent "
                                "(default: the next step)")
        v.add_argument("--reason", default="", required=verb in ("hold", "kill"),
                       help="why (recorded with the decision)")
        v.add_argument("--environment", metavar="REF", required=True,
                       help="production: sim:<id> or remote:sim=<url>,...")
        v.add_argument("--by", default=None, help="who decides (default: OPSLOOP_USER or login)")
        v.add_argument("--json", action="store_true")
        v.set_defaults(handler=owner_verb, verb=verb)


def _source_options(p: argparse.ArgumentParser, default: Any, file: bool = True) -> None:
    where = p.add_mutually_exclusive_group()
    if file:
        where.add_argument("--flag-file", metavar="PATH", type=Path, default=default,
                           help="a flagd flag file (flagd's flag-definition JSON)")
    where.add_argument("--environment", metavar="REF", default=default,
                       help="read production: sim:<id> or remote:sim=<url>,...")
    where.add_argument("--scenario", metavar="NAME", default=default,
                       help="read a fresh simulation of this scenario")
    p.add_argument("--minutes", type=int, default=default if default is not None else 0,
                   help="with --scenario: simulate this many minutes first")
    p.add_argument("--json", action="store_true", default=default)


def _policies(settings: Settings) -> Policies:
    from opsloop.policy import load_policies

    return load_policies(settings.policies_dir, allow_unsafe=settings.allow_unsafe_policies)


def _production(args: argparse.Namespace, settings: Settings) -> Production:
    from opsloop.environments import open_environment

    if getattr(args, "scenario", None):
        from opsloop.simulator import SimEnvironment, UnknownScenarioError

        if args.minutes < 0:
            raise UserError("--minutes must not be negative")
        try:
            env = SimEnvironment.create(args.scenario, settings.seed)
        except UnknownScenarioError as exc:
            raise UserError(str(exc)) from None
        env.wait(args.minutes)
        return env
    if getattr(args, "environment", None):
        return open_environment(args.environment, settings)
    raise UserError("say where the flags are: --flag-file PATH (a flagd file), "
                    "--environment REF, or --scenario NAME")


def _flags(args: argparse.Namespace, settings: Settings) -> list[FlagState]:
    if getattr(args, "flag_file", None):
        from opsloop.rollouts.flagd import FlagFileError
        from opsloop.rollouts.source import FileFlagSource

        try:
            return FileFlagSource(args.flag_file, clock=lambda: datetime.now(UTC)).flags()
        except FlagFileError as exc:
            raise UserError(str(exc)) from None
    production = _production(args, settings)
    try:
        return production.flags()
    finally:
        production.close()


def list_rollouts(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.graph.rollout_owner import flag_rows

    rows = flag_rows(_policies(settings), _flags(args, settings))
    if args.json:
        ui.json(rows)
        return 0
    ui.table("Flags", ["flag", "service", "state", "percent", "managed", "steps", "next"],
             [[r["key"], r["service"], "enabled" if r["enabled"] else "DISABLED",
               f"{r['percent']:g}%", "yes" if r["managed"] else "no",
               ",".join(map(str, r["steps"] or [])) or "-",
               "-" if r["next_step"] is None else f"{r['next_step']}%"] for r in rows])
    return 0


def show(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.graph.rollout_owner import UnknownFlag, flag_detail
    from opsloop.rollouts.owner import OwnerBook, OwnerFileError
    from opsloop.scheduled.agents.rollouts import pending_answers
    from opsloop.store import IncidentStore

    policies = _policies(settings)
    plan = policies.rollouts.plan_for(args.flag)
    if plan is None and args.flag not in policies.rollouts.experiments:
        managed = ", ".join(sorted(policies.rollouts.flags)) or "none"
        raise UserError(f"rollouts.yaml does not manage {args.flag!r} (managed: {managed}); "
                        f"add it under flags: in {settings.policies_dir / 'rollouts.yaml'}")
    production = _production(args, settings)
    store = IncidentStore(settings.state_dir / "opsloop.db")
    try:
        row = flag_detail(policies, production, args.flag, OwnerBook(settings.state_dir),
                          pending_answers(store, production.now()))
    except (UnknownFlag, OwnerFileError) as exc:
        raise UserError(str(exc)) from None
    finally:
        store.close()
        production.close()
    if args.json:
        ui.json(row)
        return 0
    if plan is None:  # an experiment only
        _print_experiment(ui, row["experiment"])
        _print_owner(ui, args.flag, row["owner_state"], "")
        return 0
    decision = row["decision"]
    analysis = row["analysis"]
    ui.out.print(f"{args.flag} on {row['service']}: "
                 f"{'enabled' if row['enabled'] else 'DISABLED'} at {row['percent']:g}% "
                 f"for {row['elapsed_minutes']} min (steps {plan.steps}, interval "
                 f"{plan.interval} min, advances {plan.advances})", markup=False)
    ui.out.print(f"analysis: {analysis['phase']} — {analysis['reason']}", markup=False)
    ui.out.print(f"error budget: {row['budget']['state']} — {row['budget']['reason']}",
                 markup=False)
    ui.out.print(f"decision: {decision['action']} [{decision['rule']}] {decision['reason']}",
                 markup=False)
    _print_owner(ui, args.flag, row["owner_state"], decision["action"])
    if row.get("experiment"):
        _print_experiment(ui, row["experiment"])
    return 0


def _print_experiment(ui: Ui, experiment: dict[str, Any]) -> None:
    from opsloop.scheduled.agents.rollout_experiments import numbers

    winner = f", {experiment['winner']} is better" if experiment.get("winner") else ""
    ui.out.print(f"experiment ({experiment['metric']}, {experiment['better']} is better, "
                 f"{experiment['control']} vs {experiment['treatment']}, owner "
                 f"{experiment['owner'] or '?'}): {experiment['status']}{winner} — "
                 f"{numbers(experiment)}", markup=False)


def _print_owner(ui: Ui, key: str, owner: dict[str, Any], action: str) -> None:
    hold, answer = owner.get("hold"), owner.get("answer")
    if hold:
        ui.out.print(f"owner: HELD by {hold['by']} at {hold['at'][:16]} — "
                     f"{hold.get('reason') or 'no reason given'} "
                     f"(`opsloop rollouts resume {key}`)", markup=False)
    if answer:
        ui.out.print(f"owner: kill answered {answer['answer']} by {answer['by']} at "
                     f"{answer['at'][:16]} — {answer.get('reason') or 'no reason given'}",
                     markup=False)
    if action == "rework":
        ui.out.print(f"CLEANUP: {key} went back for rework: remove it from the code and the "
                     "flag file, or rework it and advance it again", markup=False)
    for entry in owner.get("history", [])[-5:]:
        extra = f" to {entry['to_percent']}%" if entry.get("to_percent") is not None else ""
        extra += f" {entry['answer']}" if entry.get("answer") else ""
        ui.out.print(f"  {entry['at'][:16]} {entry['verb']}{extra} by {entry['by']}"
                     f"{': ' + entry['reason'] if entry.get('reason') else ''}", markup=False)


def owner_verb(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    """advance | hold | resume | kill | answer, as the owner (`--by`, else OPSLOOP_USER)."""
    from opsloop.environments import open_environment
    from opsloop.graph import rollout_owner as owner
    from opsloop.graph.runner import OperateLoop  # langgraph: only when run
    from opsloop.rollouts.owner import OwnerBook, OwnerFileError

    by = args.by or settings.user
    production = open_environment(args.environment, settings)
    loop = OperateLoop(settings) if args.verb in ("advance", "kill") else None
    policies = loop.policies if loop is not None else _policies(settings)
    book = OwnerBook(settings.state_dir)
    try:
        if loop is not None and args.verb == "advance":
            change = owner.advance(loop, production, args.environment, args.flag, args.to, by,
                                   args.reason)
        elif loop is not None:
            change = owner.kill(loop, production, args.environment, args.flag, by,
                                args.reason)
        else:
            state = {"hold": lambda: owner.hold(book, policies, production, args.flag, by,
                                                args.reason),
                     "resume": lambda: owner.resume(book, policies, production, args.flag, by,
                                                    args.reason),
                     "answer": lambda: owner.answer(book, policies, production, args.flag,
                                                    args.answer, by, args.reason),
                     }[args.verb]()
            if args.json:
                ui.json({"flag": args.flag, "verb": args.verb, "by": by,
                         **state.model_dump(mode="json", exclude_none=True)})
            else:
                last = state.history[-1]
                ui.out.print(f"{args.flag}: {args.verb} by {by} at {last.at:%Y-%m-%d %H:%M} "
                             f"recorded in {book.path}", markup=False)
            return 0
    except (owner.UnknownFlag, owner.NotPossible, OwnerFileError) as exc:
        raise UserError(f"opsloop rollouts {args.verb} {args.flag}: {exc}") from None
    finally:
        production.close()
        if loop is not None:
            loop.close()
    record, case = change.record, change.record.actions[0]
    if args.json:
        ui.json({"flag": args.flag, "verb": args.verb, "by": by, "record": record.id,
                 "status": record.status.value, "waiting": change.waiting,
                 "decision": case.decision.model_dump(mode="json") if case.decision else None,
                 "approval": case.approval.model_dump(mode="json") if case.approval else None,
                 "result": case.result.model_dump(mode="json") if case.result else None})
        return 0
    decided = f"{case.decision.outcome} ({case.decision.rule})" if case.decision else "?"
    result = (f"{case.result.status.value}: {case.result.detail}" if case.result
              else "not run")
    ui.out.print(f"{args.flag}: {case.action.describe()} → {record.id} {record.status.value}"
                 f" · decided {decided} · {result}", markup=False)
    if change.waiting:
        ui.out.print(f"waits for a human: `opsloop approve {change.waiting}` "
                     f"(`opsloop approvals` lists it)", markup=False)
    return 0
