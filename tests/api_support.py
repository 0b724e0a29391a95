"""Shared by the API tests: a work dir holding one incident awaiting approval, built once per
test run and copied, and small request helpers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from opsloop.graph.runner import OperateLoop
from opsloop.settings import Settings
from opsloop.watch import run_scenario

_built: dict[str, tuple[Path, str]] = {}


def work_awaiting_approval(factory: pytest.TempPathFactory, into: Path) -> str:
    """Copy a work dir where bad_deploy (seed 7) waits for a human into `into`; the
    incident's id."""
    if "bad_deploy" not in _built:
        work = factory.mktemp("awaiting-approval") / "work"
        loop = OperateLoop(Settings(work_dir=work))
        try:
            run = run_scenario(loop, "bad_deploy", 7, lambda _: None)
        finally:
            loop.close()
        [incident] = run.incidents
        assert incident.status.value == "awaiting_approval"
        _built["bad_deploy"] = (work, incident.id)
    work, incident_id = _built["bad_deploy"]
    shutil.copytree(work, into)
    return incident_id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "opsloop", "groupKey": "{}",
            "alerts": list(alerts)}


def alert(service: str, **labels: str) -> dict[str, Any]:
    return {"status": "firing", "startsAt": "2026-11-26T11:58:01Z",
            "labels": {"alertname": "HighErrorRate", "service": service, "env": "prod",
                       **labels}}
