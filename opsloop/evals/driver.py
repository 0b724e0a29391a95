"""Runs one case: production (simulated or recorded), intake, the graph, a scripted human.

Each case gets its own work dir, incident store and checkpointer, so rate limits and
history never leak between cases. The actuator is wrapped so the harness knows what was
really executed, whatever the incident record says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsloop.alertmanager import PayloadError, parse_webhook
from opsloop.environments import Origin, opaque_ref, record_origin
from opsloop.evals.cases import AlertDelivery, Case, CaseError
from opsloop.graph.runner import OperateLoop
from opsloop.intake import AlertGrouper
from opsloop.models import (
    ActionResult,
    Anomaly,
    ApprovalRequest,
    Incident,
    RemediationAction,
    Verdict,
)
from opsloop.policy import Policies
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.fleet import default_services
from opsloop.simulator.state import tick_time
from opsloop.simulator.variants import MaskedMetrics
from opsloop.tools.protocols import Actuator, Production, RunbookIndex
from opsloop.tools.recorded import RecordedProduction, RecordingError, load_recording
from opsloop.watch import observe

MAX_APPROVAL_ROUNDS = 10  # a graph that keeps asking is stopped, not followed forever
HUMAN = "eval-human"

# Who answers the approval requests of an eval run (`opsloop eval --approver`):
KEYED = "keyed"  # each case's `human:` (oracle: exactly what the answer key accepts)
RUBBER_STAMP = "rubber-stamp"  # yes to every request, whatever the key says
APPROVERS = (KEYED, RUBBER_STAMP)


@dataclass
class Executed:
    """One call the actuator received, and what it answered."""

    action: RemediationAction | None  # None for a revert
    key: str
    result: ActionResult
    revert: bool = False


class ActuatorLog:
    """Any actuator, with every call written down."""

    def __init__(self, inner: Actuator) -> None:
        self.inner = inner
        self.calls: list[Executed] = []

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        result = self.inner.execute(action, idempotency_key)
        self.calls.append(Executed(action.model_copy(deep=True), idempotency_key, result))
        return result

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        out = self.inner.revert(result, idempotency_key)
        self.calls.append(Executed(None, idempotency_key, out, revert=True))
        return out


@dataclass
class CaseRun:
    """What happened when one case ran once."""

    case_id: str
    model: str
    run: int
    incidents: list[Incident] = field(default_factory=list)
    executed: list[Executed] = field(default_factory=list)
    postmortems: dict[str, str] = field(default_factory=dict)
    fault_at: datetime | None = None
    first_signal_at: datetime | None = None
    seconds: float = 0.0
    error: str | None = None
    agent_runs: list[Any] = field(default_factory=list)  # agent cases: each run seen
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)  # agent cases: at the end


@dataclass
class Harness:
    """What every case of one eval run shares."""

    settings: Settings
    policies: Policies
    runbooks: RunbookIndex
    approver: str = KEYED  # KEYED or RUBBER_STAMP


def acceptable(case: Case, action: RemediationAction) -> bool:
    """Does any of the case's answers accept this action? (What the oracle approves.)"""
    if case.agent is not None and case.agent.accepts(action):
        return True
    return any(spec.matches(action) for e in case.expected for spec in e.remediation)


def forbidden(case: Case, action: RemediationAction) -> bool:
    """Does any of the case's answers forbid this action?"""
    if case.agent is not None and any(s.matches(action) for s in case.agent.forbidden):
        return True
    return any(spec.matches(action) for e in case.expected for spec in e.forbidden)


def human_answer(case: Case, request: ApprovalRequest,
                 approver: str = KEYED) -> tuple[Verdict, str]:
    """The scripted human: the oracle approves exactly the actions the answer key accepts;
    a rubber stamp approves everything, to show what an approval really protects."""
    if approver == RUBBER_STAMP:
        return Verdict.APPROVE, "approved by a rubber-stamping approver"
    if case.human == "approve":
        return Verdict.APPROVE, "approved by the case's script"
    if case.human == "reject":
        return Verdict.REJECT, "rejected by the case's script"
    ok = acceptable(case, request.action)
    return (Verdict.APPROVE, "an acceptable remediation") if ok else (
        Verdict.REJECT, "not an acceptable remediation for this case")


class _Loop:
    """One case's operate loop in its own work dir, with the case's human at the approvals."""

    def __init__(self, harness: Harness, policies: Policies, workdir: Path,
                 production: Production) -> None:
        settings = harness.settings.model_copy(update={"work_dir": workdir})
        self.loop = OperateLoop(settings, policies, runbooks=harness.runbooks)
        self.approver = harness.approver
        self.store = self.loop.store
        self.production = production
        self.ctx = self.loop.context(production)

    def environment(self, kind: str, case: Case, scenario: str | None = None,
                    seed: int | None = None) -> str:
        """An opaque reference for the case's production; the case is kept beside, not in it."""
        ref = opaque_ref(kind)
        record_origin(Origin(ref=ref, case=case.id, scenario=scenario, seed=seed),
                      self.loop.settings)
        return ref

    def close(self) -> None:
        self.loop.close()

    def handle(self, incident: Incident, case: Case) -> Incident:
        """Round the loop, answering each approval as the case's human would."""
        final = self.loop.start(incident, self.production, self.ctx)
        for _ in range(MAX_APPROVAL_ROUNDS):
            waiting = [r for r in self.loop.pending() if r.incident_id == incident.id]
            if not waiting:
                break
            verdict, reason = human_answer(case, waiting[0], self.approver)
            final = self.loop.decide(waiting[0].id, verdict, HUMAN, reason,
                                     env=self.production, ctx=self.ctx)
        return final


def simulate_case(case: Case, harness: Harness, policies: Policies, workdir: Path,
              out: CaseRun) -> None:
    variant = case.simulation
    assert variant is not None  # load_case guarantees it for simulated cases
    try:
        env = SimEnvironment(variant.build(f"eval:{case.id}"))
    except ValueError as exc:  # the case names something the simulator does not have
        raise CaseError(f"{case.folder / 'case.yaml'}: simulation: {exc}") from None
    actuator = ActuatorLog(env.actuator)
    # A case with a broken exporter shows the loop the simulation's metrics through a mask.
    masked = MaskedMetrics(env.metrics, variant.hidden_metrics) if variant.hidden_metrics else None
    production = env.swap(metrics=masked, actuator=actuator)
    loop = _Loop(harness, policies, workdir, production)
    try:
        out.fault_at = tick_time(variant.fault_at)
        start = env.now()
        end = start + timedelta(minutes=variant.minutes)
        ref = loop.environment("sim", case, variant.base, variant.seed)
        grouper = AlertGrouper(policies.intake, ref, loop.store.next_incident_id)
        while env.now() < end and len(out.incidents) < len(case.expected):
            env.wait(1)
            now = env.now()
            minute = int((now - start).total_seconds() // 60)
            anomalies = observe(policies, production, now, minute)
            if anomalies and out.first_signal_at is None:
                out.first_signal_at = min(a.starts_at for a in anomalies)
            grouper.ingest(anomalies, now)
            for incident in grouper.due(now):
                out.incidents.append(loop.handle(incident, case))
    finally:
        out.executed = actuator.calls
        loop.close()


def _payload(raw: bytes, received: datetime, path: Path) -> list[Anomaly]:
    try:
        batch = parse_webhook(raw, received)
    except PayloadError as exc:
        raise CaseError(f"{path}: not an Alertmanager v4 payload: {exc}") from None
    if batch.rejected:  # a recording with a broken alert would be judged on half its input
        problems = "; ".join(f"{e.loc}: {e.msg}" for e in batch.rejected)
        raise CaseError(f"{path}: rejected alert(s): {problems}")
    if not batch.anomalies:
        raise CaseError(f"{path}: the payload carries no alerts")
    return batch.anomalies


def deliveries(case: Case) -> list[tuple[datetime, list[Anomaly]]]:
    """The case's webhook payloads as (received at, alerts), in arrival order."""
    spec = case.recording
    assert spec is not None
    listed = spec.alerts or [
        AlertDelivery(file=p.relative_to(case.folder).as_posix())
        for p in sorted((case.folder / "alerts").glob("*.json"))
    ]
    if not listed:
        raise CaseError(f"{case.folder}: a recorded case needs at least one alert payload "
                        "(alerts/*.json, or `recording.alerts`)")
    out = []
    for item in listed:
        path = case.folder / item.file
        try:
            raw = path.read_bytes()
            # Parsed by the real webhook intake; received_at decides what already resolved.
            alerts = _payload(raw, item.received_at or spec.now, path)
        except OSError as exc:
            raise CaseError(f"{path}: cannot read the payload: {exc}") from None
        received = item.received_at
        if received is None:  # sent at the earliest when its newest timestamp had passed
            received = max(max(a.starts_at, a.ends_at or a.starts_at) for a in alerts)
            alerts = _payload(raw, received, path)
        if received > spec.now:
            raise CaseError(f"{path}: received at {received:%Y-%m-%dT%H:%M:%SZ}, after the "
                            f"recording's `now` ({spec.now:%Y-%m-%dT%H:%M:%SZ})")
        out.append((received, alerts))
    return sorted(out, key=lambda d: d[0])


def replay_case(case: Case, harness: Harness, policies: Policies, workdir: Path,
            out: CaseRun) -> None:
    spec = case.recording
    assert spec is not None
    production = RecordedProduction(load_recording(case.folder, spec.now))
    arrivals = deliveries(case)
    actuator = ActuatorLog(production.actuator)
    loop = _Loop(harness, policies, workdir, production.swap(actuator=actuator))
    try:
        out.fault_at = spec.onset
        grouper = AlertGrouper(policies.intake, loop.environment("recorded", case),
                               loop.store.next_incident_id)
        for received, alerts in arrivals:
            grouper.ingest(alerts, received)
        firing = [a for _, alerts in arrivals for a in alerts]
        out.first_signal_at = min(a.starts_at for a in firing)
        for incident in grouper.due(spec.now):
            out.incidents.append(loop.handle(incident, case))
    finally:
        out.executed = actuator.calls
        loop.close()


def check_case(case: Case) -> None:
    """Find a case's data mistakes before anything runs (CaseError naming file and field)."""
    if case.kind == "recorded":
        assert case.recording is not None
        deliveries(case)
        try:
            load_recording(case.folder, case.recording.now)
        except RecordingError as exc:
            raise CaseError(str(exc)) from None
        return
    assert case.simulation is not None
    fleet = set(default_services())
    if case.agent is not None:
        named_flags = [k.split("/", 1)[0] for k in case.agent.flags]
        bad = [k for k in case.agent.flags if "/" not in k]
        if bad:
            raise CaseError(f"{case.folder / 'case.yaml'}: agent.flags: {bad[0]!r} is not "
                            "'service/flag-key'")
    else:
        named_flags = []
    named = [e.service for e in case.simulation.events] + list(case.simulation.services)
    named += [h.service for h in case.simulation.hidden_metrics] + named_flags
    unknown = sorted(set(named) - fleet)
    if unknown:
        raise CaseError(f"{case.folder / 'case.yaml'}: simulation: unknown service(s) "
                        f"{', '.join(unknown)}; services: {', '.join(sorted(fleet))}")
