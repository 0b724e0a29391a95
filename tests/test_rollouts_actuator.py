"""The flag actions run on a team's flagd file: once per key, reversible, never raising."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsloop.models import ActionResult, ActionStatus, RemediationAction
from opsloop.rollouts import flagd
from opsloop.rollouts.actuator import FlagFileActuator
from opsloop.rollouts.source import FileFlagSource

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def actuator(tmp_path: Path) -> FlagFileActuator:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {
        "rec-model-v7": flagd.rollout_flag(25, service="recommendations")}}))
    return FlagFileActuator(FileFlagSource(path, clock=lambda: NOW))


def flag(actuator: FlagFileActuator) -> tuple[str, float]:
    f = actuator.source.read()["flags"]["rec-model-v7"]
    return f["state"], flagd.rollout_percent(f)


def action(type_: str, service: str = "recommendations", **params: object) -> RemediationAction:
    return RemediationAction(id=f"a-{type_}", type=type_, service=service,
                             params={"flag": "rec-model-v7", **params})


def test_an_advance_runs_once_per_key_and_reverts_to_what_was_served(
        actuator: FlagFileActuator) -> None:
    done = actuator.execute(action("set_flag_rollout", percent=50), "k1")
    assert done.status is ActionStatus.SUCCEEDED and not done.replayed
    assert done.undo == {"kind": "flag", "flag": "rec-model-v7", "enabled": True,
                         "percent": 25}
    assert flag(actuator) == ("ENABLED", 50)
    again = actuator.execute(action("set_flag_rollout", percent=50), "k1")
    assert again.replayed and again.detail == done.detail
    assert len(actuator.source.history_path.read_text().splitlines()) == 1  # ran once
    undone = actuator.revert(done, "k1-revert")
    assert undone.status is ActionStatus.SUCCEEDED and flag(actuator) == ("ENABLED", 25)
    assert [c.to_percent for c in actuator.source.flag_changes("recommendations", 60)] == \
        [50, 25]


def test_the_kill_disables_the_flag_and_a_revert_re_enables_it(
        actuator: FlagFileActuator) -> None:
    killed = actuator.execute(action("disable_flag"), "kill")
    assert killed.status is ActionStatus.SUCCEEDED and flag(actuator) == ("DISABLED", 0)
    actuator.revert(killed, "kill-revert")
    assert flag(actuator) == ("ENABLED", 25)


@pytest.mark.parametrize(("bad", "detail"), [
    (action("disable_flag", service="search"), "belongs to recommendations"),
    (RemediationAction(id="x", type="disable_flag", service="recommendations",
                       params={"flag": "nope"}), "has no flag 'nope'"),
    (action("set_flag_rollout", percent=12.5), "whole number"),
    (action("restart"), "not a flag action"),
])
def test_what_cannot_run_fails_with_a_reason_and_changes_nothing(
        actuator: FlagFileActuator, bad: RemediationAction, detail: str) -> None:
    before = actuator.source.path.read_text()
    result = actuator.execute(bad, f"bad-{bad.id}")
    assert result.status is ActionStatus.FAILED and detail in result.detail
    assert actuator.source.path.read_text() == before


def test_other_actions_go_to_the_wrapped_actuator(actuator: FlagFileActuator) -> None:
    class Rest:
        def execute(self, a: RemediationAction, key: str) -> ActionResult:
            return ActionResult(action_id=a.id, action=a.describe(), idempotency_key=key,
                                status=ActionStatus.SUCCEEDED, detail="rest", at=NOW)

        def revert(self, result: ActionResult, key: str) -> ActionResult:
            return result

    wrapped = FlagFileActuator(actuator.source, Rest())
    assert wrapped.execute(action("restart"), "r").detail == "rest"
