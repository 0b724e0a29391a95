"""What `opsloop serve` keeps running behind its HTTP API: intake grouping, a dispatcher that
opens and flushes incident groups on the environment's clock, SLO burn-rate evaluation, and
a pool of workers that take incidents round the loop and resume them on approvals.

Request threads only ingest alerts and read the store; graph runs happen on the workers,
each with its own `OperateLoop` (own SQLite connections), one run per incident at a time.

Intake's groups live in `state/intake.db` as well as in memory (see `opsloop.intake_state`):
a restarted `serve` keeps re-sent alerts in the incidents they opened, and `start` first
finishes what a killed process left half done.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from opsloop.detection import load_detectors, save_detectors
from opsloop.environments import Production, UnknownEnvironment, open_environment
from opsloop.graph.people import apply_verb, repage_due
from opsloop.graph.runner import OperateLoop
from opsloop.intake import AlertGrouper, GroupUpdate, IntakeStats
from opsloop.intake_state import IntakeState
from opsloop.models import Anomaly, AnomalyStatus, Incident, ParamValue, Verdict
from opsloop.models.people import PeopleEvent, PeopleVerb
from opsloop.observe import ENVIRONMENT, evaluate_rules
from opsloop.policy import Policies
from opsloop.policy.health import burn_rate_anomalies
from opsloop.scheduler.driver import Scheduler, unknown_agents
from opsloop.scheduler.ledger import AgentRun, RunLedger
from opsloop.settings import Settings
from opsloop.store import IncidentStore
from opsloop.tools.prometheus import REAL_TIME, TimeScale

log = logging.getLogger("opsloop.serve")

DISPATCH_SECONDS = 0.25  # how often groups are checked for group_wait / group_interval
DECISION_WAIT_SECONDS = 2.0  # an approval answers inline if its run finishes this fast
SERVE_GC_THRESHOLDS = (10_000, 20, 100)  # while serving; see IntakeRuntime.start


class IntakeRuntime:
    """The long-running half of `opsloop serve`."""

    def __init__(self, settings: Settings, policies: Policies,
                 environment: str | None = None, evaluate_rules: bool = False) -> None:
        self.settings = settings
        self.policies = policies
        if environment is not None and not environment.startswith("remote:"):
            raise UnknownEnvironment(
                f"serve needs a live environment (remote:sim=<url>[,prometheus=<url>]), "
                f"not {environment!r}: a saved simulation does not move on its own")
        self.environment = environment
        self.env: Production | None = (
            open_environment(environment, settings) if environment else None
        )
        self.store = IncidentStore(settings.state_dir / "opsloop.db")
        self.store_lock = threading.Lock()  # one connection, shared by request threads
        self.intake_state = IntakeState(settings.state_dir / "intake.db")
        self.grouper = AlertGrouper(policies.intake, environment or "none", self._new_id,
                                    max_anomalies=settings.max_anomalies_per_incident,
                                    state=self.intake_state)
        self._unrecorded: list[Incident] = []  # opened by intake, not yet in the store
        self.pool = ThreadPoolExecutor(settings.serve_workers, thread_name_prefix="incident")
        self._local = threading.local()
        self._loops: list[OperateLoop] = []
        self._loops_lock = threading.Lock()
        self._incident_locks: dict[str, threading.Lock] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.runs: dict[str, Future[Incident | None]] = {}
        self.errors: list[str] = []
        self._slo_firing: dict[str, Anomaly] = {}
        self._detectors_path = settings.state_dir / "detectors.json"
        self.detectors = (load_detectors(policies, self._detectors_path, self._error,
                                         ENVIRONMENT) if environment else None)
        self._detector_firing: dict[str, Anomaly] = {}
        # With no Prometheus and Alertmanager in front (`opsloop run`'s own simulator),
        # alerts.yaml's rules are evaluated here, as the simulator watch does.
        self.evaluate_rules = evaluate_rules and environment is not None
        self._rule_firing: dict[str, Anomaly] = {}
        self._gc_thresholds: tuple[int, int, int] | None = None  # to restore on stop
        # Scheduled agents (schedule.yaml) run on their own thread, against the environment.
        self.ledger = RunLedger(settings.state_dir / "schedule.db")
        self._scheduler: Scheduler | None = None
        self._scheduler_recovered = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> IntakeRuntime:
        # An alert storm allocates millions of short-lived objects while the groups hold
        # hundreds of thousands of long-lived ones; at the default thresholds the collector
        # rescans those again and again (a third of intake's time in bench/alert_storm.py).
        # Nothing intake holds is cyclic, so collecting less often costs little memory.
        self._gc_thresholds = gc.get_threshold()
        gc.set_threshold(*SERVE_GC_THRESHOLDS)
        self.recover()
        # What start-up built (modules, policies, the app; ~200k objects) lives as long as
        # the process: out of the collector's way, so full collections scan only new work.
        gc.freeze()
        if self.environment is not None:
            # Runs a killed process left between checkpoints finish now, on a worker, each
            # under its incident's lease (one a live process still holds is left to it).
            self.runs["recover"] = self.pool.submit(self._resume_unfinished)
        self._spawn("intake-dispatch", self._every(DISPATCH_SECONDS, self.flush))
        if self.env is not None:
            self._spawn("slo-evaluate",
                        self._every(self.settings.slo_evaluation_seconds, self.evaluate_slos))
        if self.env is not None and self.detectors is not None:
            self._spawn("detectors",
                        self._every(self.settings.slo_evaluation_seconds, self.evaluate_detectors))
        if self.env is not None and self.evaluate_rules:
            self._spawn("alert-rules",
                        self._every(self.settings.slo_evaluation_seconds, self.evaluate_alerts))
        if self.env is not None:
            self._spawn("scheduler", self._every(self.settings.schedule_tick_seconds,
                                                 self.schedule_tick, first=0.0))
        self._spawn("repage", self._every(self.settings.schedule_tick_seconds, self.repage))
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self._loops_lock:
            for loop in self._loops:
                loop.close()
        with self.store_lock:
            self.store.close()
        self.intake_state.close()
        self.ledger.close()
        if self.env is not None:
            self.env.close()
        if self._gc_thresholds is not None:
            gc.set_threshold(*self._gc_thresholds)
            gc.unfreeze()  # a process that starts runtimes again (tests) keeps collecting
            self._gc_thresholds = None

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _every(self, seconds: float, job: Callable[[], Any],
               first: float | None = None) -> Callable[[], None]:
        def run() -> None:
            wait = seconds if first is None else first
            while not self._stop.wait(wait):
                wait = seconds
                try:
                    job()
                except Exception as exc:  # a failing round must not stop the next one
                    self._error(f"{getattr(job, '__name__', 'job')}: {exc}")
        return run

    def _error(self, message: str) -> None:
        if self.errors and self.errors[-1] == message:
            return  # a backend down fails every round the same way: say it once
        log.error("%s", message)
        self.errors = [*self.errors[-49:], message]

    # -- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Intake runs on the environment's clock, so group_wait means its minutes."""
        return self.env.now() if self.env is not None else datetime.now(UTC)

    def timescale(self) -> TimeScale:
        scale: Callable[[], TimeScale] | None = getattr(self.env, "timescale", None)
        return scale() if scale is not None else REAL_TIME

    def _env_time(self, anomalies: list[Anomaly]) -> list[Anomaly]:
        """Alert times are wall times; a fast simulated clock needs them in its own time."""
        scale = self.timescale()
        if scale == REAL_TIME:
            return anomalies
        out = []
        for a in anomalies:
            update: dict[str, Any] = {"starts_at": scale.to_env(a.starts_at.timestamp())}
            if a.ends_at is not None:
                update["ends_at"] = scale.to_env(a.ends_at.timestamp())
            out.append(a.model_copy(update=update))
        return out

    # -- intake ----------------------------------------------------------------------------

    def _new_id(self) -> str:
        with self.store_lock:
            return self.store.next_incident_id()

    def ingest(self, anomalies: list[Anomaly]) -> IntakeStats:
        if not anomalies:
            return IntakeStats()
        return self.grouper.ingest(self._env_time(anomalies), self.now())

    def flush(self) -> list[Incident]:
        """Open incidents whose groups have waited, and record flushes of open groups."""
        now = self.now()
        opened = self.grouper.due(now)
        self._unrecorded += opened
        while self._unrecorded:  # one the store refused is tried again next round
            self._open(self._unrecorded[0])
            self._unrecorded.pop(0)
        self.grouper.updates(now, record=self._record_updates)
        return opened

    def recover(self) -> list[Incident]:
        """Finish what a killed `serve` left undone; returns the incidents recorded now.

        A group that opened an incident the store has no 'opened' record of died between
        the two writes: the incident is recorded (and run) now, under the id it was given,
        never a new one. In a state dir from before intake state was kept, the groups of
        incidents intake opened and never closed are taken back first, so their alerts'
        re-sends join them."""
        now = self.now()
        if self.intake_state.fresh:
            try:
                self._adopt_open_incidents(now)
            except Exception as exc:  # serve still starts; re-sends may open duplicates
                self._error(f"taking back open incidents from the store failed: "
                            f"{type(exc).__name__}: {exc}")
            self.intake_state.fresh = False
        recorded = []
        for incident in self.grouper.opened(now):
            with self.store_lock:
                kinds = {(a.actor, a.kind) for a in self.store.audit_log(incident.id)}
            if ("intake", "opened") in kinds:
                continue
            try:
                self._open(incident)
                recorded.append(incident)
            except Exception as exc:  # the dispatcher tries again every round
                self._error(f"recording {incident.id} failed: {type(exc).__name__}: {exc}")
                self._unrecorded.append(incident)
        return recorded

    def _resume_unfinished(self) -> None:
        for incident_id, outcome in self._loop().recover("opsloop"):
            if outcome.startswith("failed"):
                self._error(f"{incident_id}: resuming after a restart {outcome}")
            else:
                log.info("%s resumed after a restart: %s", incident_id, outcome)
        return None

    def _adopt_open_incidents(self, now: datetime) -> None:
        with self.store_lock:
            incidents = self.store.incidents()  # oldest first: a duplicate joins the first
            audits = {i.id: {(a.actor, a.kind) for a in self.store.audit_log(i.id)}
                      for i in incidents}
        for incident in incidents:
            kinds = audits[incident.id]
            if ("intake", "opened") in kinds and ("intake", "alerts_resolved") not in kinds:
                self.grouper.adopt(incident, now)

    def _open(self, incident: Incident) -> None:
        with self.store_lock:
            self.store.save_incident(incident)
            self.store.audit(incident.id, "intake", "opened", {
                "group": incident.group_key,
                "alerts_firing": len(incident.anomalies),
                "environment": self.environment,
            })
        if self.env is None:
            log.warning("%s opened; no environment configured, so it is recorded, not run",
                        incident.id)
            return
        self.runs[incident.id] = self.pool.submit(self._run_new, incident)

    def _record_updates(self, updates: list[GroupUpdate]) -> None:
        with self.store_lock:
            for update in updates:
                kind = "alerts_resolved" if update.closed else (
                    "alerts_repeat" if update.repeat else "alerts_update")
                self.store.audit(update.incident_id, "intake", kind, {
                    "new_firing": [a.fingerprint for a in update.new_firing[:100]],
                    "new_firing_count": len(update.new_firing),
                    "resolved_count": len(update.resolved),
                    "firing_count": update.firing_count,
                })

    def evaluate_slos(self) -> None:
        """SRE Workbook burn-rate windows over the environment's telemetry, into intake.

        A window pair that stopped firing is sent as resolved, as Prometheus does for its
        alerts, so the incident's group can close."""
        if self.env is None:
            return
        now = self.now()
        found = burn_rate_anomalies(self.policies, self.env, now, labels={"env": ENVIRONMENT})
        firing = {a.fingerprint: a for a in found}
        gone = [
            a.model_copy(update={"status": AnomalyStatus.RESOLVED, "ends_at": now})
            for fp, a in self._slo_firing.items() if fp not in firing
        ]
        self._slo_firing = firing
        self.grouper.ingest([*found, *gone], now)

    def evaluate_alerts(self) -> None:
        """alerts.yaml's rules over the environment's telemetry, into intake; a rule that
        stopped holding is sent as resolved."""
        if self.env is None:
            return
        now = self.now()
        found = evaluate_rules(self.policies.alerts.rules, self.env, now)
        firing = {a.fingerprint: a for a in found}
        gone = [
            a.model_copy(update={"status": AnomalyStatus.RESOLVED, "ends_at": now})
            for fp, a in self._rule_firing.items() if fp not in firing
        ]
        self._rule_firing = firing
        self.grouper.ingest([*found, *gone], now)

    def evaluate_detectors(self) -> None:
        """The streaming anomaly detectors over every service's metrics, into intake, as the
        simulator watch runs them; an alert that stopped firing is sent as resolved. Their
        memory is saved after each pass, so a restart continues instead of relearning."""
        if self.env is None or self.detectors is None:
            return
        now = self.now()
        found = self.detectors.observe(self.env, now)
        firing = {a.fingerprint: a for a in found}
        gone = [
            a.model_copy(update={"status": AnomalyStatus.RESOLVED, "ends_at": now})
            for fp, a in self._detector_firing.items() if fp not in firing
        ]
        self._detector_firing = firing
        save_detectors(self.detectors, self._detectors_path)
        self.grouper.ingest([*found, *gone], now)

    # -- scheduled agents ------------------------------------------------------------------

    def scheduler(self) -> Scheduler:
        """This thread's scheduler (its own loop and store connection, the shared ledger)."""
        assert self.environment is not None
        sched: Scheduler | None = getattr(self._local, "scheduler", None)
        if sched is None:
            ref = self.environment
            sched = Scheduler(self._loop(), self.ledger, ref,
                              lambda: open_environment(ref, self.settings))
            self._local.scheduler = sched
        return sched

    def unknown_agents(self) -> list[str]:
        """schedule.yaml names no agent opsloop has: refused at start, naming the entry."""
        return unknown_agents(self.policies)

    def close_unstarted(self) -> None:
        """Release what __init__ opened, for a runtime refused before start."""
        self._stop.set()
        self.pool.shutdown(wait=False)
        with self.store_lock:
            self.store.close()
        self.intake_state.close()
        self.ledger.close()
        if self.env is not None:
            self.env.close()

    def schedule_tick(self) -> list[AgentRun]:
        """Continue what a dead process left, once; then run whatever is due now."""
        sched = self.scheduler()
        if not self._scheduler_recovered:
            for run_id, outcome in sched.recover():
                log.warning("scheduled run %s continued after a restart: %s", run_id, outcome)
            self._scheduler_recovered = True
        if self._stop.is_set():
            return []
        return sched.tick(self.now())

    def run_agent_now(self, name: str) -> AgentRun:
        """`POST /api/v1/agents/{name}/run`: on a worker, beside the schedule."""
        if self.environment is None:
            raise UnknownEnvironment("scheduled agents need a live environment")
        return self.pool.submit(lambda: self.scheduler().run_now(name, self.now())).result()

    # -- graph runs ------------------------------------------------------------------------

    def _loop(self) -> OperateLoop:
        loop: OperateLoop | None = getattr(self._local, "loop", None)
        if loop is None:
            loop = OperateLoop(self.settings, self.policies)
            self._local.loop = loop
            with self._loops_lock:
                self._loops.append(loop)
        return loop

    def _lock_for(self, incident_id: str) -> threading.Lock:
        with self._loops_lock:
            return self._incident_locks.setdefault(incident_id, threading.Lock())

    def _run_new(self, incident: Incident) -> Incident | None:
        assert self.environment is not None
        with self._lock_for(incident.id):
            env = open_environment(self.environment, self.settings)
            try:
                return self._loop().start(incident, env)
            except Exception as exc:
                self._failed(incident.id, exc)
                return None
            finally:
                env.close()

    def _failed(self, incident_id: str, exc: Exception) -> None:
        self._error(f"{incident_id}: the loop failed: {type(exc).__name__}: {exc}")
        with self.store_lock:
            self.store.audit(incident_id, "opsloop", "run_failed",
                             {"error": f"{type(exc).__name__}: {exc}"})

    def decide(self, approval_id: str, incident_id: str, verdict: Verdict, by: str,
               reason: str, changes: dict[str, ParamValue]) -> Incident | None:
        """Answer an approval on a worker; the incident when its run ends within a moment,
        None while it still runs (verification windows take the environment's minutes).
        A refused decision (already decided) raises here, not later."""

        def run() -> Incident | None:
            with self._lock_for(incident_id):
                return self._loop().decide(approval_id, verdict, by, reason,
                                           dict[str, object](changes))

        future = self.pool.submit(run)
        self.runs[incident_id] = future
        try:
            return future.result(timeout=DECISION_WAIT_SECONDS)
        except FutureTimeout:
            # The caller already got 202; a failure from here on must still be on record.
            future.add_done_callback(
                lambda f: self._decision_failed(approval_id, incident_id, f.exception()))
            return None

    def _decision_failed(self, approval_id: str, incident_id: str,
                         exc: BaseException | None) -> None:
        if exc is None:
            return
        self._error(f"{incident_id}: decision on {approval_id} failed: "
                    f"{type(exc).__name__}: {exc}")
        with self.store_lock:
            self.store.audit(incident_id, "opsloop", "decision_failed",
                             {"approval": approval_id, "error": f"{type(exc).__name__}: {exc}"})

    # -- people ----------------------------------------------------------------------------

    def people(self, incident_id: str, verb: PeopleVerb, actor: str,
               detail: str = "") -> PeopleEvent:
        """A person's verb on an incident (PeopleRefused / StoreError when it cannot apply)."""
        loop = self._loop()
        with self.store_lock:
            return apply_verb(self.store, loop.notifier, self.policies, incident_id, verb,
                              actor, detail, self.settings.warrooms_dir)

    def repage(self) -> list[PeopleEvent]:
        """Page again whatever nobody acknowledged in time (severity.yaml escalation)."""
        loop = self._loop()
        now = self.now()
        with self.store_lock:
            return repage_due(self.store, loop.notifier, self.policies, now)

    # -- reads -----------------------------------------------------------------------------

    def read(self, fn: Callable[[IncidentStore], Any]) -> Any:
        with self.store_lock:
            return fn(self.store)
