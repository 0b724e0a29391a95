"""One chat call with the faults of the real world handled: retries, format fallback, usage.

- 429, 5xx, timeouts and lost connections are retried by tenacity: exponential backoff with
  full jitter, at most `llm_max_retries` times. Each retry becomes a note for the timeline.
- Structured output asks for a JSON schema (`response_format: json_schema`); a server that
  refuses it (HTTP 400 naming response_format) is asked for plain JSON (`json_object`),
  and one that refuses that too gets the schema in the prompt only. The level that worked
  is remembered for the process.
- Every call, failed or not, becomes a `ModelCall` with the tokens the response reported.
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from opsloop.llm.ledger import UsageLedger
from opsloop.models import ModelCall
from opsloop.settings import Settings

FORMAT_LEVELS = ("json_schema", "json_object", "prompt")

# langchain warns that a server refusing json_schema should be used with another
# `with_structured_output` method; this client does not use that API and steps down the
# FORMAT_LEVELS itself, so the advice would only mislead whoever reads the log.
warnings.filterwarnings("ignore", message="This model does not support OpenAI's structured",
                        category=UserWarning)


class ModelUnavailable(Exception):
    """No usable answer: retries ran out, or the endpoint refused the request."""

    def __init__(self, message: str, call: ModelCall, notes: list[str]) -> None:
        super().__init__(message)
        self.call = call
        self.notes = notes


@dataclass
class Reply:
    message: AIMessage
    call: ModelCall
    notes: list[str] = field(default_factory=list)  # retries and fallbacks, for the timeline

    @property
    def text(self) -> str:
        content = self.message.content
        if isinstance(content, str):
            return content
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)


def transient(exc: BaseException) -> bool:
    """Worth another try: rate limited, server error, timeout, connection lost."""
    if isinstance(exc, openai.RateLimitError | openai.APIConnectionError):
        return True  # APITimeoutError is an APIConnectionError
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def _format_refused(exc: BaseException) -> bool:
    return isinstance(exc, openai.BadRequestError) and "response_format" in str(exc)


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}{f' {status}' if status else ''}{': ' + text if text else ''}"


def response_format(level: str, output: type[BaseModel]) -> dict[str, Any] | None:
    if level == "json_schema":
        return {"type": "json_schema", "json_schema": {
            "name": output.__name__, "schema": output.model_json_schema(), "strict": False}}
    if level == "json_object":
        return {"type": "json_object"}
    return None


class ModelClient:
    """The loop's handle on a chat model: calls, retries, usage per incident."""

    def __init__(self, chat: BaseChatModel, settings: Settings,
                 ledger: UsageLedger | None = None) -> None:
        self.chat = chat
        self.settings = settings
        self.ledger = ledger or UsageLedger(settings.llm_tokens_per_incident)
        self.model_name = str(getattr(chat, "model_name", "") or getattr(chat, "model", ""))
        self._level = 0
        self._lock = threading.Lock()

    @property
    def format_level(self) -> str:
        return FORMAT_LEVELS[self._level]

    def call(self, messages: list[BaseMessage], *, incident_id: str, purpose: str,
             specialist: str = "", tools: list[dict[str, Any]] | None = None,
             output: type[BaseModel] | None = None) -> Reply:
        """One answer from the model; raises ModelUnavailable when there is none."""
        notes: list[str] = []
        started = time.perf_counter()
        attempts = 0

        def note_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            notes.append(f"model call retried after {_describe(exc) if exc else 'an error'} "
                         f"(attempt {state.attempt_number + 1} of "
                         f"{self.settings.llm_max_retries + 1}, backoff {wait:.2f}s)")

        def once() -> AIMessage:
            nonlocal attempts
            attempts += 1
            return self._invoke(messages, tools, output, notes)

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.llm_max_retries + 1),
            wait=wait_random_exponential(multiplier=self.settings.llm_retry_initial_seconds,
                                         max=self.settings.llm_retry_max_seconds),
            retry=retry_if_exception(transient),
            before_sleep=note_retry,
            reraise=True,
        )
        try:
            message = retrying(once)
        except Exception as exc:
            call = self._record(incident_id, purpose, specialist, None, started, attempts,
                                "error", _describe(exc))
            raise ModelUnavailable(f"no answer from {self.model_name}: {_describe(exc)}",
                                   call, notes) from exc
        call = self._record(incident_id, purpose, specialist, message, started, attempts, "ok", "")
        return Reply(message=message, call=call, notes=notes)

    def _invoke(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None,
                output: type[BaseModel] | None, notes: list[str]) -> AIMessage:
        while True:
            level = self._level
            kwargs: dict[str, Any] = {}
            fmt = response_format(FORMAT_LEVELS[level], output) if output else None
            if fmt is not None:
                # Through extra_body, not `response_format=`: langchain would switch to the
                # SDK's parse(), which rejects non-strict tools and raises on a malformed
                # tool call instead of letting the loop show the model its mistake.
                kwargs["extra_body"] = {"response_format": fmt}
            runnable: Any = self.chat.bind_tools(tools) if tools else self.chat
            try:
                result = runnable.invoke(messages, **kwargs)
            except openai.BadRequestError as exc:
                if fmt is None or not _format_refused(exc) or level + 1 >= len(FORMAT_LEVELS):
                    raise
                with self._lock:
                    self._level = max(self._level, level + 1)
                notes.append(f"endpoint refused response_format {FORMAT_LEVELS[level]}; "
                             f"falling back to {FORMAT_LEVELS[self._level]}")
                continue
            if not isinstance(result, AIMessage):
                raise TypeError(f"expected an AI message, got {type(result).__name__}")
            return result

    def _record(self, incident_id: str, purpose: str, specialist: str,
                message: AIMessage | None, started: float, attempts: int, outcome: str,
                error: str) -> ModelCall:
        usage = message.usage_metadata if message is not None else None
        call = ModelCall(
            id=uuid.uuid4().hex, at=datetime.now(UTC), purpose=purpose, specialist=specialist,
            model=self.model_name,
            input_tokens=int(usage["input_tokens"]) if usage else 0,
            output_tokens=int(usage["output_tokens"]) if usage else 0,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            attempts=max(attempts, 1), outcome=outcome, error=error,
        )
        self.ledger.record(incident_id, call)
        return call
