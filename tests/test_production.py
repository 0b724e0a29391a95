"""Production as four swappable parts: a wrapper replaces one part, the rest is untouched."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsloop.models import (
    ActionResult,
    ActionStatus,
    DeployEvent,
    MetricSeries,
    RemediationAction,
)
from opsloop.simulator import SimEnvironment, SimState
from opsloop.tools.backend import IdempotentActuator, within
from opsloop.tools.protocols import Production

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def bad_deploy() -> SimState:
    return SimEnvironment.create("bad_deploy", seed=7).state


@pytest.fixture
def env(bad_deploy: SimState) -> SimEnvironment:
    return SimEnvironment(copy.deepcopy(bad_deploy))


class ZeroMetrics:
    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        return MetricSeries(service=service, metric=metric, points=[])

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        return 0.0


class CountingActuator(IdempotentActuator):
    def __init__(self) -> None:
        self.kept: dict[str, ActionResult] = {}
        self.runs = 0
        self.saves = 0

    def _results(self) -> dict[str, ActionResult]:
        return self.kept

    def _stored(self, result: ActionResult) -> None:
        self.saves += 1

    def _execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        self.runs += 1
        return ActionResult(action_id=action.id, action=action.describe(),
                            idempotency_key=idempotency_key, status=ActionStatus.SUCCEEDED,
                            at=NOW)

    def _revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        self.runs += 1
        return ActionResult(action_id=result.action_id, action=f"revert {result.action}",
                            idempotency_key=idempotency_key, status=ActionStatus.SUCCEEDED,
                            at=NOW)


def test_swapping_the_metrics_leaves_the_change_feed_clock_and_actuator_alone(
        env: SimEnvironment) -> None:
    masked = env.swap(metrics=ZeroMetrics())
    assert masked.average("checkout", "error_ratio", 5) == 0.0
    assert env.average("checkout", "error_ratio", 5) != 0.0
    assert masked.services() == env.services()
    assert masked.deploys("checkout", 600) == env.deploys("checkout", 600)
    masked.wait(3)  # one clock: the view and the simulation move together
    assert masked.now() == env.now()
    assert masked.actuator is env.actuator


def test_closing_any_view_closes_the_shared_connections_once(env: SimEnvironment) -> None:
    closed: list[str] = []
    production = Production(ZeroMetrics(), env.changes, env.clock, CountingActuator(),
                            closers=[lambda: closed.append("sim"),
                                     lambda: closed.append("prometheus")])
    view = production.swap(metrics=ZeroMetrics())
    view.close()
    production.close()
    view.close()
    assert sorted(closed) == ["prometheus", "sim"]


def test_a_repeated_key_is_replayed_not_run_again() -> None:
    actuator = CountingActuator()
    action = RemediationAction(id="a1", type="restart", service="web")
    first = actuator.execute(action, "k1")
    again = actuator.execute(action, "k1")
    assert actuator.runs == 1 and actuator.saves == 1
    assert not first.replayed and again.replayed
    undone = actuator.revert(first, "r1")
    assert actuator.revert(first, "r1").replayed and not undone.replayed
    assert actuator.runs == 2
    again.detail = "changed by the caller"
    assert actuator.execute(action, "k1").detail == ""  # callers get copies


def test_the_window_holds_the_last_minutes_up_to_now_of_the_named_service() -> None:
    def deploy(minutes_ago: int, service: str = "web") -> DeployEvent:
        return DeployEvent(at=NOW - timedelta(minutes=minutes_ago), service=service,
                           version=str(minutes_ago), previous_version="0")

    records = [deploy(60), deploy(59), deploy(0), deploy(-1), deploy(5, "api")]
    assert [d.version for d in within(records, NOW, 60)] == ["59", "0", "5"]
    assert [d.version for d in within(records, NOW, 60, "web")] == ["59", "0"]


def test_a_simulation_given_another_state_reads_and_acts_on_that_state(
        env: SimEnvironment) -> None:
    other: Any = copy.deepcopy(env.state)
    other.services["checkout"].version = "9.9.9"
    env.state = other
    assert {s.name: s.version for s in env.services()}["checkout"] == "9.9.9"
    env.wait(1)
    assert other.tick == env.state.tick and env.now() == other.now()
    env.execute(RemediationAction(id="a1", type="restart", service="checkout"), "k1")
    assert "k1" in other.executed
