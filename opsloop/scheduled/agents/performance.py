"""Performance (hourly): each service against its own baseline, and what changed it.

Per service, the last `lookback` of latency p50 and p99, error ratio and throughput, as
5-minute medians (`opsloop.regress.series`). The baseline is the part before the window;
change points are found over the whole span (`opsloop.regress.changepoints`: deterministic,
its method documented there and measured by `opsloop eval regressions`), and those inside
the window are this run's. A change the bad way past its metric's rule
(`opsloop.regress.regressions.RULES`) is a regression, attributed to the deploy, config or
flag change nearest before it on the service or anything it depends on
(`opsloop.regress.attribute`).

Every regression is a finding. One still holding after `persist_minutes` is filed as a
signal (one per service, metric and change: the next runs update it), and, past
`propose_at` and attributed to the service's own deploy that is still the running version,
becomes a proposal to roll that deploy back to its previous version, which the runner sends
through the incidents' guardrails -> approval -> act -> verify path like any other.

The thresholds are `POLICY` below, documented constants rather than a policies/ file:
policies/ has no section for this agent yet, and the guardrails, not this agent, decide
whether a proposed rollback runs (schedule.yaml `severity`, remediation.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsloop.agents.signals import signal_id, write_signals
from opsloop.models import (
    IncidentStatus,
    RemediationAction,
    RemediationProposal,
    ServiceInfo,
    Signal,
)
from opsloop.regress.attribute import (
    MAX_LAG,
    ProductionChange,
    from_deploys,
    from_flag_changes,
)
from opsloop.regress.baseline import baseline
from opsloop.regress.regressions import RULES, MetricChange, find_changes
from opsloop.regress.series import resample
from opsloop.scheduled.agents.performance_report import write_report
from opsloop.scheduled.base import AgentContext, Analysis, Finding

_ROLLBACK_KINDS = ("deploy", "config")  # a rollback undoes these; a flag is not a deploy
_ANY_VERSION = "*"


@dataclass(frozen=True)
class PerformancePolicy:
    """What the performance agent reads, and when a regression is filed or proposed on."""

    lookback_minutes: int = 24 * 60  # read per run: the baseline and the window
    window_minutes: int = 3 * 60  # changes this recent are this run's (hourly runs overlap)
    persist_minutes: int = 60  # a regression still holding after this is a signal
    # Relative change of the mean at which a persistent regression attributed to the
    # service's own deploy becomes a rollback proposal; metrics not listed never propose.
    propose_at: dict[str, float] = field(default_factory=lambda: {
        "latency_p50_ms": 0.05, "latency_p99_ms": 0.05, "error_ratio": 1.0})
    # The proposal's confidence: the deploy was the only change in the attribution span,
    # or it had rivals (below remediation.yaml's min_confidence 0.7, so a human decides).
    sole_suspect_confidence: float = 0.9
    with_rivals_confidence: float = 0.6


POLICY = PerformancePolicy()


class Performance:
    name = "performance"
    purpose = ("Keep per-service baselines of latency, error ratio and throughput; find "
               "regressions by change-point detection, attribute each to the deploy, config "
               "or flag change before it, and propose rolling back a deploy that caused one.")
    tools = ("metric_history", "deploys", "flag_changes", "service_catalog")

    def __init__(self, policy: PerformancePolicy = POLICY) -> None:
        self.policy = policy

    def observe(self, ctx: AgentContext) -> dict[str, Any]:
        lookback = self.policy.lookback_minutes
        services = ctx.telemetry.services()
        series: dict[str, dict[str, Any]] = {}
        for svc in services:
            for rule in RULES:
                try:
                    points = ctx.telemetry.metric(svc.name, rule.metric, lookback).points
                except KeyError:
                    continue
                times, values = resample((p.at, p.value) for p in points)
                series.setdefault(svc.name, {})[rule.metric] = {
                    "times": [t.isoformat() for t in times], "values": values}
        changes = [*from_deploys(ctx.telemetry.deploys(None, lookback)),
                   *from_flag_changes(ctx.telemetry.flag_changes(None, lookback))]
        return {"now": ctx.now.isoformat(),
                "since": (ctx.now - timedelta(minutes=self.policy.window_minutes)).isoformat(),
                "services": {s.name: {"version": s.version,
                                      "depends_on": _depends_on(s.name, services)}
                             for s in services},
                "series": series,
                "changes": [c.model_dump(mode="json") for c in changes]}

    def analyse(self, ctx: AgentContext, observed: dict[str, Any]) -> Analysis:
        since = datetime.fromisoformat(observed["since"]) if "since" in observed else ctx.now
        changes = [ProductionChange.model_validate(c) for c in observed.get("changes", [])]
        services: dict[str, Any] = observed.get("services", {})
        found: list[MetricChange] = []
        baselines: dict[str, dict[str, Any]] = {}
        for name, metrics in observed.get("series", {}).items():
            near = {name, *services.get(name, {}).get("depends_on", [])}
            suspects = [c for c in changes if c.service in near]
            for rule in RULES:
                data = metrics.get(rule.metric)
                if data is None:
                    continue
                times = [datetime.fromisoformat(t) for t in data["times"]]
                before = baseline([v for t, v in zip(times, data["values"], strict=True)
                                   if t < since])
                baselines.setdefault(name, {})[rule.metric] = before.to_dict() if before else None
                found += find_changes(name, rule, times, data["values"], suspects, since=since,
                                      persist_for=timedelta(minutes=self.policy.persist_minutes))
        regressions = [c for c in found if c.regression]
        proposals = self._proposals(ctx, regressions, services)
        proposed = {p.hypothesis_id for p in proposals}
        findings = [_finding(r, _hypothesis(r) in proposed) for r in regressions]
        signals = [_signal(r, ctx.now) for r in regressions if r.persistent]
        written = write_signals(signals, ctx.signals_dir) if signals else []
        headline = _headline(regressions, proposals, len(services))
        by_hypothesis = {p.hypothesis_id: p.action.describe() for p in proposals}
        marks = {i: by_hypothesis[_hypothesis(c)] for i, c in enumerate(found)
                 if c.regression and _hypothesis(c) in by_hypothesis}
        reports = write_report(ctx.reports_dir, ctx.due_at, observed, found, marks, baselines,
                               findings, proposals, headline)
        return Analysis(summary=headline, findings=findings, proposals=proposals,
                        reports=[str(p) for p in reports], signals=[str(p) for p in written])

    def _proposals(self, ctx: AgentContext, regressions: list[MetricChange],
                   services: dict[str, Any]) -> list[RemediationProposal]:
        """One rollback per deploy behind a persistent regression past `propose_at`, when
        that deploy is still running and no open change record already asks for it."""
        pending = _pending_rollbacks(ctx)
        made: dict[str, RemediationProposal] = {}
        for r in sorted(regressions, key=lambda r: -abs(r.point.change or 0.0)):
            a, threshold = r.attribution, self.policy.propose_at.get(r.metric)
            if (threshold is None or not r.persistent or a is None or not a.own
                    or a.change.kind not in _ROLLBACK_KINDS
                    or abs(r.point.change or 0.0) < threshold
                    or services.get(r.service, {}).get("version") != a.change.version
                    or not a.change.previous_version):
                continue
            key = f"{r.service}:{a.change.version}"
            if key in made or {(r.service, a.change.previous_version),
                               (r.service, _ANY_VERSION)} & pending:
                continue
            confidence = (self.policy.sole_suspect_confidence if not a.rivals
                          else self.policy.with_rivals_confidence)
            made[key] = RemediationProposal(
                action=RemediationAction(
                    id=f"rollback-{r.service}-{a.change.version}", type="rollback_deploy",
                    service=r.service, params={"to_version": a.change.previous_version},
                    reason=_describe(r)),
                specialist=self.name, hypothesis_id=_hypothesis(r), confidence=confidence,
                rationale=(f"{_describe(r)}. Rolling back to {a.change.previous_version} "
                           f"undoes the change it followed"
                           + (f"; other changes in the span: "
                              f"{'; '.join(c.what for c in a.rivals)}" if a.rivals else "")))
        return list(made.values())


def _depends_on(name: str, services: list[ServiceInfo]) -> list[str]:
    """Everything `name` calls, directly or through others (a cycle ends the walk)."""
    deps = {s.name: s.dependencies for s in services}
    seen: set[str] = set()
    todo = list(deps.get(name, []))
    while todo:  # each service is visited once: bounded by the catalog's size
        dep = todo.pop()
        if dep in seen or dep == name:
            continue
        seen.add(dep)
        todo += deps.get(dep, [])
    return sorted(seen)


def _pending_rollbacks(ctx: AgentContext) -> set[tuple[str, str]]:
    """(service, to_version) of rollbacks an open record already holds: this agent's earlier
    proposal waiting for a human, or an incident handling the same regression."""
    found = set()
    for record in ctx.store.incidents(since=ctx.now - timedelta(days=2)):
        if record.status not in (
                IncidentStatus.OPEN, IncidentStatus.AWAITING_APPROVAL):
            continue
        for case in record.actions:
            action = case.proposal.action
            if action.type == "rollback_deploy":
                # Without to_version a rollback goes to the previous version: whichever it is.
                found.add((action.service, str(action.params.get("to_version", _ANY_VERSION))))
    return found


def _hypothesis(r: MetricChange) -> str:
    a = r.attribution
    return f"regression:{r.service}:{a.change.id if a else 'unattributed'}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _describe(r: MetricChange) -> str:
    p, a = r.point, r.attribution
    cause = (f"no deploy, config or flag change in the {MAX_LAG.total_seconds() / 3600:g} "
             "hours before" if a is None
             else f"after {a.change.what} at {a.change.at:%Y-%m-%d %H:%M}"
             + ("" if a.own else f" (a dependency of {r.service})"))
    return (f"{r.service} {r.metric} {_pct(p.change)} ({p.mean_before:.4g} → "
            f"{p.mean_after:.4g}) from {r.at:%Y-%m-%d %H:%M}, {cause}; "
            f"Mann-Whitney p={p.p_value:.2g}")


def _finding(r: MetricChange, proposed: bool) -> Finding:
    a = r.attribution
    evidence = [f"mean {r.point.mean_before:.4g} over {r.point.n_before} 5-minute points "
                f"before, {r.point.mean_after:.4g} over {r.point.n_after} after",
                f"held {int(r.held_for.total_seconds() // 60)} min"
                + (", still holding" if r.persistent else "")]
    if a is not None:
        evidence.append(f"attributed to {a.change.what}"
                        + (f"; rivals: {'; '.join(c.what for c in a.rivals)}" if a.rivals
                           else ""))
    if proposed and a is not None:
        evidence.append(f"proposed: rollback_deploy {r.service} to {a.change.previous_version}")
    return Finding(kind="performance_regression", subject=f"{r.service} {r.metric}",
                   summary=_describe(r), evidence=evidence,
                   level="critical" if proposed else "warning" if r.persistent else "info",
                   data=r.to_dict())


def _signal(r: MetricChange, now: datetime) -> Signal:
    a = r.attribution
    cause = a.change.id if a else "unattributed"
    mission = (f"Find why {a.change.what} slowed {r.service} ({r.metric} "
               f"{_pct(r.point.change)}) and fix it before it ships again; add a "
               f"performance check to its pipeline." if a is not None else
               f"Find what moved {r.service} {r.metric} {_pct(r.point.change)} with no "
               f"deploy, config or flag change before it (traffic, a dependency, capacity).")
    return Signal(id=signal_id("performance_regression", r.service, r.metric, cause),
                  kind="performance_regression", title=_describe(r)[:200],
                  evidence=[_describe(r)], suggested_mission=mission, created_at=now)


def _headline(regressions: list[MetricChange], proposals: list[RemediationProposal],
              services: int) -> str:
    if not regressions:
        return f"no performance regression on {services} service(s)"
    hit = sorted({r.service for r in regressions})
    text = (f"{len(regressions)} regression(s) on {', '.join(hit)}"
            f" ({sum(r.persistent for r in regressions)} persistent)")
    if proposals:
        text += "; proposed " + ", ".join(
            f"rollback of {p.action.service} to {p.action.params['to_version']}"
            for p in proposals)
    return text
