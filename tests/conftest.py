"""Shared fixtures for the loop tests: an isolated work dir and a loop bound to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.graph.runner import OperateLoop
from opsloop.settings import Settings

# No test may reach a real model: opsloop.llm refuses non-loopback endpoints under this flag,
# and a developer's own model settings must not switch the offline tests to the model path.
os.environ["OPSLOOP_TESTING"] = "1"
for _name in ("OPSLOOP_LLM_BASE_URL", "OPSLOOP_LLM_MODEL", "OPSLOOP_LLM_API_KEY"):
    os.environ.pop(_name, None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(work_dir=tmp_path / "work")


@pytest.fixture
def loop(settings: Settings) -> Iterator[OperateLoop]:
    loop = OperateLoop(settings)
    yield loop
    loop.close()
