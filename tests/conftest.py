"""Shared fixtures: an isolated work dir, a loop bound to it, and the heavy parts built once.

Indexing the runbooks (chromadb) and simulating a scenario until its alerts open an incident
take seconds each. Both depend only on their inputs, so a test run builds each once and
every test gets its own copy: the shipped runbooks are indexed once per run, and
`opsloop.watch.detect` is wrapped so that a (scenario, seed, policies) already detected is
handed out again as a fresh simulation (its own environment file, its own incident ids).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsloop import watch
from opsloop.environments import new_simulation
from opsloop.graph.runner import OperateLoop
from opsloop.policy import Policies, load_policies
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState
from opsloop.tools.runbook_index import RunbookIndex

# No test may reach a real model: opsloop.llm refuses non-loopback endpoints under this flag,
# and a developer's own model settings must not switch the offline tests to the model path.
os.environ["OPSLOOP_TESTING"] = "1"
for _name in ("OPSLOOP_LLM_BASE_URL", "OPSLOOP_LLM_MODEL", "OPSLOOP_LLM_API_KEY"):
    os.environ.pop(_name, None)
# Retrieval scores are calibrated per embedding backend: tests that do not name one get the
# deterministic hashing backend, whatever the machine has installed or the shell exports.
os.environ["OPSLOOP_EMBEDDING_BACKEND"] = "hashing"

# The settings that decide what a runbook index holds and how it scores.
_RETRIEVAL_FIELDS = ("runbook_dirs", "embedding_backend", "embedding_model",
                     "embedding_base_url", "embedding_api_key_env", "no_match_threshold")

Detect = Callable[[OperateLoop, str, int], tuple[watch.ScenarioRun, SimEnvironment]]


def _retrieval(settings: Settings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in _RETRIEVAL_FIELDS}


@pytest.fixture(scope="session")
def shipped_policies() -> Policies:
    """policies/ as shipped, loaded once; Policies is frozen, so tests can share it."""
    return load_policies(Settings().policies_dir)


@pytest.fixture(scope="session")
def runbook_index(tmp_path_factory: pytest.TempPathFactory) -> RunbookIndex:
    """runbooks/ as shipped, indexed once per run; searching never changes the index."""
    return RunbookIndex.from_settings(Settings(work_dir=tmp_path_factory.mktemp("runbooks")))


@pytest.fixture(scope="session")
def make_loop(shipped_policies: Policies,
              runbook_index: RunbookIndex) -> Callable[[Settings], OperateLoop]:
    """`make_loop(settings)`: an OperateLoop (the caller closes it) that reuses the shipped
    policies and the session's runbook index whenever `settings` would load the same ones."""
    shipped = Settings()

    def build(settings: Settings) -> OperateLoop:
        same_policies = (settings.policies_dir == shipped.policies_dir
                         and settings.allow_unsafe_policies == shipped.allow_unsafe_policies)
        same_index = _retrieval(settings) == _retrieval(shipped)
        return OperateLoop(settings, shipped_policies if same_policies else None,
                           runbook_index if same_index else None)

    return build


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(work_dir=tmp_path / "work")


@pytest.fixture
def loop(settings: Settings, make_loop: Callable[[Settings], OperateLoop]
         ) -> Iterator[OperateLoop]:
    loop = make_loop(settings)
    yield loop
    loop.close()


def cached_detect(detect: Detect) -> Detect:
    """`detect`, remembering each result; a repeat gets a copy as a new simulation."""
    seen: dict[tuple[str, int, str], tuple[watch.ScenarioRun, SimState]] = {}

    @functools.wraps(detect)
    def detect_once(loop: OperateLoop, name: str, seed: int
                    ) -> tuple[watch.ScenarioRun, SimEnvironment]:
        key = (name, seed, loop.policies.model_dump_json())
        if key not in seen:
            run, env = detect(loop, name, seed)
            seen[key] = copy.deepcopy(run), copy.deepcopy(env.state)
            return run, env
        run, state = seen[key]
        # A new simulation gives the copy what a real one gets (reference, file, origin).
        ref, env = new_simulation(name, seed, loop.settings)
        env.state = copy.deepcopy(state)
        if env.autosave_path is not None:
            env.save(env.autosave_path)
        incidents = [i.model_copy(update={"id": loop.store.next_incident_id(),
                                          "environment": ref}, deep=True)
                     for i in run.incidents]
        return dataclasses.replace(run, environment=ref, incidents=incidents,
                                   loop_seconds=[]), env

    return detect_once


@pytest.fixture(scope="session", autouse=True)
def _detect_each_scenario_once() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(watch, "detect", cached_detect(watch.detect))
        yield
