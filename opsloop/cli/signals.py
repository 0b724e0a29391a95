"""`opsloop signals`: the improvement signals ranked by evidence, and people's decisions on
them (accept as a mission, decline, merge into another, reopen), each with who and why."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from opsloop.agents.signal_triage import (
    FiledSignal,
    SignalError,
    decide,
    find_signal,
    load_signals,
    rank,
)
from opsloop.agents.signals import SignalsLocked, SignalStatus
from opsloop.cli.render import Ui, UserError
from opsloop.models import Incident
from opsloop.settings import Settings
from opsloop.store import IncidentStore, StoreError

_DECISIONS = (
    ("accept", SignalStatus.ACCEPTED, "take a signal on as a mission (writes work/missions/ID.md)"),
    ("decline", SignalStatus.DECLINED, "decline a signal"),
    ("merge", SignalStatus.MERGED, "merge a duplicate signal into another (--into ID)"),
    ("reopen", SignalStatus.NEW, "reopen a declined or merged signal"),
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("signals", parents=[common],
                       help="improvement signals: ranked list, accept, decline, merge")
    _list_options(p, argparse.SUPPRESS)
    p.set_defaults(handler=list_signals, status=None, json=False)
    verbs = p.add_subparsers(dest="signals_command", metavar="VERB")
    ls = verbs.add_parser("list", parents=[common], help="signals ranked by evidence (default)")
    _list_options(ls, argparse.SUPPRESS)
    s = verbs.add_parser("show", parents=[common], help="one signal, its evidence and history")
    s.add_argument("id", metavar="ID", help="signal id (or a unique prefix of it)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=show)
    for verb, status, help_text in _DECISIONS:
        v = verbs.add_parser(verb, parents=[common], help=help_text)
        v.add_argument("id", metavar="ID", help="signal id (or a unique prefix of it)")
        if status is SignalStatus.MERGED:
            v.add_argument("--into", required=True, metavar="OTHER",
                           help="the signal this one duplicates")
        v.add_argument("--reason", required=True, help="why (kept in the signal's history)")
        v.add_argument("--by", default=None, help="who decides (default: OPSLOOP_USER or login)")
        v.add_argument("--json", action="store_true")
        v.set_defaults(handler=decide_signal, to=status)


def _list_options(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--status", choices=[s.value for s in SignalStatus], default=default,
                   help="only signals with this status (merged ones show under `--status "
                        "merged`)")
    p.add_argument("--json", action="store_true", default=default)


def _incidents(settings: Settings, ids: Iterable[str]) -> dict[str, Incident]:
    """The stored incidents among `ids`; an id the store does not have is left out."""
    path = settings.state_dir / "opsloop.db"
    if not path.exists():
        return {}
    store = IncidentStore(path)
    found: dict[str, Incident] = {}
    try:
        for incident_id in dict.fromkeys(ids):
            try:
                found[incident_id] = store.get_incident(incident_id)
            except StoreError:
                continue  # the score counts it without detail and says so
    finally:
        store.close()
    return found


def _load(settings: Settings, ui: Ui) -> tuple[list[FiledSignal], dict[str, Incident]]:
    problems: list[str] = []
    filed = load_signals(settings.signals_dir, problems)
    for problem in problems:  # one bad file is named, never fatal to the rest
        ui.err.print(f"warning: {problem}", markup=False, style="yellow")
    return filed, _incidents(settings, (i for f in filed for i in f.record.incidents))


def _now() -> datetime:
    return datetime.now(UTC)


def list_signals(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    filed, incidents = _load(settings, ui)
    rows = rank(filed, incidents, _now())
    if args.status == SignalStatus.MERGED.value:  # merged signals are ranked as their target
        merged = [_merged_row(f) for f in filed if f.record.status is SignalStatus.MERGED]
        if args.json:
            ui.json(merged)
            return 0
        ui.table("Merged signals", ["id", "into", "kind", "title"],
                 [[m["id"], m["merged_into"], m["kind"], m["title"]] for m in merged])
        return 0
    if args.status:
        rows = [r for r in rows if r.status.value == args.status]
    if args.json:
        ui.json(rows)
        return 0
    ui.table(
        "Signals, highest score first" + (f" ({args.status})" if args.status else ""),
        ["id", "status", "score", "kind", "subject", "evidence", "age"],
        [[r.id, r.status.value + (f" → {r.duplicate_of}?" if r.duplicate_of else ""),
          f"{r.score.score:g}", r.kind, r.subject,
          f"{len(r.score.incidents)} inc" + (f" (+{len(r.merged_in)} merged)"
                                             if r.merged_in else ""),
          f"{r.age_days:g} d"] for r in rows],
    )
    if not rows:
        ui.out.print("no signals" + (f" with status {args.status}" if args.status else ""))
    elif any(r.duplicate_of for r in rows):
        ui.err.print("→ ID? marks an exact duplicate: a candidate for `opsloop signals merge`",
                     markup=False)
    return 0


def _merged_row(f: FiledSignal) -> dict[str, Any]:
    r = f.record
    return {"id": r.id, "status": r.status.value, "merged_into": r.merged_into,
            "kind": r.kind, "title": r.title, "path": str(f.path)}


def show(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    filed, incidents = _load(settings, ui)
    try:
        found = find_signal(filed, args.id)
    except SignalError as exc:
        raise UserError(str(exc)) from None
    ranked = next((r for r in rank(filed, incidents, _now()) if r.id == found.record.id), None)
    if args.json:
        ui.json({"path": str(found.path), "record": found.record, "rank": ranked})
        return 0
    r = found.record
    ui.out.print(f"{r.id}  {r.status.value}"
                 + (f" into {r.merged_into}" if r.merged_into else "")
                 + f"  {r.kind}\n{r.title}\nfile: {found.path}", markup=False)
    if r.mission:
        ui.out.print(f"mission brief: {r.mission}", markup=False)
    if ranked is not None:
        ui.out.print("\nScore", markup=False)
        for line in ranked.score.explain():
            ui.out.print(f"  {line}", markup=False)
        if ranked.related:
            ui.out.print(f"  same group ({ranked.group}): {', '.join(ranked.related)}",
                         markup=False)
    ui.out.print("\nEvidence", markup=False)
    for line in r.evidence:
        ui.out.print(f"  - {line}", markup=False)
    ui.out.print(f"\nSuggested mission\n  {r.suggested_mission}", markup=False)
    if r.history:
        ui.out.print("\nHistory", markup=False)
        for c in r.history:
            ui.out.print(f"  {c.at:%Y-%m-%d %H:%M} {c.previous.value} → {c.status.value} by "
                         f"{c.by}" + (f" into {c.into}" if c.into else "") + f": {c.reason}",
                         markup=False)
    return 0


def decide_signal(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    to: SignalStatus = args.to
    _, incidents = _load(settings, ui)
    try:
        done = decide(settings.signals_dir, args.id, to, by=args.by or settings.user,
                      reason=args.reason, at=_now(), into=getattr(args, "into", None),
                      missions_dir=settings.work_dir / "missions", incidents=incidents)
    except (SignalError, SignalsLocked) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        ui.json({"path": str(done.path), "record": done.record})
        return 0
    r = done.record
    what = {SignalStatus.ACCEPTED: f"accepted; mission brief at {r.mission}",
            SignalStatus.DECLINED: "declined",
            SignalStatus.MERGED: f"merged into {r.merged_into}",
            SignalStatus.NEW: "reopened"}[to]
    ui.out.print(f"{r.id} {what} (by {r.history[-1].by})", markup=False)
    return 0
