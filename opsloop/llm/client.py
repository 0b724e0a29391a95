"""One chat call with the faults of the real world handled: retries, format fallback, usage.

- 429, 5xx, timeouts and lost connections are retried by tenacity: exponential backoff with
  full jitter, at most `llm_max_retries` times. A `Retry-After` (or `retry-after-ms`) the
  endpoint sends is the wait instead; one longer than `llm_retry_max_seconds` is not worth
  waiting for, so the call gives up at once. Each retry becomes a note for the timeline.
- One attempt lasts at most `ATTEMPT_DEADLINE_FACTOR` × `llm_timeout_seconds`, however the
  bytes arrive: the HTTP timeout applies to each read, which a trickling server never trips.
- A reply longer than `reply_chars_accepted` characters (content plus tool-call arguments)
  is refused unread: a giant answer is no answer, and the tokens it cost are still counted.
- A body that holds no answer (no `choices`, no message) is refused, not retried.
- Structured output asks for a JSON schema (`response_format: json_schema`). A structured
  request the server rejects with an HTTP error that is about the request rather than the
  server's health or the caller's credentials (any 4xx/5xx except 401, 403, 404, 408, 409,
  429, 502, 503, 504) is sent again at once without what it refused. A client error (4xx)
  says the server does not offer that format: the next level down is tried, plain JSON
  (`json_object`), then the schema in the prompt only. A server error (5xx) says it cannot
  combine the format with the rest of the request (llama.cpp answers tools + a format + a
  text reply with HTTP 500, and in JSON mode a small model writes whitespace instead of
  tool calls): the plain path is taken at once. Servers word refusals in every way, so the
  status decides, never the message. The level that answered is remembered for the client
  (one client per endpoint); a level that fails too leaves the memory as it was.
- Every call, failed or not, becomes a `ModelCall` with the tokens the response reported.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

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

# Interim, until a setting of its own exists: a reply may be as long as this many trimmed
# tool results (96,000 characters by default), far above any answer the schemas describe.
REPLY_CHARS_PER_TOOL_OUTPUT = 32
# httpx's timeout bounds each phase of a request, not the whole of it; a server sending a
# byte now and then never trips it. Twice the setting leaves httpx the first word.
ATTEMPT_DEADLINE_FACTOR = 2.0

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


class AttemptTimedOut(Exception):
    """No whole reply within the attempt's deadline (a stalled or trickling server)."""


class MalformedReply(Exception):
    """The endpoint answered with a body that holds no answer (e.g. no `choices`)."""


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
    import openai

    if isinstance(exc, openai.RateLimitError | openai.APIConnectionError | AttemptTimedOut):
        return True  # APITimeoutError is an APIConnectionError
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the endpoint asked us to wait (`retry-after-ms`, `Retry-After`), if it did."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None  # an unreadable header is as good as none: back off as usual


def reply_chars_accepted(settings: Settings) -> int:
    return REPLY_CHARS_PER_TOOL_OUTPUT * settings.llm_tool_output_chars


def reply_chars(message: AIMessage) -> int:
    """How long a reply is: its text and every tool call's arguments."""
    content = message.content
    size = len(content) if isinstance(content, str) else sum(len(str(p)) for p in content)
    size += sum(len(str(c.get("args"))) + len(c.get("name") or "") for c in message.tool_calls)
    size += sum(len(str(c.get("args") or "")) for c in message.invalid_tool_calls)
    return size


# Statuses that say nothing about the request's format: credentials, a wrong address,
# a timeout or conflict, rate limits and the gateway/overload family. Anything else that a
# structured request earns is taken as the format being the trouble.
NOT_ABOUT_THE_FORMAT = frozenset({401, 403, 404, 408, 409, 429, 502, 503, 504})


def format_refused(exc: BaseException) -> bool:
    """Whether a structured request's failure is worth the next format level down."""
    import openai

    return (isinstance(exc, openai.APIStatusError)
            and exc.status_code not in NOT_ABOUT_THE_FORMAT)


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


def retry_policy(settings: Settings, notes: list[str]) -> Retrying:
    """Transient failures retried `llm_max_retries` times, waiting as the endpoint asks
    (up to `llm_retry_max_seconds`) or with jittered backoff; each retry noted."""
    cap = settings.llm_retry_max_seconds
    backoff = wait_random_exponential(multiplier=settings.llm_retry_initial_seconds, max=cap)

    def wait(state: RetryCallState) -> float:
        asked = retry_after(state.outcome.exception() if state.outcome else None)
        return backoff(state) if asked is None else asked

    def worth_retrying(exc: BaseException) -> bool:
        asked = retry_after(exc)
        return transient(exc) and (asked is None or asked <= cap)

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        why = "Retry-After" if retry_after(exc) is not None else "backoff"
        notes.append(f"model call retried after {_describe(exc) if exc else 'an error'} "
                     f"(attempt {state.attempt_number + 1} of {settings.llm_max_retries + 1}, "
                     f"{why} {sleep:.2f}s)")

    return Retrying(stop=stop_after_attempt(settings.llm_max_retries + 1), wait=wait,
                    retry=retry_if_exception(worth_retrying), before_sleep=note, reraise=True)


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

        def once() -> AIMessage:
            nonlocal attempts
            attempts += 1
            return self._invoke(messages, tools, output, notes)

        cap = self.settings.llm_retry_max_seconds
        try:
            message = retry_policy(self.settings, notes)(once)
        except Exception as exc:
            reason = _describe(exc)
            asked = retry_after(exc)
            if transient(exc) and asked is not None and asked > cap:
                reason += (f" (it asked to retry after {asked:.0f}s, more than "
                           f"llm_retry_max_seconds={cap:g}; not waiting)")
            call = self._record(incident_id, purpose, specialist, None, started, attempts,
                                "error", reason)
            raise ModelUnavailable(f"no answer from {self.model_name}: {reason}",
                                   call, notes) from exc
        size, limit = reply_chars(message), reply_chars_accepted(self.settings)
        if size > limit:
            reason = f"reply of {size:,} characters is over the {limit:,} accepted; not read"
            call = self._record(incident_id, purpose, specialist, message, started, attempts,
                                "invalid", reason)
            raise ModelUnavailable(f"unusable answer from {self.model_name}: {reason}",
                                   call, notes)
        call = self._record(incident_id, purpose, specialist, message, started, attempts, "ok", "")
        return Reply(message=message, call=call, notes=notes)

    def _invoke(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None,
                output: type[BaseModel] | None, notes: list[str]) -> AIMessage:
        # Each pass either answers, raises, or steps down one format level: bounded by them.
        level = self._level
        for _ in FORMAT_LEVELS:
            kwargs: dict[str, Any] = {}
            fmt = response_format(FORMAT_LEVELS[level], output) if output else None
            if fmt is not None:
                # Through extra_body, not `response_format=`: langchain would switch to the
                # SDK's parse(), which rejects non-strict tools and raises on a malformed
                # tool call instead of letting the loop show the model its mistake.
                kwargs["extra_body"] = {"response_format": fmt}
            runnable: Any = self.chat.bind_tools(tools) if tools else self.chat
            import openai

            try:
                result = self._within_deadline(partial(runnable.invoke, messages, **kwargs))
            except openai.APIStatusError as exc:
                if fmt is None or not format_refused(exc) or level + 1 >= len(FORMAT_LEVELS):
                    raise
                tried = level
                # 4xx: that format is not offered, try the next; 5xx: none will combine.
                level = level + 1 if exc.status_code < 500 else len(FORMAT_LEVELS) - 1
                notes.append(f"endpoint rejected response_format {FORMAT_LEVELS[tried]} "
                             f"({_describe(exc)}); trying {FORMAT_LEVELS[level]}")
                continue
            if not isinstance(result, AIMessage):
                raise TypeError(f"expected an AI message, got {type(result).__name__}")
            with self._lock:
                if level > self._level:
                    self._level = level
                    notes.append(f"endpoint answered at response_format level "
                                 f"{FORMAT_LEVELS[level]}: using it from now on")
            return result
        raise AssertionError("unreachable: every format level was tried")

    def _within_deadline(self, attempt: Callable[[], Any]) -> Any:
        """The attempt's result, or AttemptTimedOut once its deadline passes.

        The attempt runs on a daemon thread that is abandoned at the deadline: a blocking
        HTTP read cannot be interrupted, and the caller must not wait for it.
        """
        deadline = ATTEMPT_DEADLINE_FACTOR * self.settings.llm_timeout_seconds
        outcome: dict[str, Any] = {}
        done = threading.Event()
        context = contextvars.copy_context()  # callbacks and tracing follow the call

        def run() -> None:
            try:
                outcome["value"] = context.run(attempt)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, daemon=True, name="model-attempt").start()
        if not done.wait(deadline):
            raise AttemptTimedOut(f"no whole reply within {deadline:g}s")
        if "error" in outcome:
            error = outcome["error"]
            import openai

            if isinstance(error, openai.OpenAIError):
                raise error
            # Past the SDK, only langchain reading the body runs: an empty `choices` is an
            # IndexError there, a missing message an AttributeError.
            raise MalformedReply(f"the reply could not be read: {_describe(error)}") from error
        return outcome["value"]

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
