"""A bounded tool-calling loop that ends in a validated answer, or says why it could not.

Safeguards, each a setting: model calls per loop (`llm_max_steps`; the last one is offered
no tools, so it must conclude), tool calls per loop (`llm_max_tool_calls`), the incident's
token budget (once spent, the next call must conclude), tool output trimmed to
`llm_tool_output_chars`, and every request fitted to the model's context
(`opsloop.llm.budget`: older tool output summarised first, never the instructions; when
the evidence no longer fits beside the tool list, the next call must conclude). A repeated
identical call or a call to a tool that does not exist comes back to the model as an error
result, and the second of either means conclude. An answer that does not validate gets one
repair request; a second failure ends the loop (`LoopFailed`). So does asking for tools
when none were offered — a loop without tools treats a tool call as an answer that did not
validate.

Whatever the model returns, a loop makes at most `llm_max_steps + 1` model calls (the one
repair on top): the loop itself is a `for` over that many, not a `while` on good behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel

from opsloop.llm.budget import PromptTooLarge, fit_messages, prompt_budget
from opsloop.llm.client import ModelClient, ModelUnavailable
from opsloop.llm.prompting import data_block, fit, prompt
from opsloop.llm.structured import InvalidOutput, parse_output
from opsloop.models import ModelCall

T = TypeVar("T", bound=BaseModel)
ToolHandler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_STRIKES = 2  # repeated calls, or calls to tools that do not exist, before concluding


@dataclass(frozen=True)
class Tool:
    """A tool the model may call: its OpenAI function schema and the code that answers."""

    name: str
    description: str
    parameters: dict[str, Any]
    handler: ToolHandler

    def schema(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True)
class Limits:
    max_steps: int
    max_tool_calls: int
    tool_output_chars: int

    @property
    def max_calls(self) -> int:
        """Model calls a loop may make at most: its steps and one repair."""
        return max(1, self.max_steps) + 1


# A loop that wants one answer and offers no tools: the answer, and one repair at most.
ANSWER_ONLY = Limits(max_steps=1, max_tool_calls=0, tool_output_chars=0)


@dataclass
class ToolRecord:
    call_id: str
    name: str
    args: dict[str, Any]
    payload: dict[str, Any]


@dataclass
class LoopTrace:
    calls: list[ModelCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # retries, repairs, caps: for the timeline
    tools: dict[str, ToolRecord] = field(default_factory=dict)  # by tool-call id
    steps: int = 0
    tool_calls: int = 0
    trimmed: int = 0  # tool results shortened before the model saw them


@dataclass
class LoopResult(Generic[T]):
    output: T
    trace: LoopTrace


class LoopFailed(Exception):
    def __init__(self, reason: str, trace: LoopTrace) -> None:
        super().__init__(reason)
        self.reason = reason
        self.trace = trace


def _key(name: str, args: dict[str, Any]) -> str:
    return f"{name}:{json.dumps(args, sort_keys=True, default=str)}"


class ToolLoop(Generic[T]):
    def __init__(self, client: ModelClient, tools: list[Tool], output: type[T], limits: Limits,
                 *, incident_id: str, specialist: str, purpose: str = "specialist") -> None:
        self.client = client
        self.tools = {t.name: t for t in tools}
        self.output = output
        self.limits = limits
        self.incident_id = incident_id
        self.specialist = specialist
        self.purpose = purpose
        self.trace = LoopTrace()
        self._seen: dict[str, str] = {}
        self._repeats = 0
        self._unknown = 0

    def run(self, messages: list[BaseMessage]) -> LoopResult[T]:
        try:
            return self._run(list(messages))
        except PromptTooLarge as exc:
            raise self._failed(str(exc)) from exc

    def _run(self, messages: list[BaseMessage]) -> LoopResult[T]:
        repaired = False
        concluding = ""
        for _ in range(self.limits.max_calls):
            left = self.client.ledger.left(self.incident_id)
            if left <= 0 and self.trace.steps == 0:
                raise self._failed("the incident's token budget is spent")
            why = self._must_conclude(left)
            if why and not concluding:
                concluding = why
                self.trace.notes.append(f"concluding: {why}")
                messages.append(HumanMessage(prompt("conclude", reason=why)))
            offered = bool(self.tools) and not (concluding or repaired)
            schemas = [t.schema() for t in self.tools.values()] if offered else None
            try:
                messages = self._within_context(messages, schemas)
            except PromptTooLarge:
                if not offered:
                    raise
                # The tool list is the largest part that cannot be cut: without it, the
                # evidence gathered so far fits, and the model must conclude from it.
                concluding = "the model's context is full"
                self.trace.notes.append(f"concluding: {concluding}")
                messages.append(HumanMessage(prompt("conclude", reason=concluding)))
                offered, schemas = False, None
                messages = self._within_context(messages, schemas)
            try:
                reply = self.client.call(
                    messages, incident_id=self.incident_id, purpose=self.purpose,
                    specialist=self.specialist, output=self.output, tools=schemas)
            except ModelUnavailable as exc:
                self.trace.calls.append(exc.call)
                self.trace.notes += exc.notes
                raise self._failed(str(exc)) from exc
            self.trace.calls.append(reply.call)
            self.trace.notes += reply.notes
            self.trace.steps += 1
            ai = reply.message
            asked = ai.tool_calls or ai.invalid_tool_calls
            if asked and offered:
                messages.append(ai)
                messages += self._answer_tools(ai)
                continue
            try:
                if asked:
                    raise InvalidOutput("tools were not offered for this answer; reply with the "
                                        "JSON answer only")
                return LoopResult(parse_output(reply.text, self.output), self.trace)
            except InvalidOutput as exc:
                reply.call.outcome = "invalid"
                reply.call.error = str(exc)[:300]
                if repaired:
                    raise self._failed(f"the answer did not validate after a repair: {exc}"
                                       ) from exc
                repaired = True
                self.trace.notes.append(f"answer did not validate ({str(exc)[:200]}); "
                                        "asked once for a repair")
                messages += [AIMessage(content=reply.text[:2000]),
                             HumanMessage(prompt("repair", errors=str(exc)[:1000]))]
        raise self._failed(f"no usable answer within {self.limits.max_calls} model calls")

    def _within_context(self, messages: list[BaseMessage],
                        schemas: list[dict[str, Any]] | None) -> list[BaseMessage]:
        """The conversation fitted to the context (oldest tool output gives way first)."""
        budget = prompt_budget(self.client.settings)
        fitted, shortened = fit_messages(messages, schemas, budget)
        if shortened:
            self.trace.trimmed += shortened
            self.trace.notes.append(f"prompt shortened to fit {budget:,} tokens: "
                                    f"{shortened} message(s) summarised")
        return fitted

    def _failed(self, reason: str) -> LoopFailed:
        """The loop's end without an answer; the reason goes on its last call's record."""
        if self.trace.calls and not self.trace.calls[-1].error:
            self.trace.calls[-1].error = reason[:300]
        return LoopFailed(reason, self.trace)

    def _must_conclude(self, tokens_left: int) -> str:
        if not self.tools:
            return ""  # a plain answer was asked for: nothing to stop
        if self.trace.steps >= self.limits.max_steps - 1:
            return f"this is the last of {self.limits.max_steps} model calls"
        if self.trace.tool_calls >= self.limits.max_tool_calls:
            return f"the {self.limits.max_tool_calls} tool calls allowed are used"
        if tokens_left <= 0:
            return "the incident's token budget is spent"
        if self._repeats >= MAX_STRIKES:
            return "the same tool calls were repeated"
        if self._unknown >= MAX_STRIKES:
            return "tools that do not exist were called"
        return ""

    def _answer_tools(self, ai: AIMessage) -> list[ToolMessage]:
        out = []
        for bad in ai.invalid_tool_calls:
            payload = {"status": "error", "error": f"arguments of {bad.get('name')} are not "
                       f"valid JSON: {str(bad.get('args'))[:200]}"}
            out.append(self._message(str(bad.get("id") or ""), payload, error=True))
        for call in ai.tool_calls:
            call_id = str(call.get("id") or f"call_{self.trace.tool_calls}")
            name, args = call["name"], dict(call.get("args") or {})
            key = _key(name, args)
            if key in self._seen:
                self._repeats += 1
                payload = {"status": "error", "error": "repeated call: identical to "
                           f"{self._seen[key]}, whose result you already have"}
            elif self.trace.tool_calls >= self.limits.max_tool_calls:
                payload = {"status": "error", "error": "tool call cap reached; conclude now"}
            elif name not in self.tools:
                self._unknown += 1
                payload = {"status": "error", "error": f"unknown tool {name!r}; the tools are "
                           f"{', '.join(sorted(self.tools))}"}
            else:
                self._seen[key] = call_id
                self.trace.tool_calls += 1
                payload = self.tools[name].handler(args)
                self.trace.tools[call_id] = ToolRecord(call_id, name, args, payload)
            out.append(self._message(call_id, payload, error=payload.get("status") == "error"))
        return out

    def _message(self, call_id: str, payload: dict[str, Any], *, error: bool) -> ToolMessage:
        shown, trimmed = fit(payload, self.limits.tool_output_chars)
        self.trace.trimmed += trimmed
        return ToolMessage(content=data_block("tool_result", shown), tool_call_id=call_id,
                           status="error" if error else "success")
