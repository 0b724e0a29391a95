"""`opsloop cost planned add|list|remove`: planned activity the cost agent will not raise.

A mark names a service (optionally a region and a usage type, else all of them), a from..to
window and why; who and when are recorded with it, in state/cost-feedback.json, the same
marks an answered anomaly leaves (opsloop.scheduled.agents.cost_planned).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("cost", parents=[common], help="cost: planned activity the cost agent "
                                                      "does not raise")
    nouns = p.add_subparsers(dest="cost_command", metavar="NOUN", required=True)
    planned = nouns.add_parser("planned", parents=[common],
                               help="planned activity: add, list, remove")
    verbs = planned.add_subparsers(dest="planned_command", metavar="VERB", required=True)
    add = verbs.add_parser("add", parents=[common],
                           help="mark spend as planned from --from to --to")
    add.add_argument("--service", required=True)
    add.add_argument("--region", default=None, help="only this region (default: all)")
    add.add_argument("--usage-type", default=None, help="only this usage type (default: all)")
    add.add_argument("--from", dest="start", required=True, metavar="TIME",
                     help="ISO 8601 with a time zone, e.g. 2026-11-02T10:00:00Z")
    add.add_argument("--to", dest="end", required=True, metavar="TIME")
    add.add_argument("--reason", required=True, help="why the spend is expected")
    add.add_argument("--by", default=None, help="who marks it (default: OPSLOOP_USER or login)")
    add.add_argument("--environment", metavar="REF", default=None,
                     help="production (sim:<id>, remote:...): check the service exists there")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=add_planned)
    ls = verbs.add_parser("list", parents=[common], help="every planned-activity mark")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=list_planned)
    rm = verbs.add_parser("remove", parents=[common], help="remove a mark by its id")
    rm.add_argument("id", metavar="ID")
    rm.add_argument("--json", action="store_true")
    rm.set_defaults(handler=remove_planned)


def parse_time(flag: str, value: str) -> datetime:
    """A time given on the command line: ISO 8601 with a time zone."""
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{flag} {value!r}: not an ISO 8601 time (e.g. "
                        f"2026-11-02T10:00:00Z)") from None
    if at.tzinfo is None:
        raise UserError(f"{flag} {value!r}: give a time zone (e.g. 2026-11-02T10:00:00Z)")
    return at.astimezone(UTC)


def _path(settings: Settings) -> Any:
    from opsloop.scheduled.agents.cost import feedback_path

    return feedback_path(settings)


def _services(ref: str | None, settings: Settings) -> list[str] | None:
    if ref is None:
        return None
    from opsloop.environments import open_environment

    production = open_environment(ref, settings)
    try:
        return [s.name for s in production.services()]
    finally:
        production.close()


def add_planned(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.scheduled.agents import cost_planned

    start, end = parse_time("--from", args.start), parse_time("--to", args.end)
    try:
        mark = cost_planned.add_planned(
            _path(settings), service=args.service, region=args.region,
            usage_type=args.usage_type, start=start, end=end, why=args.reason,
            by=args.by or settings.user, at=datetime.now(UTC),
            known_services=_services(args.environment, settings))
    except cost_planned.PlannedError as exc:
        raise UserError(f"planned add: {exc}") from None
    if args.json:
        ui.json(mark)
        return 0
    ui.out.print(f"{mark['id']}: {_what(mark)} planned {mark['start'][:16]} to "
                 f"{mark['end'][:16]} by {mark['by']} — {mark['why']} (recorded in "
                 f"{_path(settings)})", markup=False)
    return 0


def list_planned(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.scheduled.agents import cost_planned

    try:
        marks = cost_planned.list_planned(_path(settings))
    except cost_planned.PlannedError as exc:
        raise UserError(f"planned list: {exc}") from None
    if args.json:
        ui.json(marks)
        return 0
    ui.table("Planned activity", ["id", "service", "region", "usage type", "from", "to", "by",
                                  "recorded", "reason"],
             [[m["id"], m.get("service") or "-", m.get("region") or "all",
               m.get("usage_type") or "all", str(m.get("start", ""))[:16],
               str(m.get("end") or "(anomaly's cover)")[:16], m.get("by", ""),
               str(m.get("at", ""))[:16], m.get("why", "")] for m in marks])
    return 0


def remove_planned(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.scheduled.agents import cost_planned

    try:
        mark = cost_planned.remove_planned(_path(settings), args.id)
    except (cost_planned.UnknownMark, cost_planned.PlannedError) as exc:
        raise UserError(f"planned remove: {exc}") from None
    if args.json:
        ui.json(mark)
        return 0
    ui.out.print(f"removed {args.id}: {_what(mark)} ({mark.get('why', '')})", markup=False)
    return 0


def _what(mark: dict[str, Any]) -> str:
    return (f"{mark.get('service')} (region {mark.get('region') or 'all'}, usage type "
            f"{mark.get('usage_type') or 'all'})")
