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
    policies = _policies(settings)
    rows: list[dict[str, Any]] = []
    for f in sorted(_flags(args, settings), key=lambda f: (f.service, f.key)):
        managed = policies.rollouts.flags.get(f.key)
        plan = policies.rollouts.plan_for(f.key)
        nxt = next((s for s in plan.steps if s > f.rollout_percent), None) if plan else None
        rows.append({"key": f.key, "service": f.service, "enabled": f.enabled,
                     "percent": f.rollout_percent, "owner": f.owner or "",
                     "updated_at": f.updated_at.isoformat(), "managed": managed is not None,
                     "steps": plan.steps if plan else None, "next_step": nxt,
                     "advances": str(plan.advances) if plan else None})
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
    from opsloop.scheduled.agents.rollouts import decide, observe_flag

    policies = _policies(settings)
    plan = policies.rollouts.plan_for(args.flag)
    if plan is None:
        managed = ", ".join(sorted(policies.rollouts.flags)) or "none"
        raise UserError(f"rollouts.yaml does not manage {args.flag!r} (managed: {managed}); "
                        f"add it under flags: in {settings.policies_dir / 'rollouts.yaml'}")
    production = _production(args, settings)
    try:
        row = observe_flag(args.flag, policies, production, production.now())
    finally:
        production.close()
    if row.get("missing"):
        raise UserError(f"{row['service']} has no flag {args.flag!r} in this production "
                        f"(rollouts.yaml:flags.{args.flag}.service)")
    decision = decide(row, plan)
    row["decision"] = vars(decision)
    if args.json:
        ui.json(row)
        return 0
    analysis = row["analysis"]
    ui.out.print(f"{args.flag} on {row['service']}: "
                 f"{'enabled' if row['enabled'] else 'DISABLED'} at {row['percent']:g}% "
                 f"for {row['elapsed_minutes']} min (steps {plan.steps}, interval "
                 f"{plan.interval} min, advances {plan.advances})", markup=False)
    ui.out.print(f"analysis: {analysis['phase']} — {analysis['reason']}", markup=False)
    ui.out.print(f"error budget: {row['budget']['state']} — {row['budget']['reason']}",
                 markup=False)
    ui.out.print(f"decision: {decision.action} [{decision.rule}] {decision.reason}",
                 markup=False)
    return 0
