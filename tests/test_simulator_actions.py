"""The simulator's actuator: real effects, idempotency per key, reverts, and readable failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.models import ActionStatus, ParamValue, RemediationAction
from opsloop.simulator import SimEnvironment


def _action(type_: str, service: str, **params: ParamValue) -> RemediationAction:
    return RemediationAction(id=f"{type_}-{service}", type=type_, service=service, params=params)


def test_the_same_key_twice_changes_state_once_and_replays_the_result() -> None:
    env = SimEnvironment.create("traffic_surge", seed=1)
    first = env.execute(_action("scale_out", "api-gateway", replicas=12), "key-1")
    again = env.execute(_action("scale_out", "api-gateway", replicas=18), "key-1")
    assert first.status is ActionStatus.SUCCEEDED and not first.replayed
    assert again.replayed and again.status is ActionStatus.SUCCEEDED
    assert again.detail == first.detail
    assert env.state.services["api-gateway"].replicas == 12
    assert sum("scaled api-gateway" in m for _, _, m in env.state.logs["api-gateway"]) == 1


def test_autosave_puts_the_effect_and_its_key_on_disk_before_returning(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    env = SimEnvironment.create("bad_deploy", seed=1, autosave_path=path)
    env.wait(25)
    env.execute(_action("rollback_deploy", "checkout"), "rb-1")
    resumed = SimEnvironment.load(path, autosave_path=path)
    assert resumed.state.services["checkout"].version == "2.13.2"
    replay = resumed.execute(_action("rollback_deploy", "checkout"), "rb-1")
    assert replay.replayed
    assert [d.kind for d in resumed.deploys("checkout", 60)] == ["deploy", "rollback"]


def test_rollback_is_a_rollback_deploy_event_and_revert_redeploys_the_replaced_version() -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    env.wait(25)
    result = env.execute(_action("rollback_deploy", "checkout"), "rb")
    assert result.undo == {"kind": "redeploy", "service": "checkout", "version": "2.14.0"}
    rollback = env.deploys("checkout", 5)[-1]
    assert (rollback.kind, rollback.version, rollback.previous_version) == (
        "rollback",
        "2.13.2",
        "2.14.0",
    )
    reverted = env.revert(result, "rb-revert")
    assert reverted.status is ActionStatus.SUCCEEDED
    assert env.state.services["checkout"].version == "2.14.0"
    env.wait(5)
    error = env.average("checkout", "error_ratio", 3)
    assert error is not None and error > 0.2  # the defect came back with the version


def test_revert_of_scale_restores_replicas_and_the_autoscaler() -> None:
    env = SimEnvironment.create("cost_runaway", seed=1)
    env.wait(60)
    before = env.state.services["recommendations"].model_copy(deep=True)
    result = env.execute(_action("scale_in", "recommendations", replicas=8), "in")
    svc = env.state.services["recommendations"]
    assert svc.replicas == 8 and svc.autoscaler is not None
    assert svc.autoscaler.max_replicas == 8  # pinned so the HPA cannot climb back
    env.revert(result, "in-revert")
    assert svc.replicas == before.replicas
    assert svc.autoscaler is not None and before.autoscaler is not None
    assert svc.autoscaler.max_replicas == before.autoscaler.max_replicas


def test_revert_of_flag_changes_restores_enabled_and_percent() -> None:
    env = SimEnvironment.create("flag_rollout_errors", seed=1)
    env.wait(45)
    disabled = env.execute(_action("disable_flag", "checkout", flag="new-checkout-flow"), "off")
    flag = env.state.flag("checkout", "new-checkout-flow")
    assert flag is not None and not flag.enabled and flag.rollout_percent == 0
    env.revert(disabled, "off-revert")
    assert flag.enabled and flag.rollout_percent == 25
    ramp = env.execute(
        _action("set_flag_rollout", "checkout", flag="new-checkout-flow", percent=5), "ramp"
    )
    assert flag.rollout_percent == 5
    env.revert(ramp, "ramp-revert")
    assert flag.rollout_percent == 25
    assert len(env.flag_changes("checkout", 60)) == 6  # 2 scheduled + 4 by the actuator


def test_revert_of_failover_returns_to_the_failing_region() -> None:
    env = SimEnvironment.create("dependency_outage", seed=1)
    env.wait(30)
    result = env.execute(_action("failover", "payments"), "fo")
    assert env.state.services["payments"].region == "secondary"
    env.revert(result, "fo-revert")
    assert env.state.services["payments"].region == "primary"
    env.wait(3)
    error = env.average("payments", "error_ratio", 2)
    assert error is not None and error > 0.3


def test_irreversible_failed_and_already_reverted_actions_are_skipped() -> None:
    env = SimEnvironment.create("memory_leak", seed=1)
    restart = env.execute(_action("restart", "inventory"), "r")
    assert env.revert(restart, "r-undo").status is ActionStatus.SKIPPED
    failed = env.execute(_action("scale_out", "inventory", replicas=1), "bad")
    assert failed.status is ActionStatus.FAILED
    assert env.revert(failed, "bad-undo").status is ActionStatus.SKIPPED
    scaled = env.execute(_action("scale_out", "inventory", replicas=6), "s")
    assert env.revert(scaled, "s-undo-1").status is ActionStatus.SUCCEEDED
    second = env.revert(scaled, "s-undo-2")
    assert second.status is ActionStatus.SKIPPED and "already reverted" in second.detail
    assert env.revert(scaled, "s-undo-1").replayed
    assert env.state.services["inventory"].replicas == 4


@pytest.mark.parametrize(
    ("action", "expect"),
    [
        (_action("reboot_everything", "checkout"), "unknown action type"),
        (_action("restart", "billing"), "unknown service"),
        (_action("scale_out", "checkout"), "needs parameter(s) replicas"),
        (_action("scale_out", "checkout", replicas="lots"), "must be an integer"),
        (_action("scale_out", "checkout", replicas=4), "not above the current 8"),
        (_action("scale_out", "checkout", replicas=500), "outside 1..50"),
        (_action("scale_in", "checkout", replicas=9), "not below the current 8"),
        (_action("restart", "checkout", force=True), "does not take parameter(s) force"),
        (_action("disable_flag", "checkout", flag="nope"), "has no flag 'nope'"),
        (
            _action("set_flag_rollout", "checkout", flag="new-checkout-flow", percent=140),
            "between 0 and 100",
        ),
        (_action("failover", "payments", to_region="mars"), "is not a region"),
        (_action("failover", "payments", to_region="primary"), "already serves from region"),
        (_action("rollback_deploy", "checkout", to_version="9.9.9"), "no deployed version"),
        (_action("expand_volume", "search", size_gb=10), "must be larger"),
        (_action("abort_experiment", "redis", experiment="chaos-x"), "no chaos experiment"),
        (_action("replace_instance", "inventory", instance="inventory-9"), "no instance"),
    ],
)
def test_bad_actions_fail_with_a_reason_and_change_nothing(
    action: RemediationAction, expect: str
) -> None:
    env = SimEnvironment.create("bad_deploy", seed=1)
    before = env.state.model_dump(exclude={"executed"})
    result = env.execute(action, "k")
    assert result.status is ActionStatus.FAILED
    assert expect in result.detail
    assert env.state.model_dump(exclude={"executed"}) == before


def test_purge_and_expand_free_disk_and_are_irreversible() -> None:
    env = SimEnvironment.create("disk_filling", seed=1)
    env.wait(200)
    full = env.average("search", "disk_utilization", 1)
    purge = env.execute(_action("purge_logs", "search"), "p")
    grow = env.execute(_action("expand_volume", "search", size_gb=200), "g")
    env.wait(1)
    after = env.average("search", "disk_utilization", 1)
    assert full is not None and after is not None and after < full / 2
    assert purge.undo == {} and grow.undo == {}
    assert env.state.services["search"].disk_size_gb == 200


def test_replace_instance_picks_the_unhealthiest_replica() -> None:
    env = SimEnvironment.create("slo_slow_burn", seed=1)
    result = env.execute(_action("replace_instance", "inventory"), "ri")
    assert "inventory-2" in result.detail
    assert env.state.services["inventory"].bad_instance is None


def test_abort_experiment_stops_it_and_restores_the_instance() -> None:
    env = SimEnvironment.create("chaos_experiment", seed=1)
    env.wait(40)
    exp_id = "chaos-redis-primary-loss-20261102"
    result = env.execute(_action("abort_experiment", "redis", experiment=exp_id), "ab")
    assert result.status is ActionStatus.SUCCEEDED
    assert env.experiments("redis")[0].status.value == "aborted"
    assert "redis-0" not in env.state.services["redis"].down_instances
    again = env.execute(_action("abort_experiment", "redis", experiment=exp_id), "ab-2")
    assert again.status is ActionStatus.FAILED and "not running" in again.detail


def test_the_simulator_actuator_speaks_the_whole_action_catalog() -> None:
    from opsloop.models.catalog import ACTION_TYPES
    from opsloop.simulator.actions import HANDLERS

    assert set(HANDLERS) == set(ACTION_TYPES)
