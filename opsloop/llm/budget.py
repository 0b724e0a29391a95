"""Every request inside the model's context: a token estimate and a way to fit a prompt.

A small local model has a few thousand tokens of context (`llm_context_tokens`, 4096 by
default) and its reply is generated inside the same window, so a prompt may use the
context less the reply cap (`llm_max_output_tokens`). Anything longer is refused by the
server (llama.cpp answers HTTP 400) or silently truncated by others.

The estimate is characters over a ratio, plus what the chat template adds per message.
The ratios are at or under the lowest measured against the real tokenizers of the local
packages (SmolLM2, Qwen2.5) on opsloop's own prompts, so the estimate errs high, never low
(`bench/prompt_estimate.py` measures it again).

Fitting shortens the conversation one message at a time until the estimate is within the
budget: tool results first, oldest first, then the model's own earlier words, then the data
blocks of the task, each by the same ladder of `opsloop.llm.prompting.fit` (long strings
and long lists cut, saying how much) and to an outline (scalar fields and the ids of nested
items: what the model needs to cite evidence or call a tool again). Last, tool results,
oldest first, are dropped to their status: the call stays citable, since what a cited
call returned is read from its record, not from the prompt. The system prompt, every
instruction outside a data block and every block's delimiters are never cut; when they
alone are too long the call is not made (`PromptTooLarge`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

from opsloop.llm.prompting import data_block, data_blocks, fit_blocks, shrink, trim
from opsloop.settings import Settings

# Measured (bench/prompt_estimate.py) on every request of the demo scenarios: characters
# per real token, the chat template's tokens included, were 2.82-3.73 for SmolLM2 and
# 3.13-4.17 for Qwen2.5 on messages, 3.14-3.27 for Qwen's rendered tool list (SmolLM2's
# template leaves tools out of the prompt: llama.cpp constrains the reply instead).
CHARS_PER_TOKEN = 2.8
TOOL_CHARS_PER_TOKEN = 3.0
MESSAGE_TOKENS = 8  # role markers and separators the chat template adds around a message
TOOLS_TOKENS = 16  # slack for the template's words around the tool list
# Per-block character limits, largest first: each pass shortens one message further; the
# last pass (None) leaves each block's outline only (`opsloop.llm.prompting.summarise`).
BLOCK_LIMITS: tuple[int | None, ...] = (2400, 1200, 600, 300, None)
ELIDED = "dropped for room; citable by call id"
MIN_PROMPT_TOKENS = 1024  # below this no opsloop prompt fits: a setting error, not a trim


# Of a call's budget, the share the tool list may take: the rest is for the instructions,
# the task and the evidence the tools return. A large context offers every tool.
TOOLS_SHARE = 0.25


def tools_that_fit(schemas: Sequence[dict[str, Any]], budget: int) -> int:
    """How many of the tools, in the order given (most useful first), fit the tool share of
    a `budget`-token prompt; always at least one, so a loop that offers tools offers some."""
    share = budget * TOOLS_SHARE
    for count in range(len(schemas), 0, -1):
        if estimate_tokens([], schemas[:count]) <= share:
            return count
    return min(1, len(schemas))


class PromptTooLarge(ValueError):
    """What cannot be cut (system prompt, instructions, delimiters) is over the budget."""


def prompt_budget(settings: Settings) -> int:
    """Tokens one prompt may use: the context less the reply cap."""
    budget = settings.llm_context_tokens - settings.llm_max_output_tokens
    if budget < MIN_PROMPT_TOKENS:
        raise ValueError(
            f"OPSLOOP_LLM_CONTEXT_TOKENS={settings.llm_context_tokens} less "
            f"OPSLOOP_LLM_MAX_OUTPUT_TOKENS={settings.llm_max_output_tokens} leaves "
            f"{budget} tokens for a prompt; at least {MIN_PROMPT_TOKENS} are needed "
            "(raise the context or lower the reply cap)")
    return budget


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)


def _chars(message: BaseMessage) -> int:
    size = len(_text(message))
    if isinstance(message, AIMessage):
        size += sum(len(json.dumps(c.get("args"), default=str)) + len(c.get("name") or "")
                    + len(c.get("id") or "") for c in message.tool_calls)
    if isinstance(message, ToolMessage):
        size += len(message.tool_call_id)
    return size


def estimate_tokens(messages: Sequence[BaseMessage],
                    tools: Sequence[dict[str, Any]] | None = None) -> int:
    """An upper estimate of the prompt tokens a request with these messages and tools costs."""
    tokens = math.ceil(sum(_chars(m) for m in messages) / CHARS_PER_TOKEN)
    tokens += MESSAGE_TOKENS * len(messages)
    if tools:
        chars = sum(len(json.dumps(t, separators=(",", ":"))) for t in tools)
        tokens += math.ceil(chars / TOOL_CHARS_PER_TOKEN) + TOOLS_TOKENS
    return tokens


def _shortened(message: BaseMessage, limit: int | None) -> BaseMessage | None:
    """The message with its data (or, for the model's words, its text) cut to `limit`."""
    text = _text(message)
    if isinstance(message, AIMessage):
        calls = [{**c, "args": shrink(c.get("args") or {}, 1)} for c in message.tool_calls]
        short = trim(text, limit or 120)
        if short == text and calls == message.tool_calls:
            return None
        return message.model_copy(update={"content": short, "tool_calls": calls})
    fitted, changed = fit_blocks(text, limit)
    return message.model_copy(update={"content": fitted}) if changed else None


def _elided(message: BaseMessage) -> BaseMessage | None:
    """A tool result reduced to its status: the call stays citable by id, its record holds
    what it returned, and the model is told the text was dropped for room."""
    if not isinstance(message, ToolMessage) or ELIDED in _text(message):
        return None
    blocks = data_blocks(_text(message)).get("tool_result", [{}])
    status = blocks[0].get("status", "ok") if isinstance(blocks[0], dict) else "ok"
    return message.model_copy(update={"content": data_block("tool_result", {
        "status": status, "note": ELIDED})})


def _order(messages: Sequence[BaseMessage]) -> list[int]:
    """Which messages give way first: tool results, the model's words, then the task."""
    tools = [i for i, m in enumerate(messages) if isinstance(m, ToolMessage)]
    said = [i for i, m in enumerate(messages) if isinstance(m, AIMessage)]
    rest = [i for i, m in enumerate(messages)
            if not isinstance(m, ToolMessage | AIMessage | SystemMessage)]
    return tools + said + rest


def _steps(messages: list[BaseMessage]
           ) -> Iterator[tuple[int, Callable[[BaseMessage], BaseMessage | None]]]:
    """Each way to shorten, in the order tried: every data block at each limit (messages
    that give way first first), then tool results reduced to their status, oldest first."""
    for limit in BLOCK_LIMITS:
        for i in _order(messages):
            yield i, partial(_shortened, limit=limit)
    for i in range(len(messages)):
        yield i, _elided


def fit_messages(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] | None,
                 budget: int) -> tuple[list[BaseMessage], int]:
    """The messages, shortened until the request's estimate is within `budget` tokens.

    Returns them and how many were shortened; raises PromptTooLarge when even the shortest
    form is over (the system prompt, instructions and tool list alone).
    """
    fitted = list(messages)
    estimate = estimate_tokens(fitted, tools)
    if estimate <= budget:
        return fitted, 0
    shortened: set[int] = set()
    for i, shorten in _steps(fitted):
        short = shorten(fitted[i])
        if short is None:
            continue
        fitted[i] = short
        shortened.add(i)
        estimate = estimate_tokens(fitted, tools)
        if estimate <= budget:
            return fitted, len(shortened)
    raise PromptTooLarge(
        f"the prompt needs about {estimate:,} tokens with every data block at its shortest, "
        f"over the {budget:,} a call may use (OPSLOOP_LLM_CONTEXT_TOKENS less "
        "OPSLOOP_LLM_MAX_OUTPUT_TOKENS); the instructions and tool list alone are too long")
