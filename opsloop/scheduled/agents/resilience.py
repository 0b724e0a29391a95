"""The resilience agent: proposes the GameDay that is most overdue, through the change path.

It reads the experiments folder and the GameDay reports kept so far, and proposes
`run_chaos_experiment` for the experiment whose last run is oldest (never run: first), once
resilience.yaml's `min_interval` has passed for it. It never decides whether the start is
safe: the guardrails check resilience.yaml (blast radius, hours, open SEV1-2, steady state,
error budget) and refuse what breaks it; approval, the run itself (the act step, Chaos
Toolkit against this production) and verification follow like any change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from opsloop.chaos.actuator import RUN_EXPERIMENT
from opsloop.chaos.experiments import load_folder
from opsloop.chaos.gameday import history
from opsloop.models import RemediationAction, RemediationProposal
from opsloop.scheduled.base import AgentContext, Analysis, Finding

NAME = "resilience"


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
        return {"experiments": [{"name": e.name, "title": e.title,
                                 "services": list(e.blast_radius.services),
                                 "last_run": last.get(e.name)} for e in experiments],
                "invalid": [str(e) for e in errors] + problems}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        interval = timedelta(minutes=ctx.policies.resilience.min_interval)
        findings = [Finding(kind="invalid_experiment", subject="experiments", summary=problem,
                            level="warning") for problem in observed.get("invalid", [])]
        due = []
        for e in observed.get("experiments", []):
            last = _parsed(e.get("last_run"))
            if last is None or ctx.now - last >= interval:
                due.append((last is not None, last or ctx.now, e))
        if not due:
            return Analysis(summary="no GameDay is due", findings=findings)
        due.sort(key=lambda d: (d[0], d[1], d[2]["name"]))
        _, _, chosen = due[0]
        name = str(chosen["name"])
        when = chosen.get("last_run") or "never"
        action = RemediationAction(id="gameday-1", type=RUN_EXPERIMENT,
                                   service=str(chosen["services"][0]),
                                   params={"experiment": name},
                                   reason=f"GameDay {name} is due (last run: {when})")
        proposal = RemediationProposal(
            action=action, specialist=NAME, hypothesis_id=f"{NAME}:due:{name}", confidence=1.0,
            rationale=f"{chosen['title']}: last run {when}; runs are spaced "
                      f"{ctx.policies.resilience.min_interval} min apart by resilience.yaml")
        return Analysis(summary=f"GameDay {name} is due", findings=findings,
                        proposals=[proposal])


def _parsed(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None
