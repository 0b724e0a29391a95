"""Every request fits the model's context: huge tool output and long alert text included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai.chat_models.base import _convert_dict_to_message
from llm_server import model_settings
from pydantic import BaseModel

from opsloop.graph.runner import OperateLoop
from opsloop.llm.budget import (
    ELIDED,
    TOOLS_SHARE,
    PromptTooLarge,
    estimate_tokens,
    fit_messages,
    prompt_budget,
    tools_that_fit,
)
from opsloop.llm.client import ModelClient
from opsloop.llm.config import ModelConfigError, build_chat_model, model_client
from opsloop.llm.prompting import data_block, data_blocks
from opsloop.llm.testing import Fault, ScriptedServer
from opsloop.llm.toolloop import Limits, LoopFailed, Tool, ToolLoop
from opsloop.settings import Settings
from opsloop.watch import run_scenario

CONTEXT = 4096
SYSTEM = "You are a careful operations assistant. Answer in JSON. " * 20


class Answer(BaseModel):
    answer: str


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as s:
        yield s


def client_for(tmp_path: Path, server: ScriptedServer, **extra: Any) -> ModelClient:
    settings = model_settings(tmp_path, server, llm_context_tokens=CONTEXT, **extra)
    chat = build_chat_model(settings)
    assert chat is not None
    return ModelClient(chat, settings)


def call(name: str, call_id: str, **args: Any) -> Fault:
    return Fault("reply", message={"tool_calls": [{"id": call_id, "type": "function",
                                                   "function": {"name": name,
                                                                "arguments": json.dumps(args)}}]})


def huge_tool(size: int) -> Tool:
    def handler(args: dict[str, Any]) -> dict[str, Any]:
        return {"status": "ok", "summary": f"log lines of {args.get('service')}",
                "lines": [f"{i:05d} " + "error connecting upstream " * 8 for i in range(size)],
                "detail": "z" * (size * 40)}
    return Tool("logs", "log lines of a service", {"type": "object", "properties": {
        "service": {"type": "string"}}, "required": ["service"]}, handler)


def long_alerts(n: int) -> HumanMessage:
    alerts = [{"name": f"HighErrorRate{i}", "service": "checkout",
               "annotations": {"description": "the error ratio is far above normal. " * 150}}
              for i in range(n)]
    return HumanMessage("Diagnose the incident below.\n\n" + data_block("incident", {
        "id": "INC-7", "alerts": alerts}))


def sent(server: ScriptedServer) -> list[tuple[list[BaseMessage], Any]]:
    return [([_convert_dict_to_message(m) for m in e.request["messages"]],
             e.request.get("tools")) for e in server.exchanges]


def test_no_request_exceeds_the_budget_with_huge_tool_output_and_long_alerts(
        tmp_path: Path, server: ScriptedServer) -> None:
    client = client_for(tmp_path, server)
    budget = prompt_budget(client.settings)
    server.script(*[call("logs", f"c{i}", service=f"svc{i}") for i in range(5)],
                  Fault("reply", message={"content": json.dumps({"answer": "done"})}))
    loop = ToolLoop(client, [huge_tool(400)], Answer, Limits(8, 8, 50_000),
                    incident_id="INC-7", specialist="test")
    result = loop.run([SystemMessage(SYSTEM), long_alerts(60)])
    assert result.output.answer == "done"
    requests = sent(server)
    assert len(requests) == 6
    for messages, tools in requests:
        assert estimate_tokens(messages, tools) <= budget
        assert messages[0].content == SYSTEM  # the instructions are never cut
        for m in messages[1:]:
            text = str(m.content)
            # Every block that opens also closes and still decodes: delimiters survive.
            assert text.count("<data ") == sum(len(v) for v in data_blocks(text).values())
    # Unfitted, the same conversation is many times over the budget.
    last, tools = requests[-1]
    assert any("prompt shortened" in n for n in result.trace.notes)
    assert result.trace.trimmed > 0 and estimate_tokens(last, tools) > budget // 4


def test_oldest_tool_output_gives_way_first() -> None:
    system = SystemMessage(SYSTEM)
    results = [ToolMessage(data_block("tool_result", {"status": "ok", "n": i,
                                                      "body": "w" * 3000}), tool_call_id=f"c{i}")
               for i in range(3)]
    messages: list[BaseMessage] = [system, HumanMessage("go"), *results]
    full = estimate_tokens(messages)
    fitted, shortened = fit_messages(messages, None, full - 600)
    sizes = [len(str(m.content)) for m in fitted[2:]]
    assert shortened == 1 and sizes[0] < sizes[1] == sizes[2]
    assert fitted[0] is system


def test_tool_results_end_as_their_status_when_nothing_else_is_left() -> None:
    fields = {f"field{j}": "v" * 80 for j in range(30)}  # an outline still holds them all
    results = [ToolMessage(data_block("tool_result", {"status": "ok", **fields}),
                           tool_call_id=f"c{i}") for i in range(10)]
    messages: list[BaseMessage] = [SystemMessage("answer"), HumanMessage("go"), *results]
    fitted, _ = fit_messages(messages, None, 1200)
    assert estimate_tokens(fitted) <= 1200
    assert ELIDED in str(fitted[2].content) and ELIDED not in str(fitted[-1].content)
    assert all(isinstance(m, ToolMessage) for m in fitted[2:])  # every call keeps its answer


def test_instructions_alone_over_the_budget_are_refused_not_cut() -> None:
    with pytest.raises(PromptTooLarge, match="over the 500"):
        fit_messages([SystemMessage(SYSTEM * 4), HumanMessage("go")], None, 500)


def test_a_loop_whose_instructions_cannot_fit_fails_without_calling(
        tmp_path: Path, server: ScriptedServer) -> None:
    client = client_for(tmp_path, server)
    loop = ToolLoop(client, [], Answer, Limits(1, 0, 1000), incident_id="INC-8",
                    specialist="test")
    with pytest.raises(LoopFailed, match="instructions and tool list alone"):
        loop.run([SystemMessage(SYSTEM * 12), HumanMessage("go")])
    assert server.exchanges == []


def test_a_full_context_means_conclude_without_tools(
        tmp_path: Path, server: ScriptedServer) -> None:
    client = client_for(tmp_path, server)
    server.script(call("logs", "c1", service="a"),
                  Fault("reply", message={"content": json.dumps({"answer": "from evidence"})}))
    big_tools = [huge_tool(10)] + [
        Tool(f"tool{i}", "d" * 900, {"type": "object", "properties": {}}, lambda _a: {})
        for i in range(8)]
    loop = ToolLoop(client, big_tools, Answer, Limits(6, 8, 50_000), incident_id="INC-9",
                    specialist="test")
    result = loop.run([SystemMessage(SYSTEM), long_alerts(8)])
    assert result.output.answer == "from evidence"
    assert "concluding: the model's context is full" in result.trace.notes
    assert server.exchanges[-1].request.get("tools") is None


def test_a_context_too_small_for_the_reply_cap_is_a_setting_error(
        tmp_path: Path, server: ScriptedServer) -> None:
    settings = model_settings(tmp_path, server, llm_context_tokens=1500,
                              llm_max_output_tokens=1024)
    with pytest.raises(ModelConfigError, match="OPSLOOP_LLM_CONTEXT_TOKENS=1500"):
        model_client(settings)


def test_a_whole_incident_on_the_default_context_stays_within_it(tmp_path: Path) -> None:
    with ScriptedServer() as server:
        settings = Settings(work_dir=tmp_path, llm_base_url=server.url, llm_model="scripted",
                            llm_timeout_seconds=5.0)
        assert settings.llm_context_tokens == CONTEXT
        loop = OperateLoop(settings)
        try:
            incident = run_scenario(loop, "dependency_outage", 7, lambda _m: None).incidents[0]
        finally:
            loop.close()
        budget = prompt_budget(settings)
        requests = sent(server)
    assert requests and incident.severity is not None
    assert max(estimate_tokens(m, t) for m, t in requests) <= budget
    # The runbook checks come first among the tools offered, and the tool list stays within
    # its share of the prompt, so evidence has room beside it.
    offered = [[s["function"]["name"] for s in t] for _m, t in requests if t]
    assert offered and all(names[0] == "run_runbook_checks" for names in offered)
    assert all(estimate_tokens([], t) <= budget * TOOLS_SHARE for _m, t in requests if t)
    assert any("tools (the runbook checks first)" in e.message for e in incident.timeline)


def test_tools_that_fit_keep_the_order_and_at_least_one() -> None:
    schemas = [Tool(f"t{i}", "d" * 300, {"type": "object", "properties": {}},
                    lambda _a: {"status": "ok"}).schema() for i in range(10)]
    assert tools_that_fit(schemas, 100_000) == 10
    few = tools_that_fit(schemas, 2_000)
    assert 1 <= few < 10
    assert estimate_tokens([], schemas[:few]) <= 2_000 * TOOLS_SHARE
    assert estimate_tokens([], schemas[:few + 1]) > 2_000 * TOOLS_SHARE
    assert tools_that_fit(schemas, 10) == 1
    assert tools_that_fit([], 10) == 0
