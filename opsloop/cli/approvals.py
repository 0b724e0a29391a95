"""`opsloop approvals|approve|reject|modify`: the human side of the approval interrupt."""

from __future__ import annotations

import argparse
from typing import Any

from opsloop.api.auth import Role
from opsloop.cli.identity import identity
from opsloop.cli.render import Ui, UserError
from opsloop.models import Verdict
from opsloop.settings import Settings
from opsloop.store import IncidentStore


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("approvals", parents=[common], help="list actions waiting for a human")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=list_approvals)
    for verb, help_text in (
        ("approve", "approve a waiting action and run it"),
        ("reject", "reject a waiting action"),
        ("modify", "change a waiting action's parameters, then run it"),
    ):
        v = sub.add_parser(verb, parents=[common], help=help_text)
        v.add_argument("id", metavar="ID", help="approval id from `opsloop approvals`")
        v.add_argument(
            "--reason",
            default="",
            required=verb == "reject",
            help="why (recorded in the audit log)",
        )
        v.add_argument("--by", default=None, help="who decides (default: OPSLOOP_USER or login; "
                                                  "checked when a users file is configured)")
        if verb == "modify":
            v.add_argument(
                "--set",
                action="append",
                required=True,
                metavar="KEY=VALUE",
                dest="changes",
                help="parameter to change (repeatable)",
            )
        v.add_argument("--json", action="store_true")
        v.set_defaults(handler=decide, verdict=Verdict(verb))
    r = sub.add_parser("resume", parents=[common],
                       help="continue an incident whose run stopped between checkpoints")
    r.add_argument("id", metavar="ID", nargs="?", help="incident id (or --all)")
    r.add_argument("--all", action="store_true",
                   help="every incident a dead run left open or unrecorded")
    r.add_argument("--by", default=None, help="who resumes (default: OPSLOOP_USER or login)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=resume)


def list_approvals(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    store = IncidentStore(settings.state_dir / "opsloop.db")
    try:
        waiting = store.pending()
    finally:
        store.close()
    if args.json:
        ui.json(waiting)
        return 0
    ui.table(
        "Waiting for approval",
        ["id", "incident", "sev", "action", "rule", "why"],
        [
            [r.id, r.incident_id, r.severity, r.action.describe(), r.decision.rule, r.summary]
            for r in waiting
        ],
    )
    if not waiting:
        ui.out.print("nothing waits for approval")
    return 0


def parse_changes(items: list[str]) -> dict[str, object]:
    """`key=value` pairs as written; policy reads each value as its parameter's type."""
    changes: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set replicas=12")
        changes[key.strip()] = raw
    return changes


def decide(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    changes = parse_changes(args.changes) if args.verdict is Verdict.MODIFY else {}
    who = identity(settings, args.by, Role.APPROVE)
    from opsloop.graph.runner import InvalidChange, OperateLoop  # langgraph: only when run

    loop = OperateLoop(settings)
    try:
        incident = loop.decide(args.id, args.verdict, who, args.reason, changes)
    except InvalidChange as exc:  # nothing recorded: the approval still waits
        ui.err.print(f"opsloop modify: {exc}; approval {args.id} still waits", markup=False,
                     style="red")
        return 2
    finally:
        loop.close()
    if args.json:
        ui.json(incident)
        return 0
    result = ", ".join(f"{c.result.action}: {c.result.status.value}" for c in incident.actions
                       if c.result is not None) or "no action ran"
    verified = ""
    if incident.verification:
        verified = " · verified" if incident.verification.passed else " · verification FAILED"
    ui.out.print(
        f"{args.id} {args.verdict.past} by {who} → "
        f"{incident.id} {incident.status.value} · {result}{verified}",
        markup=False,
    )
    return 0


def resume(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    if bool(args.id) == bool(args.all):
        raise UserError("resume takes an incident id or --all")
    who = identity(settings, args.by, Role.APPROVE)
    from opsloop.graph.runner import OperateLoop  # langgraph + chromadb: only when run

    loop = OperateLoop(settings)
    try:
        if args.all:
            outcomes = loop.recover(who)
        else:
            incident = loop.resume(args.id, who)
            outcomes = [(incident.id, incident.status.value)]
    finally:
        loop.close()
    if args.json:
        ui.json([{"incident": i, "outcome": o} for i, o in outcomes])
        return 0
    for incident_id, outcome in outcomes:
        ui.out.print(f"{incident_id} resumed → {outcome}", markup=False)
    if args.all and not outcomes:
        ui.out.print("nothing to resume")
    return 1 if any(o.startswith("failed") for _, o in outcomes) else 0
