"""The test run detects each scenario once (tests/conftest.py); a repeat must be a faithful,
independent copy, or every test built on it would be testing something else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opsloop import watch
from opsloop.graph.runner import OperateLoop
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment


def test_a_repeated_detection_is_what_a_fresh_one_would_be(
    tmp_path: Path, make_loop: Callable[[Settings], OperateLoop]
) -> None:
    fresh_loop = make_loop(Settings(work_dir=tmp_path / "fresh"))
    copied_loop = make_loop(Settings(work_dir=tmp_path / "copied"))
    try:
        fresh, fresh_env = watch.detect.__wrapped__(fresh_loop, "bad_deploy", 7)  # type: ignore[attr-defined]
        watch.detect(copied_loop, "bad_deploy", 7)  # cached from here on, if it was not yet
        copy, copy_env = watch.detect(copied_loop, "bad_deploy", 7)
    finally:
        fresh_loop.close()
        copied_loop.close()
    assert copy_env.state == fresh_env.state
    assert (copy.detected_at, copy.fault_at) == (fresh.detected_at, fresh.fault_at)
    assert [i.model_dump(exclude={"id", "environment"}) for i in copy.incidents] == [
        i.model_dump(exclude={"id", "environment"}) for i in fresh.incidents]
    # Its own ids from its own store, its own environment, saved where the loop reopens it.
    assert [i.id for i in copy.incidents] == ["INC-0002"]
    assert {i.environment for i in copy.incidents} == {copy.environment}
    assert copy.environment != fresh.environment
    assert copy_env.autosave_path is not None
    assert SimEnvironment.load(copy_env.autosave_path).state == fresh_env.state


def test_a_copy_changes_alone(loop: OperateLoop) -> None:
    _, first = watch.detect(loop, "bad_deploy", 7)
    _, second = watch.detect(loop, "bad_deploy", 7)
    first.wait(5)
    assert second.now() < first.now()
    assert second.state.tick == first.state.tick - 5
