"""`opsloop ack|assign|note|takeover|resolve|reopen`: people's verbs on an incident, the same
path the API and the console take (checked, audited, told to the page's backends)."""

from __future__ import annotations

import argparse
from typing import Any

from opsloop.api.auth import Role
from opsloop.cli.identity import identity
from opsloop.cli.render import Ui, UserError
from opsloop.models.people import PeopleRefused, PeopleVerb
from opsloop.settings import Settings
from opsloop.store import StoreError

VERBS: dict[str, tuple[PeopleVerb, str]] = {
    "ack": (PeopleVerb.ACKNOWLEDGE, "acknowledge an incident: you have it (stops re-paging)"),
    "assign": (PeopleVerb.ASSIGN, "assign an incident to a person"),
    "note": (PeopleVerb.NOTE, "add a note to an incident's timeline"),
    "takeover": (PeopleVerb.TAKE_OVER, "take an incident over: the loop runs nothing more "
                                       "without a human's yes, and reverts nothing"),
    "resolve": (PeopleVerb.RESOLVE, "resolve an incident (refused while approvals wait)"),
    "reopen": (PeopleVerb.REOPEN, "reopen a resolved incident"),
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    for command, (verb, help_text) in VERBS.items():
        p = sub.add_parser(command, parents=[common], help=help_text)
        p.add_argument("id", metavar="INCIDENT", help="incident id, e.g. INC-0001")
        if verb is PeopleVerb.ASSIGN:
            p.add_argument("detail", metavar="PERSON", help="who owns it from now")
        elif verb is PeopleVerb.NOTE:
            p.add_argument("detail", metavar="TEXT", help="the note")
        else:
            p.add_argument("--reason", dest="detail", default="", help="why (recorded)")
        p.add_argument("--by", default=None, help="who (default: OPSLOOP_USER or login; "
                                                  "checked when a users file is configured)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=apply, verb=verb)


def apply(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    who = identity(settings, args.by, Role.APPROVE)
    from opsloop.graph.people import apply_verb  # langgraph: only when run
    from opsloop.graph.runner import OperateLoop

    loop = OperateLoop(settings)
    try:
        done = apply_verb(loop.store, loop.notifier, loop.policies, args.id, args.verb, who,
                          args.detail, settings.warrooms_dir)
        state = loop.store.people.state(args.id)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    except PeopleRefused as exc:
        raise UserError(f"{args.id}: cannot {args.verb.value.replace('_', ' ')}: {exc}"
                        ) from None
    finally:
        loop.close()
    if args.json:
        ui.json({"event": done, "people": state.model_dump(mode="json", exclude={"events"})})
        return 0
    what = f" {done.detail!r}" if done.verb in (PeopleVerb.ASSIGN, PeopleVerb.NOTE) else ""
    ui.out.print(f"{args.id} {done.verb.past}{what} by {who} · now {state.state}"
                 + (f" · owner {state.assignee}" if state.assignee else "")
                 + (f" · driven by {state.taken_over_by}" if state.taken_over_by else ""),
                 markup=False)
    return 0
