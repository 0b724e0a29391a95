"""The structured-output fallback: the HTTP status of a rejected structured request decides.

A server that rejects `response_format` is asked again at once one level down; what it
answered at is remembered by the client. Statuses about credentials, addresses, rate limits
and overload never step down (they are retried or raised as before).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from llm_server import model_settings, policy_outcome
from pydantic import BaseModel

from opsloop.llm.client import NOT_ABOUT_THE_FORMAT, ModelClient, ModelUnavailable
from opsloop.llm.config import build_chat_model
from opsloop.llm.testing import Fault, ScriptedServer
from opsloop.settings import Settings

START = [SystemMessage("answer in JSON"), HumanMessage("go")]
ECHO = {"type": "function", "function": {"name": "echo", "description": "echo",
        "parameters": {"type": "object", "properties": {}}}}

pytestmark = pytest.mark.filterwarnings("ignore:This model does not support")


class Answer(BaseModel):
    answer: str


def client_for(tmp_path: Path, server: ScriptedServer, **extra: Any) -> ModelClient:
    settings = model_settings(tmp_path, server, **extra)
    chat = build_chat_model(settings)
    assert chat is not None
    return ModelClient(chat, settings)


def formats(server: ScriptedServer) -> list[str | None]:
    return [(e.request.get("response_format") or {}).get("type") for e in server.exchanges]


def ask(client: ModelClient) -> list[str]:
    reply = client.call(START, incident_id="i", purpose="t", tools=[ECHO], output=Answer)
    assert Answer.model_validate_json(reply.text).answer
    return reply.notes


def test_a_server_error_on_every_format_ends_on_the_plain_path_and_stays_there(
        tmp_path: Path) -> None:
    # llama.cpp's way: HTTP 500 whenever tools and a response_format meet a text answer.
    with ScriptedServer(json_schema=False, json_object=False, refusal_status=500) as server:
        client = client_for(tmp_path, server)
        notes = ask(client)
        ask(client)
        seen = formats(server)
    assert seen == ["json_schema", None, None]
    assert client.format_level == "prompt"
    assert any("500" in n and "trying prompt" in n for n in notes)
    assert notes[-1] == "endpoint answered at response_format level prompt: using it from now on"


@pytest.mark.parametrize("status", [400, 415, 422])
def test_a_client_error_about_the_request_steps_down_one_level(tmp_path: Path, status: int) -> None:
    with ScriptedServer(json_schema=False, refusal_status=status) as server:
        client = client_for(tmp_path, server)
        ask(client)
        ask(client)
        assert formats(server) == ["json_schema", "json_object", "json_object"]
    assert client.format_level == "json_object"


@pytest.mark.parametrize("status", [500, 501])
def test_a_server_error_goes_straight_to_the_plain_path(tmp_path: Path, status: int) -> None:
    # It refuses only json_schema, but a server error says no format will combine.
    with ScriptedServer(json_schema=False, refusal_status=status) as server:
        client = client_for(tmp_path, server)
        ask(client)
        assert formats(server) == ["json_schema", None]
    assert client.format_level == "prompt"


@pytest.mark.parametrize("status", sorted(NOT_ABOUT_THE_FORMAT - {408, 409, 429, 502, 503, 504}))
def test_credentials_and_addresses_do_not_step_down(tmp_path: Path, status: int) -> None:
    with ScriptedServer() as server:
        server.script(Fault.http(status))
        client = client_for(tmp_path, server)
        with pytest.raises(ModelUnavailable):
            ask(client)
        assert formats(server) == ["json_schema"]
    assert client.format_level == "json_schema"


@pytest.mark.parametrize("status", [429, 502, 503])
def test_overload_is_retried_at_the_same_level(tmp_path: Path, status: int) -> None:
    with ScriptedServer() as server:
        server.script(Fault.http(status))
        client = client_for(tmp_path, server)
        notes = ask(client)
        assert formats(server) == ["json_schema", "json_schema"]
    assert client.format_level == "json_schema" and "retried" in notes[0]


def test_a_level_that_fails_too_is_not_remembered(tmp_path: Path) -> None:
    # A one-off 500, then an overloaded server: the step down answered nothing, so the next
    # attempt (a retry) goes back to the schema, which works.
    with ScriptedServer() as server:
        server.script(Fault.http(500), Fault.http(503))
        client = client_for(tmp_path, server)
        ask(client)
        assert formats(server) == ["json_schema", None, "json_schema"]
    assert client.format_level == "json_schema"


def test_a_plain_request_is_never_stepped_down(tmp_path: Path) -> None:
    with ScriptedServer() as server:
        server.script(Fault.http(400))
        client = client_for(tmp_path, server)
        with pytest.raises(ModelUnavailable) as failed:
            client.call(START, incident_id="i", purpose="t")
        assert len(server.exchanges) == 1
    assert failed.value.call.attempts == 1


def test_an_incident_on_a_server_that_refuses_formats_with_500_ends_as_offline(
        tmp_path: Path, make_loop: Any) -> None:
    from opsloop.watch import run_scenario

    with ScriptedServer(json_schema=False, json_object=False, refusal_status=500) as server:
        loop = make_loop(model_settings(tmp_path / "w", server))
        try:
            incident = run_scenario(loop, "bad_deploy", 7, lambda _m: None).incidents[0]
        finally:
            loop.close()
        refused = sum(e.status == 500 for e in server.exchanges)
        last = formats(server)[-1]
    offline_loop = make_loop(model_settings(tmp_path / "o", server).model_copy(
        update={"llm_base_url": None, "llm_model": None}))
    try:
        offline = run_scenario(offline_loop, "bad_deploy", 7, lambda _m: None).incidents[0]
    finally:
        offline_loop.close()
    assert policy_outcome(incident) == policy_outcome(offline)
    assert {d.reasoner for d in incident.diagnoses} == {"model"}
    # Refused once per specialist that asked before the level was known (they run side by
    # side), never again once it is: the last call is plain.
    assert 1 <= refused <= Settings().max_specialists and last is None
    assert "model_format" in [e.kind for e in incident.timeline]
