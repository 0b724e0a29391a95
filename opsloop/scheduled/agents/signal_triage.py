"""The weekly operational-signal triage: the board an Outcome Owner brings to the meeting.

Observes every filed signal and the stored incidents they rest on; analyses them into
`work/reports/signals-<ISO week>.md` and `.json`: new signals ranked by evidence (the score
in `opsloop.agents.signal_triage`), exact duplicates marked as candidates to merge, the
decisions people made in the week before the run, the mission briefs written, and declined
signals that have gathered new incidents since. One finding per top-ranked new signal.

The week is the ISO week of `due_at`; the decisions shown are those of the seven days before
it. A re-run for the same week overwrites the board. It never decides: statuses change only
through `opsloop signals accept|decline|merge|reopen`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.agents.markdown import atomic_write, fmt_time, inline, table
from opsloop.agents.signal_triage import FiledSignal, Ranked, load_signals, rank
from opsloop.agents.signals import SignalRecord, SignalStatus
from opsloop.models import Incident
from opsloop.scheduled.base import AgentContext, Analysis, Finding
from opsloop.store import StoreError

WEEK = timedelta(days=7)


def iso_week(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


class SignalTriage:
    name = "signal-triage"
    purpose = ("Rank the improvement signals by evidence (incidents, error budget, toil, "
               "customer impact), group near-duplicates, and put the week's triage board "
               "in front of the people who decide.")
    tools: tuple[str, ...] = ("signals", "incident_history")
    top = 5  # new signals that become findings

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        problems: list[str] = []
        filed = load_signals(ctx.signals_dir, problems)
        incidents: dict[str, Any] = {}
        for incident_id in dict.fromkeys(i for f in filed for i in f.record.incidents):
            try:
                incidents[incident_id] = ctx.store.get_incident(incident_id).model_dump(
                    mode="json")
            except StoreError:
                continue  # scored without detail, and the board says so
        return {"signals": [{"path": str(f.path), "record": f.record.model_dump(mode="json")}
                            for f in filed],
                "incidents": incidents, "problems": problems}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        filed = [FiledSignal(Path(s["path"]), SignalRecord.model_validate(s["record"]))
                 for s in observed.get("signals", [])]
        incidents = {k: Incident.model_validate(v)
                     for k, v in observed.get("incidents", {}).items()}
        rows = rank(filed, incidents, ctx.due_at)
        fresh = [r for r in rows if r.status is SignalStatus.NEW]
        since = ctx.due_at - WEEK
        decisions = [
            {"id": f.record.id, "title": f.record.title,
             **c.model_dump(mode="json", exclude_none=True)}
            for f in filed for c in f.record.history if since <= c.at < ctx.due_at]
        decisions.sort(key=lambda d: (d["at"], d["id"]))
        missions = [d["mission"] for d in decisions if d["status"] == "accepted" and
                    d.get("mission")]
        reconsider = [
            {"id": f.record.id, "title": f.record.title, "declined_at": last.at.isoformat(),
             "by": last.by, "incidents_then": last.incidents,
             "incidents_now": len(f.record.incidents)}
            for f in filed if f.record.status is SignalStatus.DECLINED and f.record.history
            for last in [f.record.history[-1]] if len(f.record.incidents) > last.incidents]
        board = {
            "week": iso_week(ctx.due_at), "from": since.isoformat(), "to": ctx.due_at.isoformat(),
            "new": [r.model_dump(mode="json") for r in fresh],
            "duplicates": [{"id": r.id, "duplicate_of": r.duplicate_of}
                           for r in fresh if r.duplicate_of],
            "decisions": decisions, "missions": missions, "reconsider": reconsider,
            "counts": {s.value: sum(f.record.status is s for f in filed) for s in SignalStatus},
            "problems": observed.get("problems", []),
        }
        reports = _write(ctx, board, fresh)
        findings = [_finding(r) for r in fresh[: self.top]]
        summary = (f"{len(fresh)} new signal(s) to triage, {len(decisions)} decision(s) and "
                   f"{len(missions)} mission(s) in the week to {ctx.due_at:%Y-%m-%d}")
        return Analysis(summary=summary, findings=findings, reports=reports)


def _finding(r: Ranked) -> Finding:
    return Finding(
        kind="signal_to_triage", subject=r.id, level="info",
        summary=f"{r.title} (score {r.score.score:g}, {len(r.score.incidents)} incident(s))",
        evidence=r.score.explain(),
        data={"kind": r.kind, "subject": r.subject, "score": r.score.score, "path": r.path,
              "related": r.related, "duplicate_of": r.duplicate_of})


def _write(ctx: AgentContext, board: dict[str, Any], fresh: list[Ranked]) -> list[str]:
    base = ctx.reports_dir / f"signals-{board['week']}"
    md = atomic_write(base.with_suffix(".md"), _markdown(board, fresh))
    js = atomic_write(base.with_suffix(".json"), json.dumps(board, indent=2) + "\n")
    return [str(md), str(js)]


def _budget(r: Ranked) -> str:
    return "unknown" if r.score.budget_burned is None else f"{r.score.budget_burned:.1%} (est.)"


def _markdown(board: dict[str, Any], fresh: list[Ranked]) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in board["counts"].items())
    out = [
        f"# Signal triage, {board['week']}", "",
        f"Week to {board['to'][:10]}. Signals on file: {counts}. Score = incidents + "
        "customer impact (severity x tier) + 20 x error budget burned + 2 x toil hours; "
        "budget burned and part of toil are estimated (`opsloop/agents/signal_triage.py`). "
        "Decide with `opsloop signals accept|decline|merge ID --reason ...`.", "",
        "## New signals, highest score first", "",
    ]
    if fresh:
        out.append(table(
            ["rank", "id", "score", "kind", "subject", "incidents", "toil h", "budget burned",
             "age (d)", "same group"],
            [[n, r.id, f"{r.score.score:g}", r.kind, r.subject, len(r.score.incidents),
              f"{r.score.toil_hours:g}", _budget(r), f"{r.age_days:g}",
              ", ".join(r.related) or "—"] for n, r in enumerate(fresh, 1)]))
    else:
        out.append("No new signals.")
    dupes = board["duplicates"]
    out += ["", "## Candidates to merge", ""]
    out += [f"- `{d['id']}` has the same kind and incidents as `{d['duplicate_of']}`: "
            f"`opsloop signals merge {d['id']} --into {d['duplicate_of']} --reason ...`"
            for d in dupes] or ["None: no exact duplicates."]
    out += ["", "## Decisions this week", ""]
    if board["decisions"]:
        out.append(table(["when", "id", "decision", "by", "why"], [
            [fmt_time(datetime.fromisoformat(d["at"])), d["id"],
             f"{d['previous']} → {d['status']}" + (f" into {d['into']}" if d.get("into") else ""),
             d["by"], d["reason"]] for d in board["decisions"]]))
    else:
        out.append("No decisions this week.")
    out += ["", "## Missions written", ""]
    out += [f"- {inline(m)}" for m in board["missions"]] or ["None this week."]
    if board["reconsider"]:
        out += ["", "## Declined, with new evidence since", ""]
        out += [f"- `{r['id']}` {inline(r['title'])}: declined by {inline(r['by'])} on "
                f"{r['declined_at'][:10]} with {r['incidents_then']} incident(s), now "
                f"{r['incidents_now']}" for r in board["reconsider"]]
    if board["problems"]:
        out += ["", "## Signal files that could not be read", ""]
        out += [f"- {inline(p, 400)}" for p in board["problems"]]
    return "\n".join(out) + "\n"
