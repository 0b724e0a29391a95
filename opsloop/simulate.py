"""A stretch of simulated production: faults on a plan, the loop on every incident they cause,
the scheduled agents on their schedule, all on the simulation's clock.

Nothing here is a second loop. Each step the clock moves (`env.wait`), `watch.observe`
evaluates alerts.yaml (and the SLO burn rates), an `AlertGrouper` groups what fires and opens
incidents, and `OperateLoop.start` takes each round the loop. A simulated on-call answers
approvals through `OperateLoop.decide` after a delay. The `Scheduler` is ticked on the hour
and whenever an agent's next cron time has passed, with a `RunLedger` in the work dir, so
the weekly and monthly reviews are written for the period simulated.

The fault plan is the answer key: it is written to `reports/simulation.json` for people and
never reaches an agent (incidents carry only the opaque environment reference).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsloop.environments import new_simulation
from opsloop.graph.runner import OperateLoop
from opsloop.intake import AlertGrouper, GroupUpdate
from opsloop.models import Anomaly, AnomalyStatus, ApprovalRequest, Incident, Verdict
from opsloop.scheduler.cron import jitter, next_due
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import AgentRun, RunLedger
from opsloop.simulator import SimEnvironment
from opsloop.simulator.events import schedule
from opsloop.simulator.server import FAULT_KINDS
from opsloop.watch import SLO_EVALUATION_EVERY_MINUTES, metric_detectors, observe

Progress = Callable[[str], None]

DEFAULT_DAYS = 35
# Rules are evaluated every few simulated minutes, not every minute: a rule's `for` still
# holds (evaluation reads the minutes in between), and a month runs in minutes, not an hour.
DEFAULT_EVALUATE_EVERY = 5
# Its only fault (an autoscaler change at 09:20 on day one) is held, so the fleet starts quiet.
QUIET_SCENARIO = "cost_runaway"
ONCALL = "sim-oncall"
DRAIN_ROUNDS = 20  # answering what still waits at the end: a hard cap, whatever comes back

Event = tuple[int, str, str, dict[str, Any]]  # (minutes after the fault, kind, service, params)


@dataclass(frozen=True)
class Fault:
    """One planned fault: what it is, where, and the events that make (and end) it."""

    name: str
    service: str
    at: datetime
    events: tuple[Event, ...]
    summary: str


@dataclass(frozen=True)
class OnCall:
    """The simulated on-call: answers every approval after a delay (longer at night),
    approving by default and rejecting the action types named in `reject`, with the reason."""

    day_delay_minutes: int = 15
    night_delay_minutes: int = 45
    reject: dict[str, str] = field(default_factory=lambda: {
        "failover": "provider status page says recovery is minutes away; failing over "
                    "payments costs more than waiting it out"})

    def due(self, request: ApprovalRequest, now: datetime) -> bool:
        hour = request.requested_at.hour
        night = hour >= 22 or hour < 7
        delay = self.night_delay_minutes if night else self.day_delay_minutes
        return now - request.requested_at >= timedelta(minutes=delay)

    def verdict(self, request: ApprovalRequest) -> tuple[Verdict, str]:
        reason = self.reject.get(request.action.type)
        if reason is not None:
            return Verdict.REJECT, reason
        return Verdict.APPROVE, "looks right; go ahead"


def _surge(at: int) -> list[Event]:
    out: list[Event] = [(-5, "log", "api-gateway",
                         {"message": "config reload: rate-limit profile 'campaign' loaded"})]
    for service, mult in (("api-gateway", 3.0), ("search", 1.5), ("recommendations", 1.5)):
        out += [(0, "traffic", service, {"multiplier": mult}),
                (at, "traffic", service, {"multiplier": 1.0})]
    return out


# Each kind of fault: the service it hits, what happens, and how the world ends it if the loop
# does not (a hotfix, the provider recovering, the campaign ending), so one unhandled fault
# does not burn the whole month. Versions are filled in when the plan is laid out.
CATALOG: dict[str, tuple[str, str, Callable[[random.Random], list[Event]]]] = {
    "bad deploy": ("checkout", "a release throws on ~25% of orders; hotfix after 8h", lambda r: [
        (0, "deploy", "checkout", {"author": "checkout-ci", "behaviour": {
            "error_ratio": round(r.uniform(0.2, 0.3), 2), "latency_multiplier": 1.1,
            "exception": "NullPointerException in OrderService.submit"}}),
        (480, "deploy", "checkout", {"author": "checkout-ci"})]),
    "dependency outage": ("payments", "the provider's primary region is down ~90 min",
                          lambda r: [
        (0, "region_outage", "payments", {"region": "primary"}),
        (r.randint(70, 110), "region_outage", "payments", {"region": "primary",
                                                            "active": False})]),
    "memory leak": ("inventory", "a cache leaks heap until a fix ships ~10h later", lambda r: [
        (0, "log", "inventory", {"message": "stock cache: caching enabled for 'bundles'"}),
        (0, "leak", "inventory", {"rate": round(r.uniform(0.003, 0.005), 4)}),
        (600, "deploy", "inventory", {"author": "catalog-ci"}),
        (600, "leak", "inventory", {"rate": 0.0})]),
    "traffic surge": ("api-gateway", "a campaign triples gateway traffic for ~3h",
                      lambda r: _surge(r.randint(150, 210))),
    "flag rollout error": ("recommendations", "rec-model-v7 to 100%; its cohort fails; the "
                           "owner turns it off after 3h", lambda r: [
        (0, "flag", "recommendations", {"key": "rec-model-v7", "enabled": True, "percent": 100,
                                        "variant_error_ratio": 0.3,
                                        "author": "discovery-release-bot"}),
        (180, "flag", "recommendations", {"key": "rec-model-v7", "enabled": False,
                                          "percent": 0, "author": "discovery-oncall"})]),
    "slow burn": ("search", "one search replica on a bad node fails ~4% for 10h", lambda r: [
        (0, "bad_instance", "search", {"instance": f"search-{r.randint(1, 4)}",
                                       "error_ratio": 0.04}),
        (600, "bad_instance", "search", {"instance": "", "error_ratio": 0.0})]),
    "disk filling": ("search", "DEBUG logging fills search's disk; reverted after 6h",
                     lambda r: [
        (0, "log", "search", {"message": "log level for com.shop.search set to DEBUG"}),
        (0, "log_growth", "search", {"gb_per_min": 0.2}),
        (360, "log_growth", "search", {"gb_per_min": 0.0})]),
    "cost runaway": ("recommendations", "an HPA change scales to 40 replicas; reverted in 20h",
                     lambda r: [
        (0, "autoscaler", "recommendations", {"target_cpu": 0.05, "max_replicas": 40,
                                              "author": "infra-bot"}),
        (20 * 60, "autoscaler", "recommendations", {"target_cpu": 0.6, "max_replicas": 12,
                                                        "author": "infra-bot"})]),
}


def plan_faults(seed: int, days: int, start: datetime) -> list[Fault]:
    """A seeded plan: about one fault every four days (at least three), each kind once at
    most, at a random hour of a random day in its slot; none on the first day (baselines)."""
    rng = random.Random(f"simulate:{seed}")
    kinds = list(CATALOG)
    rng.shuffle(kinds)
    count = min(len(kinds), max(3, days // 4))
    span = max(days - 1, 1) / count
    faults = []
    for i, name in enumerate(kinds[:count]):
        day = 1 + int(i * span + rng.random() * span * 0.8)
        at = (start + timedelta(days=day)).replace(hour=rng.randint(0, 23),
                                                    minute=rng.choice((0, 10, 20, 30, 40, 50)))
        service, summary, make = CATALOG[name]
        faults.append(Fault(name, service, at, tuple(make(rng)), summary))
    return sorted(faults, key=lambda f: f.at)


def _background(rng: random.Random, days: int, start: datetime) -> list[tuple[datetime, Event]]:
    """Healthy releases on working days, so the reviews have deploys to tell apart."""
    teams = {"web": "frontend", "search": "discovery", "recommendations": "discovery",
             "inventory": "catalog", "checkout": "checkout", "api-gateway": "edge"}
    out = []
    for day in range(days):
        when = start + timedelta(days=day)
        if when.weekday() >= 5:
            continue
        for service in rng.sample(sorted(teams), rng.randint(0, 2)):
            at = when.replace(hour=rng.randint(10, 17), minute=rng.randint(0, 59))
            out.append((at, (0, "deploy", service, {"author": f"{teams[service]}-ci"})))
    return out


def lay_out(env: SimEnvironment, faults: list[Fault], seed: int, days: int) -> int:
    """Schedule the faults and the background releases into the simulation; how many events.
    Deploys get the next patch version of their service, in time order."""
    state = env.state
    start = env.now()
    timed = [(f.at + timedelta(minutes=e[0]), e) for f in faults for e in f.events]
    timed += _background(random.Random(f"simulate:{seed}:releases"), days, start)
    versions = {name: svc.version.split("-")[0] for name, svc in state.services.items()}
    for at, (_, kind, service, params) in sorted(timed, key=lambda t: t[0]):
        assert kind in FAULT_KINDS, kind
        params = dict(params)
        if kind == "deploy":
            major, minor, patch = [*versions[service].split("."), "0", "0"][:3]
            versions[service] = f"{major}.{minor}.{int(patch) + 1}"
            params["version"] = versions[service]
        tick = state.tick + int((at - start).total_seconds() // 60)
        schedule(state, tick, kind, service, **params)
    return len(timed)


@dataclass
class Day:
    day: int
    date: str
    incidents_opened: int = 0
    agent_runs: int = 0
    approvals_answered: int = 0


@dataclass
class SimulationResult:
    environment: str
    seed: int
    start: datetime
    end: datetime
    evaluate_every: int
    faults: list[Fault]
    incidents: list[Incident] = field(default_factory=list)
    runs: list[AgentRun] = field(default_factory=list)
    answers: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    days: list[Day] = field(default_factory=list)
    wall_seconds: float = 0.0


class Simulation:
    """One simulated period against one work dir's store, checkpoints and ledger."""

    def __init__(self, loop: OperateLoop, seed: int, *, oncall: OnCall | None = None,
                 evaluate_every: int = DEFAULT_EVALUATE_EVERY, detectors: bool = False) -> None:
        if evaluate_every < 1:
            raise ValueError(f"evaluate_every must be at least 1 minute, got {evaluate_every}")
        self.loop = loop
        self.seed = seed
        self.oncall = oncall or OnCall()
        self.every = evaluate_every
        self.ref, self.env = new_simulation(QUIET_SCENARIO, seed, loop.settings)
        self.env.state.pending = []  # hold the scenario's own fault: the plan brings faults
        # The whole period replays from the seed; saved once at the end, not every step.
        self._path, self.env.autosave_path = self.env.autosave_path, None
        self.grouper = AlertGrouper(loop.policies.intake, self.ref, loop.store.next_incident_id,
                                    max_anomalies=loop.settings.max_anomalies_per_incident)
        self.detectors = metric_detectors(loop.policies) if detectors else None
        self.ledger = RunLedger(loop.settings.state_dir / "schedule.db")
        self.scheduler = Scheduler(loop, self.ledger, self.ref, lambda: self.env)
        self._firing: dict[str, Anomaly] = {}
        self._asked: set[str] = set()  # approvals answered (or failed): never asked twice

    def close(self) -> None:
        self.ledger.close()

    def run(self, days: int, progress: Progress = lambda _: None) -> SimulationResult:
        began = time.perf_counter()
        start = self.env.now()
        end = start + timedelta(days=days)
        faults = plan_faults(self.seed, days, start)
        lay_out(self.env, faults, self.seed, days)
        result = SimulationResult(self.ref, self.seed, start, end, self.every, faults)
        today = Day(1, start.date().isoformat())
        last_slo = start - timedelta(days=1)
        next_tick = start  # the scheduler's first tick anchors every agent at the start
        while self.env.now() < end:
            now = self.env.now()
            if now >= next_tick:
                today.agent_runs += len(self._tick(now, result))
                next_tick = self._next_tick(now)
            slo_due = now - last_slo >= timedelta(minutes=SLO_EVALUATION_EVERY_MINUTES)
            last_slo = now if slo_due else last_slo
            today.incidents_opened += self._observe(now, 0 if slo_due else 1, result)
            today.approvals_answered += self._answer(now, result, drain=False)
            self.env.wait(self.every)
            # `while`: a long incident run may carry the clock past more than one day's end.
            while self.env.now() >= start + timedelta(days=today.day):
                self._day_done(today, result, progress)
                today = Day(today.day + 1, (start + timedelta(days=today.day)).date().isoformat())
        for _ in range(DRAIN_ROUNDS):  # what still waits for the on-call is answered now
            if not self._answer(self.env.now(), result, drain=True):
                break
        self.scheduler.settle()
        if self._path is not None:
            self.env.autosave_path = self._path
            self.env.save(self._path)
        result.incidents = [i for i in self.loop.store.incidents() if i.anomalies]
        result.runs = sorted(self.ledger.history(limit=100_000), key=lambda r: r.due_at)
        result.wall_seconds = time.perf_counter() - began
        return result

    # one step ---------------------------------------------------------------------------

    def _observe(self, now: datetime, minute: int, result: SimulationResult) -> int:
        """Evaluate, send what stopped firing as resolved, group; run what opened."""
        found = observe(self.loop.policies, self.env, now, minute, self.detectors)
        if minute != 0:  # burn rates were not evaluated this step: theirs keep firing
            found += [a for a in self._firing.values() if a.source == "slo"]
        firing = {a.fingerprint: a for a in found}
        gone = [a.model_copy(update={"status": AnomalyStatus.RESOLVED, "ends_at": now})
                for fp, a in self._firing.items() if fp not in firing]
        self._firing = firing
        self.grouper.ingest([*found, *gone], now)
        opened = self.grouper.due(now)
        for incident in opened:
            self.loop.store.audit(incident.id, "intake", "opened", {
                "group": incident.group_key, "alerts_firing": len(incident.anomalies),
                "environment": self.ref})
            try:
                self.loop.start(incident, self.env)
            except Exception as exc:  # recorded (escalated by start); the month goes on
                result.errors.append(f"{incident.id}: {type(exc).__name__}: {exc}")
        self.grouper.updates(self.env.now(), record=self._record_updates)
        return len(opened)

    def _record_updates(self, updates: list[GroupUpdate]) -> None:
        for update in updates:
            kind = "alerts_resolved" if update.closed else (
                "alerts_repeat" if update.repeat else "alerts_update")
            self.loop.store.audit(update.incident_id, "intake", kind, {
                "resolved_count": len(update.resolved), "firing_count": update.firing_count})

    def _answer(self, now: datetime, result: SimulationResult, drain: bool) -> int:
        """The on-call answers every approval that has waited long enough (all, draining)."""
        answered = 0
        for request in self.loop.pending():
            if request.id in self._asked or not (drain or self.oncall.due(request, now)):
                continue
            self._asked.add(request.id)
            verdict, reason = self.oncall.verdict(request)
            try:
                self.loop.decide(request.id, verdict, ONCALL, reason, env=self.env)
            except Exception as exc:  # one failed decision never stops the month
                result.errors.append(f"{request.id}: {type(exc).__name__}: {exc}")
                continue
            answered += 1
            result.answers.append({"approval": request.id, "incident": request.incident_id,
                                   "action": request.action.describe(),
                                   "verdict": verdict.past, "at": self.env.now().isoformat()})
        return answered

    def _tick(self, now: datetime, result: SimulationResult) -> list[AgentRun]:
        runs = self.scheduler.tick(now)
        result.errors += [f"{r.run_id}: {r.error}" for r in runs if r.status == "failed"]
        return runs

    def _next_tick(self, now: datetime) -> datetime:
        """The next whole hour, or an agent's next cron time if that comes first."""
        hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        times = [hour]
        for name, sched in self.loop.policies.schedule.agents.items():
            if sched.enabled:
                due = next_due(sched, now)
                times.append(due + jitter(name, due, sched))
        return min(times)

    def _day_done(self, day: Day, result: SimulationResult, progress: Progress) -> None:
        result.days.append(day)
        progress(f"day {day.day:>2} (from {day.date} 09:00): {day.incidents_opened} "
                 f"incident(s) opened, {day.agent_runs} agent run(s), "
                 f"{day.approvals_answered} approval(s) answered")
