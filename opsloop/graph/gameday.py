"""Where the change path meets Chaos Toolkit: how the engine reaches this production over
HTTP, and the actuator that runs `run_chaos_experiment` there.

A served simulator (`remote:sim=<url>`) is reached at its URL. The in-process simulator is
served on loopback for the length of one run, around the same state (the engine's faults
and rollbacks change this production, and the state is saved after). Any other production
has no target: a GameDay there fails with a reason instead of running blind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from opsloop.chaos.actuator import GameDayActuator, Target
from opsloop.chaos.experiments import Experiment
from opsloop.chaos.gameday import Watcher
from opsloop.chaos.report import Detection
from opsloop.graph.context import LoopContext
from opsloop.graph.resilience_facts import resilience_facts
from opsloop.models import RemediationAction
from opsloop.observe import evaluate_rules
from opsloop.policy import Policies
from opsloop.policy.health import burn_rate_anomalies
from opsloop.policy.resilience import ResilienceFacts
from opsloop.simulator.env import SimClock, SimEnvironment
from opsloop.simulator.remote import SimClient
from opsloop.simulator.server import SimServer
from opsloop.tools.protocols import Telemetry

MAX_WATCH_MINUTES = 240  # a GameDay's fault is held minutes, not days: the replay is bounded


def gameday_target(production: Any) -> Target | None:
    """How the engine reaches `production` (the loop's clock is the production itself)."""
    clock = getattr(production, "clock", production)
    if isinstance(clock, SimClient):
        url = clock.url

        def remote() -> AbstractContextManager[str]:
            return nullcontext(url)
        return remote
    if isinstance(clock, SimClock):
        local = clock

        @contextmanager
        def served() -> Iterator[str]:
            server = SimServer(SimEnvironment(local.state)).start()
            try:
                yield server.url
            finally:
                server.stop()
                local.saved()
        return served
    return None


def gameday_actuator(ctx: LoopContext) -> GameDayActuator:
    """The loop's actuator, with GameDays run by Chaos Toolkit against this production."""
    return GameDayActuator(ctx.actuator, experiments_dir=ctx.settings.experiments_dir,
                           state_dir=ctx.settings.state_dir,
                           reports_dir=ctx.settings.work_dir / "reports",
                           serve=gameday_target(ctx.clock), clock=ctx.clock.now,
                           watch=opsloop_watch(ctx.policies, ctx.telemetry, ctx.clock.now))


def opsloop_watch(policies: Policies, telemetry: Telemetry, clock: Callable[[], datetime]
                  ) -> Watcher:
    """opsloop's own detection replayed over the run, minute by minute as the watch loop
    evaluates it (alert rules and SLO burn rates): which alerts on the experiment's services
    fired between the fault and the rollbacks, and at which minute."""
    started = clock()

    def watch(experiment: Experiment, start: int | None, fault: int | None,
              until: int | None) -> list[Detection]:
        if start is None or fault is None or until is None:
            return []
        services, seen = set(experiment.blast_radius.services), dict[tuple[str, str], int]()
        for minute in range(fault, min(until, fault + MAX_WATCH_MINUTES) + 1):
            now = started + timedelta(minutes=minute - start)
            for anomaly in [*evaluate_rules(policies.alerts.rules, telemetry, now),
                            *burn_rate_anomalies(policies, telemetry, now)]:
                key = (anomaly.name, anomaly.service or "")
                if key[1] in services and key not in seen:
                    seen[key] = minute
        return [Detection(name=n, service=s, minute=m) for (n, s), m in seen.items()]
    return watch


def start_facts(ctx: LoopContext, record_id: str, action: RemediationAction) -> ResilienceFacts:
    """What resilience.yaml needs to decide this start, measured now against this production
    (the steady state with the experiment's own probes, over the same HTTP target)."""
    name = str(action.params.get("experiment", ""))
    serve = gameday_target(ctx.clock)

    def facts(url: str | None) -> ResilienceFacts:
        return resilience_facts(name, now=ctx.clock.now(), settings=ctx.settings,
                                policies=ctx.policies, telemetry=ctx.telemetry, store=ctx.store,
                                target_url=url, excluding=record_id)
    if serve is None:
        return facts(None)
    with serve() as url:
        return facts(url)
