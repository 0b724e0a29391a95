"""Endpoints that misbehave on every request, one way each, for the hostile-model suite.

`ScriptedServer(hostile=Hostile.ALWAYS_TOOLS)` answers every chat request that way; the
loop must still finish each incident, within its caps, as the offline reasoner would.
Modes that answer with a message read the request (the tools offered, the data blocks)
the way `FakeModel` does, so each misbehaviour lands where it hurts most.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opsloop.llm.prompting import data_blocks
from opsloop.llm.testing.fake_model import FakeModel

INVENTED_TOOL = "run_shell"  # never offered by opsloop


class Hostile(StrEnum):
    ALWAYS_TOOLS = "always_tools"  # a call to an offered tool (an invented one if none is)
    UNKNOWN_TOOLS = "unknown_tools"  # a call to a tool that was never offered
    REPEAT_TOOLS = "repeat_tools"  # the same call with the same arguments, every time
    BAD_ARGUMENTS = "bad_arguments"  # tool calls whose arguments are not JSON
    NO_TOOLS = "no_tools"  # never tests anything: a confident answer at once
    PROSE = "prose"  # friendly prose, no JSON
    INVALID_JSON = "invalid_json"  # JSON cut off halfway
    EMPTY_CHOICES = "empty_choices"  # HTTP 200 with `"choices": []`
    GIANT = "giant"  # the fake model's reply padded to a megabyte
    STALL = "stall"  # accepts the request and never answers
    TRICKLE = "trickle"  # a byte now and then, never the whole body
    RATE_LIMITED = "rate_limited"  # 429 with a short `retry-after-ms`
    UNAVAILABLE = "unavailable"  # 503 with `Retry-After` an hour away


@dataclass(frozen=True)
class Misbehaviour:
    """What the endpoint does with one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    message: dict[str, Any] | None = None  # the assistant message of a 200
    choices: bool = True  # False: a 200 whose `choices` list is empty
    hang: str = ""  # stall | trickle


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _blocks(request: dict[str, Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for m in request.get("messages", []):
        if m.get("role") in ("user", "system"):
            for kind, values in data_blocks(_text(m)).items():
                found.setdefault(kind, []).extend(values)
    return found


def _arguments(tool: dict[str, Any], n: int) -> dict[str, Any]:
    """Arguments that fit the tool's schema, different for every `n`."""
    schema = tool["function"].get("parameters") or {}
    out: dict[str, Any] = {}
    for name, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type")
        out[name] = n if kind in ("integer", "number") else True if kind == "boolean" else (
            spec["enum"][n % len(spec["enum"])] if spec.get("enum") else f"probe-{n}")
    return out


def _tool_call(name: str, arguments: str, n: int) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"hostile_{n}", "type": "function",
         "function": {"name": name, "arguments": arguments}}]}


def _content(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


class HostileModel:
    """One misbehaviour, applied to every request."""

    def __init__(self, mode: Hostile, *, giant_chars: int = 1_000_000,
                 retry_after_ms: int = 50) -> None:
        self.mode = Hostile(mode)
        self.giant_chars = giant_chars
        self.retry_after_ms = retry_after_ms
        self._fake = FakeModel()

    def misbehave(self, request: dict[str, Any], n: int) -> Misbehaviour:
        mode = self.mode
        tools: list[dict[str, Any]] = request.get("tools") or []
        if mode is Hostile.ALWAYS_TOOLS:
            if not tools:
                return Misbehaviour(message=_tool_call(INVENTED_TOOL, json.dumps({"n": n}), n))
            tool = tools[n % len(tools)]
            return Misbehaviour(message=_tool_call(
                tool["function"]["name"], json.dumps(_arguments(tool, n)), n))
        if mode is Hostile.UNKNOWN_TOOLS:
            return Misbehaviour(message=_tool_call(
                INVENTED_TOOL, json.dumps({"command": f"cat /etc/secrets/{n}"}), n))
        if mode is Hostile.REPEAT_TOOLS:
            name = tools[0]["function"]["name"] if tools else INVENTED_TOOL
            args = _arguments(tools[0], 0) if tools else {"n": 0}
            return Misbehaviour(message=_tool_call(name, json.dumps(args), n))
        if mode is Hostile.BAD_ARGUMENTS:
            name = tools[0]["function"]["name"] if tools else INVENTED_TOOL
            return Misbehaviour(message=_tool_call(name, '{"service": "checkout", ', n))
        if mode is Hostile.NO_TOOLS:
            return Misbehaviour(message=_content(json.dumps(self._unfounded(request))))
        if mode is Hostile.PROSE:
            return Misbehaviour(message=_content(
                "I had a good look and I am fairly sure it is the database. Restarting "
                "everything should sort it out. Let me know if you need anything else!"))
        if mode is Hostile.INVALID_JSON:
            return Misbehaviour(message=_content(
                '{"summary": "checkout is down", "hypotheses": [{"cause": "bad deploy", '
                '"confidence": 0.9, "remediation": [{"type": "rollback_deploy",'))
        if mode is Hostile.EMPTY_CHOICES:
            return Misbehaviour(choices=False)
        if mode is Hostile.GIANT:
            return Misbehaviour(message=self._padded(self._fake.respond(request)))
        if mode in (Hostile.STALL, Hostile.TRICKLE):
            return Misbehaviour(hang=mode.value)
        if mode is Hostile.RATE_LIMITED:
            return Misbehaviour(status=429, headers={"retry-after-ms": str(self.retry_after_ms),
                                                     "retry-after": "1"})
        return Misbehaviour(status=503, headers={"retry-after": "3600"})

    def _unfounded(self, request: dict[str, Any]) -> dict[str, Any]:
        """A schema-valid answer that tested nothing, as sure of itself as it can be."""
        blocks = _blocks(request)
        if "runbooks" not in blocks:
            return json.loads(self._fake.respond(request)["content"])
        services = blocks["incident"][0].get("affected_services") or ["unknown"]
        return {"summary": "Certainly the database; no need to check.", "hypotheses": [{
            "cause": "the database is overloaded", "category": "dependency_failure",
            "service": services[0], "confidence": 0.99, "evidence": ["call_1"],
            "remediation": [{"type": "restart", "service": s, "reason": "always works"}
                            for s in services]}]}

    def _padded(self, message: dict[str, Any]) -> dict[str, Any]:
        """The same reply, made enormous where a reader would still accept it."""
        padding = "x" * self.giant_chars
        if message.get("tool_calls"):
            first, *rest = message["tool_calls"]
            args = {**json.loads(first["function"]["arguments"]), "padding": padding}
            first = {**first, "function": {**first["function"], "arguments": json.dumps(args)}}
            return {**message, "tool_calls": [first, *rest]}
        return _content(json.dumps({**json.loads(message["content"]), "padding": padding}))
