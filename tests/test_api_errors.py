"""What the API says when its own data is bad: a stored record that no longer validates never
shows a caller a traceback, pydantic's wording or the record's contents."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import bearer, work_awaiting_approval
from pydantic import SecretStr

from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import running_api
from opsloop.policy import load_policies
from opsloop.settings import Settings

ADMIN = "errors-admin-token-0123456789abcdef"
SECRET_ISH = "stored-value-no-caller-should-see"


@pytest.fixture
def damaged(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[httpx.Client, str, str]]:
    """A served work dir whose waiting approval's stored request no longer validates."""
    settings = Settings(work_dir=tmp_path / "work", api_tokens=SecretStr(f"root:admin:{ADMIN}"))
    incident_id = work_awaiting_approval(tmp_path_factory, settings.work_dir)
    with sqlite3.connect(settings.state_dir / "opsloop.db") as db:
        [(approval_id,)] = db.execute("SELECT id FROM approvals WHERE status='pending'")
        db.execute("UPDATE approvals SET request=? WHERE id=?",
                   (f'{{"id": "{approval_id}", "severity": "{SECRET_ISH}"}}', approval_id))
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    with running_api(runtime, load_tokens(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=60, headers=bearer(ADMIN)) as client:
        yield client, incident_id, approval_id


def test_a_decision_on_an_unreadable_approval_leaks_nothing(
    damaged: tuple[httpx.Client, str, str],
) -> None:
    client, _, approval_id = damaged
    answer = client.post(f"/api/v1/approvals/{approval_id}/approve", json={"reason": "go"})
    assert answer.status_code == 500
    assert answer.json()["detail"].startswith("internal error answering POST /api/v1/approvals/")
    for leak in ("Traceback", "pydantic", "validation error", "ValidationError", SECRET_ISH):
        assert leak not in answer.text
    assert client.get("/healthz").status_code == 200  # one bad record, not a dead server
