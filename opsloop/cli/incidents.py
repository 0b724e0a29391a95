"""`opsloop incidents` and `opsloop show ID`: what happened, from the incident store."""

from __future__ import annotations

import argparse
from typing import Any

from opsloop.cli.render import Ui
from opsloop.models import Incident, IncidentStatus
from opsloop.models.people import PeopleState, PeopleVerb
from opsloop.settings import Settings
from opsloop.store import IncidentStore


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("incidents", parents=[common], help="list incidents")
    p.add_argument("--status", choices=[s.value for s in IncidentStatus],
                   help="only incidents with this status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=list_incidents)
    s = sub.add_parser("show", parents=[common], help="show one incident in full")
    s.add_argument("id", metavar="ID")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=show)


def _store(settings: Settings) -> IncidentStore:
    return IncidentStore(settings.state_dir / "opsloop.db")


def list_incidents(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    store = _store(settings)
    problems: list[str] = []
    try:
        found = store.incidents(problems, status=args.status or None)
        people = store.people.states([i.id for i in found])
    finally:
        store.close()
    for problem in problems:  # one bad record is named, never fatal to the listing
        ui.err.print(f"warning: {problem}", markup=False, style="yellow")
    if args.json:
        ui.json([{**_brief(i), "people": _who(people[i.id])} for i in found])
        return 0
    ui.table(
        "Incidents",
        ["id", "opened", "sev", "status", "people", "services", "root cause"],
        [
            [
                i.id,
                f"{i.opened_at:%Y-%m-%d %H:%M}",
                i.severity.value if i.severity else "-",
                i.status.value,
                _who(people[i.id]) or "-",
                ", ".join(i.services),
                i.root_cause.category if i.root_cause and not i.novel else "novel/unknown",
            ]
            for i in found
        ],
    )
    return 0


def _who(p: PeopleState) -> str:
    """`acknowledged · ray` / `resolved · ana`; empty when no person has acted."""
    if not any(e.verb is not PeopleVerb.REPAGE for e in p.events):
        return ""
    name = p.resolved_by if p.state == "resolved" else (p.assignee or p.acknowledged_by)
    driven = f" · driven by {p.taken_over_by}" if p.taken_over_by else ""
    return f"{p.state}{' · ' + name if name else ''}{driven}"


def _brief(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "title": i.title,
        "opened_at": i.opened_at.isoformat(),
        "severity": i.severity.value if i.severity else None,
        "status": i.status.value,
        "services": i.services,
        "root_cause": i.root_cause.category if i.root_cause and not i.novel else None,
        "environment": i.environment,
    }


def show(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    store = _store(settings)
    try:
        incident = store.get_incident(args.id)
        audit = store.audit_log(incident.id)
        people = store.people.state(incident.id)
    finally:
        store.close()
    # The incident's environment reference is opaque (it reaches the model); where it came
    # from is kept beside the saved environments, for people.
    from opsloop.environments import origin_of

    origin = origin_of(incident.environment, settings)
    if args.json:
        ui.json({"incident": incident, "audit": audit, "people": people,
                 "origin": origin.model_dump(exclude_none=True) if origin else None})
        return 0
    out = ui.out
    out.print(f"{incident.id}  {incident.title}", markup=False, style="bold")
    out.print(
        f"status {incident.status.value} · severity "
        f"{incident.severity.value if incident.severity else '-'} ({incident.severity_rule})"
        f" · environment {incident.environment}"
        + (f" ({origin.describe()})" if origin else ""),
        markup=False,
    )
    if incident.root_cause:
        rc = incident.root_cause
        out.print(
            f"root cause: {rc.cause} [{rc.category}, {rc.confidence:.0%}, runbook {rc.runbook}]",
            markup=False,
        )
        ui.table(
            "Evidence",
            ["check", "observed", "expected", "holds"],
            [[e.check, e.observed, e.expectation, str(e.holds)] for e in rc.evidence],
        )
    ui.table(
        "Actions (the id is the approval id when a human is asked)",
        ["id", "action", "decision", "rule", "result"],
        [
            [
                c.id,
                c.action.describe(),
                c.decision.outcome.value if c.decision else "-",
                c.decision.rule if c.decision else "-",
                c.result.status.value if c.result else "-",
            ]
            for c in incident.actions
        ],
    )
    for c in incident.actions:
        if c.awaits_human:
            out.print(f"waiting for a human: opsloop approve {c.id} | opsloop reject {c.id} "
                      "--reason TEXT | opsloop modify " + c.id + " --set KEY=VALUE",
                      markup=False, soft_wrap=True)
    approvals = [c.approval for c in incident.actions if c.approval is not None]
    if approvals:
        ui.table(
            "Approvals",
            ["request", "verdict", "by", "at", "reason"],
            [
                [a.request_id, a.verdict.value, a.by, f"{a.at:%Y-%m-%d %H:%M:%S}", a.reason]
                for a in approvals
            ],
        )
    if people.events:
        ui.table(
            f"People: {people.state}" + (f" · owner {people.assignee}" if people.assignee else "")
            + (f" · driven by {people.taken_over_by} (automation stopped)"
               if people.taken_over_by else ""),
            ["at (UTC)", "who", "did", "detail"],
            [[f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.verb.past, e.detail]
             for e in people.events],
        )
    if incident.verification:
        v = incident.verification
        ui.table(
            f"Verification after {v.window_minutes} min: "
            f"{'passed' if v.passed else 'FAILED'}" + (" (rolled back)" if v.rolled_back else ""),
            ["check", "service", "observed", "threshold", "ok"],
            [
                [c.name, c.service, f"{c.observed:.4g}", f"{c.threshold:.4g}", str(c.ok)]
                for c in incident.verification_checks
            ],
        )
    ui.table(
        "Timeline",
        ["at", "event", "message"],
        [[f"{e.at:%H:%M}", e.kind, e.message] for e in incident.timeline],
    )
    if incident.usage.calls:
        usage = [*incident.usage.by_specialist.items(), ("total", incident.usage.total)]
        ui.table(
            "Model usage",
            ["who", "calls", "tokens in", "tokens out", "latency", "retries", "failed"],
            [
                [who, str(t.calls), str(t.input_tokens), str(t.output_tokens),
                 f"{t.latency_ms / 1000:.2f}s", str(t.retries), str(t.failed)]
                for who, t in usage
            ],
        )
    for label, value in (
        ("postmortem", incident.postmortem_path),
        ("signals", ", ".join(incident.signal_paths)),
    ):
        if value:
            out.print(f"{label}: {value}", markup=False)
    out.print(f"audit records: {len(audit)} (`--json` shows them)", markup=False)
    return 0
