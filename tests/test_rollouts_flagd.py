"""Flag files opsloop writes are valid flagd documents and evaluate as intended with the real
OpenFeature Python SDK and its flagd provider, in file (in-process) mode, offline."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from opsloop.models import ActionStatus, FlagState, RemediationAction
from opsloop.rollouts import flagd
from opsloop.rollouts.actuator import FlagFileActuator
from opsloop.rollouts.flagd import FlagFileError
from opsloop.rollouts.source import FileFlagSource

KEYS = 10_000
TOLERANCE = 2.0  # percentage points
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def served(path: Path, key: str, domain: str, keys: int = KEYS) -> set[int]:
    """Which of `keys` synthetic targeting keys the flagd provider, reading `path` in file
    (in-process) mode, serves `on` (True). Every evaluation must succeed: a default served
    because of an error (provider not ready, flag not found) would pass for `off`."""
    provider = FlagdProvider(resolver_type=ResolverType.FILE,
                             offline_flag_source_path=str(path))
    api.set_provider_and_wait(provider, domain)
    try:
        client = api.get_client(domain)
        on, errors = set(), []
        for i in range(keys):
            got = client.get_boolean_details(key, False,
                                             EvaluationContext(targeting_key=f"user-{i}"))
            if got.error_code is not None:
                errors.append(f"user-{i}: {got.error_code} {got.error_message}")
            elif got.value:
                on.add(i)
    finally:
        provider.shutdown()
    assert errors == []
    return on


def served_on(path: Path, key: str, domain: str) -> float:
    """The percent of KEYS synthetic targeting keys served `on`."""
    return 100.0 * len(served(path, key, domain)) / KEYS


@pytest.fixture
def source(tmp_path: Path) -> Iterator[FileFlagSource]:
    path = tmp_path / "flags.flagd.json"
    path.write_text(json.dumps({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {
        "new-checkout-flow": flagd.rollout_flag(0, service="checkout", owner="payments"),
        "dark-mode": flagd.rollout_flag(100, service="web", kind="release")}}))
    yield FileFlagSource(path, clock=lambda: NOW)


@pytest.mark.parametrize("percent", [1, 5, 25, 50])
def test_a_rollout_opsloop_writes_splits_ten_thousand_keys_within_two_points(
        source: FileFlagSource, percent: int) -> None:
    change = source.set_rollout("new-checkout-flow", percent, author="rollouts")
    assert (change.from_percent, change.to_percent, change.enabled) == (0, percent, True)
    observed = served_on(source.path, "new-checkout-flow", f"split-{percent}")
    print(f"weight {percent}%: observed {observed:.2f}% of {KEYS} keys")
    assert abs(observed - percent) <= TOLERANCE


def test_the_kill_switch_serves_every_key_the_code_default(source: FileFlagSource) -> None:
    source.set_rollout("new-checkout-flow", 50, author="rollouts")
    source.disable("new-checkout-flow", author="rollouts")
    assert json.loads(source.path.read_text())["flags"]["new-checkout-flow"]["state"] == \
        "DISABLED"
    assert served_on(source.path, "new-checkout-flow", "killed") == 0.0
    assert served_on(source.path, "dark-mode", "untouched") == 100.0


def test_a_cohort_stays_in_as_the_rollout_grows(source: FileFlagSource) -> None:
    """flagd buckets by a hash of flag key and targeting key: 5% is inside 25%."""
    source.set_rollout("new-checkout-flow", 5, author="rollouts")
    small = served(source.path, "new-checkout-flow", "five", 2000)
    source.set_rollout("new-checkout-flow", 25, author="rollouts")
    assert small and small <= served(source.path, "new-checkout-flow", "twenty-five", 2000)


def test_every_write_validates_and_keeps_history(source: FileFlagSource) -> None:
    source.set_rollout("new-checkout-flow", 5, author="rollouts")
    source.set_rollout("new-checkout-flow", 25, author="ana")
    document = json.loads(source.path.read_text())
    assert flagd.problems(document) == []
    flag = document["flags"]["new-checkout-flow"]
    assert flag["targeting"] == {"fractional": [["on", 25], ["off", 75]]}
    assert flag["metadata"] == {"service": "checkout", "kind": "release", "owner": "payments",
                                "updatedAt": NOW.isoformat()}
    history = [json.loads(line) for line in source.history_path.read_text().splitlines()]
    assert [(h["from_percent"], h["to_percent"], h["author"]) for h in history] == [
        (0, 5, "rollouts"), (5, 25, "ana")]
    (state,) = source.flags("checkout")
    assert (state.key, state.rollout_percent, state.enabled, state.owner) == (
        "new-checkout-flow", 25, True, "payments")


def test_an_invalid_change_never_reaches_the_file(source: FileFlagSource) -> None:
    before = source.path.read_text()
    with pytest.raises(ValueError, match="whole number"):
        source.set_rollout("new-checkout-flow", 2.5, author="rollouts")
    document = json.loads(before)
    document["flags"]["dark-mode"]["state"] = "ON"
    with pytest.raises(FlagFileError, match="flags/dark-mode/state: 'ON' is not one of"):
        source.write(document, "bad")
    assert source.path.read_text() == before
    assert not list(source.path.parent.glob(".flags.flagd.json.*"))  # no temp left behind


def test_a_broken_file_is_reported_with_where_and_what(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text('{"flags": {"x": {"state": "ENABLED", "variants": {}}}}')
    with pytest.raises(FlagFileError) as caught:
        FileFlagSource(path, clock=lambda: NOW).flags()
    assert caught.value.problems == ["flags/x/variants: {} should be non-empty"]
    path.write_text("{nope")
    with pytest.raises(FlagFileError, match="line 1, column 2: not JSON"):
        FileFlagSource(path, clock=lambda: NOW).flags()


def test_a_flag_folder_under_git_gets_a_commit_per_change(tmp_path: Path) -> None:
    folder = tmp_path / "flags"
    folder.mkdir()
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    source = FileFlagSource(folder / "flags.json", clock=lambda: NOW)
    source.path.write_text(json.dumps({"flags": {
        "f": flagd.rollout_flag(1, service="search")}}))
    subprocess.run(["git", "-C", str(folder), "add", "flags.json"], check=True)
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "start"], check=True)
    source.set_rollout("f", 5, author="rollouts")
    source.disable("f", author="rollouts")
    log = subprocess.run(["git", "-C", str(folder), "log", "--format=%s"], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert log == ["flag f: 5% -> 0% (DISABLED) by rollouts", "flag f: 1% -> 5% (enabled) by "
                   "rollouts", "start"]


def test_the_simulators_flags_render_as_a_flagd_document_the_provider_serves(
        tmp_path: Path) -> None:
    states = [FlagState(key="rec-model-v7", service="recommendations", enabled=True,
                        rollout_percent=50, updated_at=NOW),
              FlagState(key="new-checkout-flow", service="checkout", enabled=False,
                        rollout_percent=0, updated_at=NOW)]
    document = flagd.document_from_states(states)
    assert flagd.problems(document) == []
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(document))
    assert abs(served_on(path, "rec-model-v7", "sim") - 50) <= TOLERANCE


def test_a_targeting_rule_that_is_no_operation_is_refused() -> None:
    """flagd's own test suite rejects `{"not-a-real-rule": [1, 2]}` (with-invalid-targeting)."""
    flag = flagd.rollout_flag(5, service="checkout")
    assert flagd.problems({"flags": {"f": {**flag, "targeting": {"not-a-real-rule": [1, 2]}}}})
    assert flagd.problems({"flags": {"f": {**flag, "targeting": {
        "if": [{"==": [{"var": "email"}, "a@b.c"]}, "on", None]}}}}) == []
    assert flagd.problems({"flags": {"f": {**flag, "targeting": {}}}}) == []


def test_a_change_git_cannot_commit_still_happens_and_says_why(tmp_path: Path) -> None:
    """A killed git leaves .git/index.lock: flagd already serves the change, so it stands
    (file and history written); the missing commit is reported, not raised."""
    folder = tmp_path / "flags"
    folder.mkdir()
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    actuator = FlagFileActuator(FileFlagSource(folder / "flags.json", clock=lambda: NOW))
    actuator.source.path.write_text(json.dumps({"flags": {
        "f": flagd.rollout_flag(25, service="search")}}))
    (folder / ".git" / "index.lock").write_text("")
    result = actuator.execute(RemediationAction(id="k", type="disable_flag", service="search",
                                                params={"flag": "f"}), "key-1")
    assert result.status is ActionStatus.SUCCEEDED
    assert "not committed in" in result.detail and "index.lock" in result.detail
    assert actuator.source.read()["flags"]["f"]["state"] == "DISABLED"
    assert [c.to_percent for c in actuator.source.flag_changes(None, 60)] == [0]
