"""A real OpenAI-compatible HTTP server on loopback, for tests and offline evals.

`POST /v1/chat/completions` answers with the `FakeModel` (or a scripted reply), reports
token usage (≈ characters / 4, the usual rule of thumb), and records every request.
Faults are scripted in order, optionally only for requests whose body contains a given
text: an HTTP status (429, 500, 503, …), a slow reply, a dropped connection, garbage
content, a body that is not JSON, or a verbatim assistant message (tool calls included).
`json_schema=False` / `json_object=False` make it refuse those `response_format`s with
HTTP 400, as servers without structured-output support do (`refusal_status=500` refuses
with a server error instead, as llama.cpp does when tools and a format meet a text
answer). `hostile=` makes it misbehave on every request that no scripted fault claims
(`opsloop.llm.testing.hostile`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opsloop.llm.testing.fake_model import FakeModel
from opsloop.llm.testing.hostile import Hostile, HostileModel, Misbehaviour

# A hung request waits at most this long for the server to close; a trickle sends a byte
# this often, well inside any client timeout, so only a deadline on the whole reply ends it.
HANG_SECONDS = 120.0
TRICKLE_EVERY_SECONDS = 0.05


@dataclass
class Fault:
    kind: str  # status | slow | drop | garbage | not_json | reply
    status: int = 500
    seconds: float = 0.0  # slow: delay before answering normally
    message: dict[str, Any] | None = None  # reply: the assistant message to return
    match: str = ""  # only requests whose body contains this text

    @classmethod
    def http(cls, status: int, match: str = "") -> Fault:
        return cls("status", status=status, match=match)


@dataclass
class Exchange:
    request: dict[str, Any]
    status: int
    response: dict[str, Any] | None = None
    fault: str = ""


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


@dataclass
class _State:
    model: FakeModel
    json_schema: bool
    json_object: bool
    hostile: HostileModel | None = None
    refusal_status: int = 400
    faults: list[Fault] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)
    counter: int = 0


def _prompt_text(body: dict[str, Any]) -> str:
    parts = [json.dumps(m.get("content") or "") + json.dumps(m.get("tool_calls") or "")
             for m in body.get("messages", [])]
    return "".join(parts) + json.dumps(body.get("tools") or "")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the exchanges
        return

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        state = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
            return
        with state.lock:
            fault = next((f for f in state.faults if f.match in raw), None)
            if fault is not None:
                state.faults.remove(fault)
            state.counter += 1
            number = state.counter
        hostile = state.hostile if fault is None else None
        exchange = Exchange(request=body, status=200, fault=fault.kind if fault else
                            hostile.mode.value if hostile else "")
        with state.lock:
            state.exchanges.append(exchange)
        if hostile is not None:
            self._misbehave(hostile.misbehave(body, number), body, number, exchange)
            return
        if fault is not None and fault.kind == "status":
            exchange.status = fault.status
            self._send(fault.status, {"error": {"message": f"scripted HTTP {fault.status}",
                                                "type": "server_error", "code": fault.status}})
            return
        if fault is not None and fault.kind == "drop":
            exchange.status = 0
            self.close_connection = True
            self.connection.close()
            return
        if fault is not None and fault.kind == "not_json":
            self._send_raw(200, b"<html><body>502 upstream hiccup</body></html>", "text/html")
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        refused = self._refused_format(body)
        if refused:
            exchange.status = state.refusal_status
            self._send(state.refusal_status, {"error": {
                "message": refused, "type": "invalid_request_error",
                "param": "response_format"}})
            return
        if fault is not None and fault.kind == "garbage":
            message: dict[str, Any] = {"role": "assistant",
                                       "content": "Sure! The cause is {probably, maybe"}
        elif fault is not None and fault.kind == "reply" and fault.message is not None:
            message = {"role": "assistant", "content": None, **fault.message}
        else:
            message = state.model.respond(body)
        self._answer(body, number, exchange, message)

    def _answer(self, body: dict[str, Any], number: int, exchange: Exchange,
                message: dict[str, Any] | None) -> None:
        """A chat completion carrying `message` (None: with no choices at all)."""
        prompt_tokens = count_tokens(_prompt_text(body))
        completion_tokens = 0 if message is None else count_tokens(
            json.dumps(message.get("content") or "") + json.dumps(message.get("tool_calls") or ""))
        choices = [] if message is None else [{
            "index": 0, "message": message,
            "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}]
        response = {
            "id": f"chatcmpl-{number}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "scripted"), "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        exchange.response = response
        self._send(200, response)

    def _misbehave(self, act: Misbehaviour, body: dict[str, Any], number: int,
                   exchange: Exchange) -> None:
        exchange.status = act.status
        if act.hang == "stall":
            exchange.status = 0
            self.server.state.closing.wait(HANG_SECONDS)
        elif act.hang == "trickle":
            exchange.status = 0
            self._trickle()
        elif act.status != 200:
            self._send(act.status, {"error": {"message": f"hostile HTTP {act.status}",
                                              "type": "server_error", "code": act.status}},
                       act.headers)
        else:
            self._answer(body, number, exchange, act.message if act.choices else None)

    def _trickle(self) -> None:
        """Headers promising a body, then one space at a time until the server closes."""
        closing = self.server.state.closing
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            for _ in range(int(HANG_SECONDS / TRICKLE_EVERY_SECONDS)):
                if closing.wait(TRICKLE_EVERY_SECONDS):
                    break
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:  # the client gave up, as it should
            pass
        self.close_connection = True

    def _refused_format(self, body: dict[str, Any]) -> str:
        kind = (body.get("response_format") or {}).get("type")
        state = self.server.state
        if (kind == "json_schema" and not state.json_schema) or (
                kind == "json_object" and not state.json_object):
            return f"'response_format' of type '{kind}' is not supported with this model"
        return ""

    def _send(self, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class ScriptedServer:
    """`with ScriptedServer() as server: Settings(llm_base_url=server.url, ...)`."""

    def __init__(self, model: FakeModel | None = None, *, json_schema: bool = True,
                 json_object: bool = True, hostile: Hostile | HostileModel | None = None,
                 port: int = 0, refusal_status: int = 400) -> None:
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        if isinstance(hostile, Hostile):
            hostile = HostileModel(hostile)
        self._httpd.state = _State(model or FakeModel(), json_schema, json_object, hostile,
                                   refusal_status)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="scripted-model")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.state.closing.set()  # hung requests end with the server
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, *faults: Fault) -> None:
        """Faults for the next matching requests, in order."""
        with self._httpd.state.lock:
            self._httpd.state.faults.extend(faults)

    @property
    def pending_faults(self) -> list[Fault]:
        with self._httpd.state.lock:
            return list(self._httpd.state.faults)

    @property
    def exchanges(self) -> list[Exchange]:
        with self._httpd.state.lock:
            return list(self._httpd.state.exchanges)

    def tokens(self) -> int:
        return sum(e.response["usage"]["total_tokens"] for e in self.exchanges if e.response)


def main(argv: list[str] | None = None) -> int:
    """Serve the scripted model until interrupted: `python -m opsloop.llm.testing`."""
    parser = argparse.ArgumentParser(
        prog="python -m opsloop.llm.testing",
        description="The scripted OpenAI-compatible model on loopback (no network, no weights).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--no-json-schema", action="store_true",
                        help="refuse response_format json_schema, like many local servers")
    parser.add_argument("--hostile", choices=[m.value for m in Hostile],
                        help="misbehave this way on every request (the hostile-model suite)")
    args = parser.parse_args(argv)
    with ScriptedServer(json_schema=not args.no_json_schema, port=args.port,
                        hostile=Hostile(args.hostile) if args.hostile else None) as server:
        print(f"OPSLOOP_LLM_BASE_URL={server.url} OPSLOOP_LLM_MODEL=scripted", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
