"""The facts resilience.yaml is checked against, measured by code before a GameDay starts.

Shared by the guardrails (a resilience agent's proposal) and `opsloop chaos run`: the
experiment's declared blast radius, the targets' replicas and error budget left, open
incidents, earlier GameDays (from their reports), and the steady state measured now with
the experiment's own probes against the target.
"""

from __future__ import annotations

from datetime import UTC, datetime

from opsloop.chaos.engine import steady_state
from opsloop.chaos.experiments import ExperimentError, find
from opsloop.chaos.gameday import history
from opsloop.models import IncidentStatus, Severity
from opsloop.policy import Policies
from opsloop.policy.health import budget_state
from opsloop.policy.resilience import ResilienceFacts
from opsloop.settings import Settings
from opsloop.store import IncidentStore
from opsloop.tools.protocols import Telemetry

_CLOSED = {IncidentStatus.MITIGATED, IncidentStatus.REJECTED, IncidentStatus.RESOLVED}


def resilience_facts(name: str, *, now: datetime, settings: Settings, policies: Policies,
                     telemetry: Telemetry, store: IncidentStore, target_url: str | None,
                     excluding: str | None = None) -> ResilienceFacts:
    """Facts for starting experiment `name` now against `target_url` (None: no HTTP target,
    so the steady state cannot be measured and the start is refused). `excluding`: the
    change record asking for the start, which is not an incident in the way."""
    try:
        experiment = find(settings.experiments_dir, name)
    except ExperimentError as exc:
        return ResilienceFacts(experiment=name, now=now, blast_radius=None, problem=str(exc))
    radius = experiment.blast_radius
    replicas = {s.name: s.replicas for s in telemetry.services() if s.name in radius.services}
    budgets = {s: budget_state(s, policies, telemetry).remaining for s in replicas}
    open_incidents = tuple((i, Severity(sev)) for i, sev in store.severities_not_in(_CLOSED)
                           if i != excluding and not i.startswith("run-"))
    reports, _ = history(settings.work_dir / "reports")
    starts = [(r.experiment, _parsed(r.started_at)) for r in reports]
    today = now.astimezone(UTC).date()
    if target_url is None:
        met, detail = None, "no HTTP target to probe"
    else:
        state = steady_state(experiment, target_url)
        met = bool(state["met"])
        detail = "; ".join(f"{c['probe']} read {c['value'] if c['error'] is None else c['error']}"
                           for c in state["probes"] if not c["ok"])
    return ResilienceFacts(
        experiment=name, now=now, blast_radius=radius, replicas=replicas,
        earlier_runs=tuple(t for e, t in starts if e == name and t is not None),
        runs_today=sum(1 for _, t in starts if t is not None and t.astimezone(UTC).date() == today),
        open_incidents=open_incidents, steady_state_met=met, steady_state_detail=detail,
        budget_left=budgets)


def _parsed(stamp: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
