"""Approval decisions over HTTP: bodies are bounded like the webhook's, a change outside its
allowed range is a 422 naming it, and either way the approval still waits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import bearer, work_awaiting_approval
from pydantic import SecretStr

from opsloop.api.auth import load_tokens
from opsloop.api.routes import DECISION_MAX_BODY_BYTES
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import running_api
from opsloop.policy import load_policies
from opsloop.settings import Settings

APPROVER = "approver-token-0123456789abcdef"


@pytest.fixture
def api(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[httpx.Client, str]]:
    settings = Settings(work_dir=tmp_path / "work",
                        api_tokens=SecretStr(f"ana:approve:{APPROVER}"))
    work_awaiting_approval(tmp_path_factory, settings.work_dir)
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    with running_api(runtime, load_tokens(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=60, headers=bearer(APPROVER)) as client:
        [waiting] = client.get("/api/v1/approvals").json()
        yield client, f"/api/v1/approvals/{waiting['id']}"


def still_waiting(client: httpx.Client) -> int:
    return len(client.get("/api/v1/approvals").json())


def test_a_decision_body_over_the_limit_is_413_and_decides_nothing(
    api: tuple[httpx.Client, str],
) -> None:
    client, path = api
    reason = "x" * DECISION_MAX_BODY_BYTES
    declared = client.post(f"{path}/approve", json={"reason": reason})
    assert declared.status_code == 413
    assert declared.json()["detail"][0]["loc"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams in
        yield b'{"reason": "'
        for _ in range(DECISION_MAX_BODY_BYTES // 1024 + 1):
            yield b"y" * 1024
        yield b'"}'

    streamed = client.post(f"{path}/reject", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert still_waiting(client) == 1


def test_bad_decision_bodies_are_4xx_naming_the_field(api: tuple[httpx.Client, str]) -> None:
    client, path = api
    cases = [
        (f"{path}/reject", b"{}", 422, "body.reason"),
        (f"{path}/reject", b"", 422, "body"),
        (f"{path}/approve", b"[1]", 422, "body"),
        (f"{path}/approve", b"{not json", 400, "body"),
        (f"{path}/approve", b'{"by": "mallory"}', 422, "body.by"),
        (f"{path}/modify", b'{"set": {"replicas": [12]}}', 422, "body.set.replicas"),
        (f"{path}/modify", b'{"set": {}}', 422, "body.set"),
    ]
    for url, body, status, loc in cases:
        answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["detail"][0]["loc"] == loc, (body, answer.text)
        assert "pydantic" not in answer.text
    assert still_waiting(client) == 1
    kinds = client.post(f"{path}/modify", json={"set": {"replicas": [12]}}).json()["detail"]
    assert kinds == [{"loc": "body.set.replicas",
                      "msg": "must be text, a number or true/false, not a list"}]


def test_a_change_the_action_does_not_allow_is_422_and_the_approval_waits(
    api: tuple[httpx.Client, str],
) -> None:
    client, path = api
    answer = client.post(f"{path}/modify", json={"set": {"replicas": 12}})
    assert answer.status_code == 422, answer.text
    assert "replicas" in answer.json()["detail"]
    assert "to_version" in answer.json()["detail"]  # what is allowed instead
    assert still_waiting(client) == 1
    not_finite = client.post(f"{path}/modify", content=b'{"set": {"to_version": NaN}}',
                             headers={"Content-Type": "application/json"})
    assert not_finite.status_code == 422 and "to_version" in not_finite.json()["detail"]
    assert still_waiting(client) == 1
    fixed = client.post(f"{path}/modify", json={"set": {"to_version": "2.13.2"}})
    assert fixed.status_code in (200, 202), fixed.text
    assert fixed.json()["by"] == "ana"
