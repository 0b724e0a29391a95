"""Shared fixtures for the loop tests: an isolated work dir and a loop bound to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.graph.runner import OperateLoop
from opsloop.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(work_dir=tmp_path / "work")


@pytest.fixture
def loop(settings: Settings) -> Iterator[OperateLoop]:
    loop = OperateLoop(settings)
    yield loop
    loop.close()
