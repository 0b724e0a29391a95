"""Where the change path meets Chaos Toolkit: how the engine reaches this production over
HTTP, and the actuator that runs `run_chaos_experiment` there.

A served simulator (`remote:sim=<url>`) is reached at its URL. The in-process simulator is
served on loopback for the length of one run, around the same state (the engine's faults
and rollbacks change this production, and the state is saved after). Any other production
has no target: a GameDay there fails with a reason instead of running blind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opsloop.chaos.actuator import GameDayActuator, Target
from opsloop.graph.context import LoopContext
from opsloop.graph.resilience_facts import resilience_facts
from opsloop.models import RemediationAction
from opsloop.policy.resilience import ResilienceFacts
from opsloop.simulator.env import SimClock, SimEnvironment
from opsloop.simulator.remote import SimClient
from opsloop.simulator.server import SimServer


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
                           serve=gameday_target(ctx.clock), clock=ctx.clock.now)


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
