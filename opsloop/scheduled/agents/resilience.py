"""The resilience agent: proposes the GameDay that is most overdue, through the change path.

It reads the experiments folder and the GameDay reports kept so far, reports what each
experiment's last run showed (and a start policy refused, from its own change records), and
proposes
`run_chaos_experiment` for the experiment whose last run is oldest (never run: first), once
resilience.yaml's `min_interval` has passed for it. It never decides whether the start is
safe: the guardrails check resilience.yaml (blast radius, hours, open SEV1-2, steady state,
error budget) and refuse what breaks it; approval, the run itself (the act step, Chaos
Toolkit against this production) and verification follow like any change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from opsloop.agents.signals import signal_id, write_signals
from opsloop.chaos.actuator import RUN_EXPERIMENT
from opsloop.chaos.experiments import load_folder
from opsloop.chaos.gameday import history
from opsloop.chaos.report import GameDayReport
from opsloop.models import DecisionOutcome, RemediationAction, RemediationProposal, Signal
from opsloop.scheduled.base import AgentContext, Analysis, Finding

NAME = "resilience"
MAX_REFUSALS = 20  # the most recent refused starts reported


class Resilience:
    name = NAME
    purpose = ("Schedule resilience GameDays: propose the most overdue Chaos Toolkit "
               "experiment; resilience.yaml decides whether it may start now.")
    tools = ("experiments", "gameday_history")

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        experiments, errors = load_folder(ctx.settings.experiments_dir)
        reports, problems = history(ctx.reports_dir)
        last: dict[str, str] = {}
        for report in reports:  # oldest first: the last one kept wins
            last[report.experiment] = report.started_at
        latest = {r.experiment: r for r in reports}
        refused = [{"experiment": str(c.action.params.get("experiment", "")),
                    "rule": c.decision.rule, "reasons": c.decision.reasons, "record": r.id}
                   for r in ctx.store.incidents(group_key=f"agent:{NAME}")
                   for c in r.actions if c.decision is not None
                   and c.decision.outcome is DecisionOutcome.DENY]
        return {"experiments": [{"name": e.name, "title": e.title,
                                 "services": list(e.blast_radius.services),
                                 "last_run": last.get(e.name)} for e in experiments],
                "last_reports": [_summary(r) for r in latest.values()],
                "refused": refused[-MAX_REFUSALS:],
                "invalid": [str(e) for e in errors] + problems}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        interval = timedelta(minutes=ctx.policies.resilience.min_interval)
        findings = [Finding(kind="invalid_experiment", subject="experiments", summary=problem,
                            level="warning") for problem in observed.get("invalid", [])]
        reports = observed.get("last_reports", [])
        findings += [_report_finding(r) for r in reports]
        # What surprised a GameDay goes to the Discover loop: one signal per run, rewritten
        # (never added twice) on every later run that still sees it.
        surprised = [Signal(
            id=signal_id("gameday_surprise", str(r["experiment"]), str(r["run_id"])),
            kind="gameday_surprise", title=f"GameDay {r['experiment']}: {r['outcome']}",
            evidence=list(r["surprises"]),
            suggested_mission=f"Fix what {r['experiment']} showed (or write its runbook), "
                              "then run it again",
            created_at=ctx.now) for r in reports if r["surprises"]]
        written = write_signals(surprised, ctx.signals_dir) if surprised else []
        findings += [Finding(kind="gameday_refused", subject=r["experiment"], level="warning",
                             summary=f"{r['experiment']} was not started: {r['rule']}",
                             evidence=list(r["reasons"]), data={"rule": r["rule"],
                                                                "record": r["record"]})
                     for r in observed.get("refused", [])]
        due = []
        for e in observed.get("experiments", []):
            last = _parsed(e.get("last_run"))
            if last is None or ctx.now - last >= interval:
                due.append((last is not None, last or ctx.now, e))
        if not due:
            return Analysis(summary="no GameDay is due", findings=findings,
                            signals=[str(p) for p in written])
        due.sort(key=lambda d: (d[0], d[1], d[2]["name"]))
        _, _, chosen = due[0]
        name = str(chosen["name"])
        when = chosen.get("last_run") or "never"
        action = RemediationAction(id=f"{ctx.run_id}-gameday-{name}", type=RUN_EXPERIMENT,
                                   service=str(chosen["services"][0]),
                                   params={"experiment": name},
                                   reason=f"GameDay {name} is due (last run: {when})")
        proposal = RemediationProposal(
            action=action, specialist=NAME, hypothesis_id=f"{NAME}:due:{name}", confidence=1.0,
            rationale=f"{chosen['title']}: last run {when}; runs are spaced "
                      f"{ctx.policies.resilience.min_interval} min apart by resilience.yaml")
        return Analysis(summary=f"GameDay {name} is due", findings=findings,
                        proposals=[proposal], signals=[str(p) for p in written])


def _summary(report: GameDayReport) -> dict[str, Any]:
    return {"experiment": report.experiment, "run_id": report.run_id,
            "outcome": report.outcome, "score": report.score,
            "time_to_detect_minutes": report.time_to_detect_minutes,
            "opsloop_time_to_detect_minutes": report.opsloop_time_to_detect_minutes,
            "time_to_recover_minutes": report.time_to_recover_minutes,
            "recovered": report.recovered, "rollbacks_ok": report.rollbacks_ok,
            "surprises": report.surprises}


def _report_finding(r: dict[str, Any]) -> Finding:
    """What the experiment's last GameDay showed; a broken hypothesis or a failed recovery is
    for people to act on (a weakness, a runbook to write)."""
    level = ("info" if r["outcome"] == "held" and r["rollbacks_ok"] and r["recovered"]
             else "critical" if not (r["rollbacks_ok"] and r["recovered"]) else "warning")
    return Finding(kind=f"gameday_{r['outcome']}", subject=str(r["experiment"]), level=level,
                   summary=f"GameDay {r['run_id']}: {r['outcome']}, score {r['score']:.2f}",
                   evidence=list(r["surprises"]),
                   data={k: v for k, v in r.items() if k not in ("experiment", "surprises")})


def _parsed(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None
