"""The rollout routes with FastAPI's TestClient against a served simulation: read the flags,
the owner's verbs as the caller's identity, and each refusal with its status."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from test_rollouts_agent import FLAG, simulated, with_plan

from opsloop.api.app import create_app
from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.environments import remote_ref
from opsloop.policy import Policies
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState
from opsloop.simulator.server import SimServer

READ, APPROVE = "read-token-0123456789abcdef", "approve-token-0123456789abcdef"
TOKENS = f"viewer:read:{READ},ana:approve:{APPROVE}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def healthy() -> SimState:
    return simulated(5, 40)


@pytest.fixture
def api(healthy: SimState, settings: Settings, shipped_policies: Policies
        ) -> Iterator[tuple[TestClient, SimServer]]:
    server = SimServer(SimEnvironment(copy.deepcopy(healthy)), hold_scenario=True).start()
    settings = settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    runtime = IntakeRuntime(settings, with_plan(shipped_policies), remote_ref(server.url))
    app = create_app(runtime, load_tokens(settings), names=frozenset({"testserver"}))
    try:
        with TestClient(app) as client:
            yield client, server
    finally:
        runtime.close_unstarted()
        server.stop()


def flag_state(server: SimServer) -> tuple[bool, float]:
    flag = next(f for f in server.env.flags() if f.key == FLAG)
    return flag.enabled, flag.rollout_percent


def test_the_flags_and_one_flag_are_read_with_the_agents_decision(
        api: tuple[TestClient, SimServer]) -> None:
    client, _ = api
    rows = client.get("/api/v1/rollouts", headers=auth(READ)).json()
    (mine,) = [r for r in rows if r["key"] == FLAG]
    assert (mine["managed"], mine["percent"], mine["next_step"]) == (True, 5, 25)
    shown = client.get(f"/api/v1/rollouts/{FLAG}", headers=auth(READ)).json()
    assert shown["decision"]["action"] == "advance" and shown["owner_state"]["hold"] is None
    missing = client.get("/api/v1/rollouts/dark-mode", headers=auth(READ))
    assert missing.status_code == 404 and "does not manage 'dark-mode'" in \
        missing.json()["detail"]


def test_the_owners_verbs_as_the_callers_identity(api: tuple[TestClient, SimServer]) -> None:
    client, server = api
    url = f"/api/v1/rollouts/{FLAG}"
    assert client.post(f"{url}/hold", json={"reason": "sale"}, headers=auth(READ)
                       ).status_code == 403
    held = client.post(f"{url}/hold", json={"reason": "sale"}, headers=auth(APPROVE))
    assert held.status_code == 200 and held.json()["hold"]["by"] == "ana"
    again = client.post(f"{url}/hold", json={"reason": "twice"}, headers=auth(APPROVE))
    assert again.status_code == 409 and "already held by ana" in again.json()["detail"]
    shown = client.get(url, headers=auth(READ)).json()
    assert shown["decision"]["action"] == "held"
    assert client.post(f"{url}/advance", headers=auth(APPROVE)).status_code == 409
    assert client.post(f"{url}/resume", headers=auth(APPROVE)).status_code == 200
    moved = client.post(f"{url}/advance", json={"to": 25}, headers=auth(APPROVE))
    assert moved.status_code == 200, moved.text
    body: dict[str, Any] = moved.json()
    assert body["approval"]["by"] == "ana" and body["result"]["status"] == "succeeded"
    assert body["decision"]["rule"] == "rollouts.yaml:defaults.advances"
    assert flag_state(server) == (True, 25)
    killed = client.post(f"{url}/kill", json={"reason": "support tickets"},
                         headers=auth(APPROVE))
    assert killed.status_code == 200 and killed.json()["result"]["status"] == "succeeded"
    assert flag_state(server) == (False, 0)
    answered = client.post(f"{url}/answer", json={"answer": "temporary"},
                           headers=auth(APPROVE))
    assert answered.status_code == 200 and answered.json()["answer"]["answer"] == "temporary"
    verbs = [e["verb"] for e in client.get(url, headers=auth(READ)).json()["owner_state"]
             ["history"]]
    assert verbs == ["hold", "resume", "advance", "kill", "answer"]


@pytest.mark.parametrize(("verb", "body", "status", "says"), [
    ("advance", {"to": 30}, 409, "not a step"),
    ("advance", {"to": 5}, 409, "already"),
    ("advance", {"to": "lots"}, 422, "body.to"),
    ("advance", {"percent": 25}, 422, "body.percent"),
    ("hold", {}, 422, "body.reason"),
    ("kill", {"reason": ""}, 422, "body.reason"),
    ("answer", {"answer": "later"}, 422, "body.answer"),
    ("answer", {"answer": "rework"}, 409, "is not killed"),
    ("resume", None, 409, "is not held"),
])
def test_refusals_say_why_with_their_status(api: tuple[TestClient, SimServer], verb: str,
                                            body: dict[str, Any] | None, status: int,
                                            says: str) -> None:
    client, server = api
    answer = client.post(f"/api/v1/rollouts/{FLAG}/{verb}", json=body, headers=auth(APPROVE))
    assert answer.status_code == status, answer.text
    assert says in str(answer.json()["detail"])
    assert flag_state(server) == (True, 5)


def test_an_unknown_flags_verb_is_not_found(api: tuple[TestClient, SimServer]) -> None:
    client, _ = api
    answer = client.post("/api/v1/rollouts/nope/hold", json={"reason": "x"},
                         headers=auth(APPROVE))
    assert answer.status_code == 404 and "does not manage 'nope'" in answer.json()["detail"]


def test_a_change_still_verifying_answers_202_and_finishes(
        healthy: SimState, settings: Settings, shipped_policies: Policies) -> None:
    import time

    # Production's minutes take real time here: the verification window outlasts the wait.
    server = SimServer(SimEnvironment(copy.deepcopy(healthy)), hold_scenario=True,
                       minute_seconds=0.5).start()
    settings = settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    runtime = IntakeRuntime(settings, with_plan(shipped_policies), remote_ref(server.url))
    app = create_app(runtime, load_tokens(settings), names=frozenset({"testserver"}))
    try:
        with TestClient(app) as client:
            started = client.post(f"/api/v1/rollouts/{FLAG}/kill", json={"reason": "x"},
                                  headers=auth(APPROVE))
            assert started.status_code == 202, started.text
            assert started.json() == {"flag": FLAG, "verb": "kill", "by": "ana",
                                      "status": "running"}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                    e["verb"] == "kill" for e in client.get(
                        f"/api/v1/rollouts/{FLAG}", headers=auth(READ)).json()
                    ["owner_state"]["history"]):
                time.sleep(0.5)
            assert flag_state(server) == (False, 0) and runtime.errors == []
    finally:
        runtime.pool.shutdown(wait=True)
        runtime.close_unstarted()
        server.stop()
