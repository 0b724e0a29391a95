"""The simulator as a network service: a Prometheus scrape target plus a small JSON API.

`/metrics` serves the fleet in the text exposition format; `/api/*` serves what Prometheus
does not hold (catalog, logs, deploys, flags, per-variant traffic, experiments), takes
actions (so the loop's actuator works over HTTP), injects faults, and tells the clock.
`/flags.json` serves the fleet's flags as a flagd flag-definition document.

The clock runs in one of two modes. `realtime`: a simulated minute passes every
`minute_seconds` wall seconds, on a fixed schedule, so Prometheus' scrape timestamps map
back to simulated time. `manual`: time moves only on `POST /api/advance`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from pydantic import BaseModel, Field, ValidationError

from opsloop.models import ActionResult, RemediationAction
from opsloop.simulator import exposition, flags
from opsloop.simulator.env import SimEnvironment
from opsloop.simulator.events import schedule
from opsloop.simulator.state import PendingEvent

MAX_BODY_BYTES = 1024 * 1024
FAULT_KINDS = ("deploy", "flag", "traffic", "leak", "log_growth", "region_outage",
               "autoscaler", "chaos_start", "bad_instance", "log")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ActionRequest(BaseModel):
    action: RemediationAction
    idempotency_key: str = Field(min_length=1)


class RevertRequest(BaseModel):
    result: ActionResult
    idempotency_key: str = Field(min_length=1)


class FaultRequest(BaseModel):
    kind: str
    service: str
    params: dict[str, Any] = Field(default_factory=dict)
    in_minutes: int = Field(default=0, ge=0)


class AdvanceRequest(BaseModel):
    minutes: int = Field(ge=1, le=7 * 24 * 60)


class SimServer:
    """One simulated production behind HTTP; `start()` binds, `stop()` shuts it all down."""

    def __init__(self, env: SimEnvironment, *, host: str = "127.0.0.1", port: int = 0,
                 minute_seconds: float = 0.0, hold_scenario: bool = False) -> None:
        if minute_seconds < 0:
            raise ValueError("minute_seconds must be 0 (manual clock) or positive")
        self.env = env
        self.minute_seconds = minute_seconds
        self.lock = threading.RLock()
        # Held: the scenario's future (its fault) waits for POST /api/faults/scenario.
        self.held: list[PendingEvent] = []
        if hold_scenario:
            self.held = [e for e in env.state.pending if e.tick > env.state.tick]
            env.state.pending = [e for e in env.state.pending if e.tick <= env.state.tick]
        self._stop = threading.Event()
        self._anchor_wall = time.time()
        self._anchor_tick = env.state.tick
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def mode(self) -> str:
        return "realtime" if self.minute_seconds > 0 else "manual"

    def start(self) -> SimServer:
        serve = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="sim-http", daemon=True)
        serve.start()
        self._threads.append(serve)
        if self.minute_seconds > 0:
            ticker = threading.Thread(target=self._tick_forever, name="sim-clock", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _tick_forever(self) -> None:
        """Step one simulated minute per `minute_seconds`, on a schedule fixed at start, so
        tick N is current from wall time anchor + N x minute_seconds (late steps catch up)."""
        while not self._stop.is_set():
            with self.lock:
                due = self._anchor_tick + int((time.time() - self._anchor_wall)
                                              / self.minute_seconds)
                behind = due - self.env.state.tick
                if behind > 0:
                    self.env.wait(behind)
            next_at = self._anchor_wall + (self.env.state.tick - self._anchor_tick + 1) \
                * self.minute_seconds
            self._stop.wait(max(next_at - time.time(), 0.001))

    # -- API -----------------------------------------------------------------------------

    def clock(self) -> dict[str, Any]:
        with self.lock:
            tick = self.env.state.tick
            now = self.env.now()
        wall = (self._anchor_wall + (tick - self._anchor_tick) * self.minute_seconds
                if self.minute_seconds > 0 else time.time())
        return {"now": now.isoformat(), "tick": tick, "wall": wall, "mode": self.mode,
                "minute_seconds": self.minute_seconds or 60.0}

    def advance(self, minutes: int) -> dict[str, Any]:
        if self.minute_seconds > 0:
            raise ApiError(409, "the clock runs in realtime mode; it cannot be advanced by hand")
        with self.lock:
            self.env.wait(minutes)
        return self.clock()

    def release_scenario(self) -> dict[str, Any]:
        """Start the held scenario future now: its fault happens at the current minute."""
        with self.lock:
            if not self.held:
                raise ApiError(409, "no scenario fault is held (start with --hold-fault)")
            shift = self.env.state.tick + 1 - min(e.tick for e in self.held)
            for event in self.held:
                schedule(self.env.state, event.tick + shift, event.kind, event.service,
                         **event.params)
            count, self.held = len(self.held), []
            return {"scheduled": count, "at_tick": self.env.state.tick + 1}

    def inject(self, fault: FaultRequest) -> dict[str, Any]:
        if fault.kind not in FAULT_KINDS:
            raise ApiError(422, f"kind: unknown fault {fault.kind!r}; kinds: "
                                f"{', '.join(FAULT_KINDS)}")
        with self.lock:
            if fault.service not in self.env.state.services:
                raise ApiError(404, f"service: unknown service {fault.service!r}")
            tick = self.env.state.tick + 1 + fault.in_minutes
            schedule(self.env.state, tick, fault.kind, fault.service, **fault.params)
        return {"scheduled": 1, "at_tick": tick}


Route = Callable[[SimServer, dict[str, str], bytes], tuple[int, str, str]]


def _json(data: Any, status: int = 200) -> tuple[int, str, str]:
    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    return status, "application/json", json.dumps(plain(data))


def _int(query: dict[str, str], name: str, default: int | None = None) -> int:
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise ApiError(400, f"{name}: required")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"{name}: {raw!r} is not an integer") from None


def _need(query: dict[str, str], name: str) -> str:
    if not query.get(name):
        raise ApiError(400, f"{name}: required")
    return query[name]


def _body(model: type[BaseModel], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, f"{where}: {first['msg']}") from None


def _read(server: SimServer, fn: Callable[[SimEnvironment], Any]) -> tuple[int, str, str]:
    with server.lock:
        try:
            return _json(fn(server.env))
        except KeyError as exc:
            raise ApiError(404, str(exc.args[0]) if exc.args else "unknown name") from None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None


def _service(q: dict[str, str]) -> str | None:
    return q.get("service") or None


GET: dict[str, Route] = {
    "/metrics": lambda s, q, b: (200, exposition.CONTENT_TYPE,
                                 _locked(s, lambda: exposition.render(s.env.state))),
    "/-/healthy": lambda s, q, b: (200, "text/plain", "ok\n"),
    "/api/clock": lambda s, q, b: _json(s.clock()),
    "/api/services": lambda s, q, b: _read(s, lambda e: e.services()),
    "/api/metric": lambda s, q, b: _read(s, lambda e: e.metric(
        _need(q, "service"), _need(q, "metric"), _int(q, "minutes"))),
    "/api/average": lambda s, q, b: _read(s, lambda e: {"value": e.average(
        _need(q, "service"), _need(q, "metric"), _int(q, "minutes"))}),
    "/api/logs": lambda s, q, b: _read(s, lambda e: e.logs(
        _need(q, "service"), _int(q, "minutes"), q.get("pattern") or None,
        _int(q, "limit", 200))),
    "/api/deploys": lambda s, q, b: _read(s, lambda e: e.deploys(_service(q), _int(q, "minutes"))),
    "/api/flags": lambda s, q, b: _read(s, lambda e: e.flags(_service(q))),
    "/api/flag_changes": lambda s, q, b: _read(s, lambda e: e.flag_changes(
        _service(q), _int(q, "minutes"))),
    "/api/experiments": lambda s, q, b: _read(s, lambda e: e.experiments(_service(q))),
    "/api/releases": lambda s, q, b: _read(s, lambda e: e.releases(_need(q, "service"))),
    # CycloneDX JSON, one document per service release (version: default the running one)
    "/api/sbom": lambda s, q, b: _read(s, lambda e: e.sbom(_need(q, "service"),
                                                           q.get("version") or None)),
    "/api/variant_counts": lambda s, q, b: _read(s, lambda e: e.variant_counts(
        _need(q, "service"), _need(q, "flag"), _int(q, "minutes"))),
    # flagd's file format, so a flagd or an OpenFeature provider can be pointed at it
    "/flags.json": lambda s, q, b: _read(s, lambda e: flags.document(e.state)),
}

POST: dict[str, Route] = {
    "/api/advance": lambda s, q, b: _json(s.advance(_body(AdvanceRequest, b).minutes)),
    "/api/actions": lambda s, q, b: _act(s, _body(ActionRequest, b)),
    "/api/revert": lambda s, q, b: _revert(s, _body(RevertRequest, b)),
    "/api/faults": lambda s, q, b: _json(s.inject(_body(FaultRequest, b))),
    "/api/faults/scenario": lambda s, q, b: _json(s.release_scenario()),
}


def _locked(server: SimServer, fn: Callable[[], str]) -> str:
    with server.lock:
        return fn()


def _act(server: SimServer, req: ActionRequest) -> tuple[int, str, str]:
    with server.lock:
        return _json(server.env.execute(req.action, req.idempotency_key))


def _revert(server: SimServer, req: RevertRequest) -> tuple[int, str, str]:
    with server.lock:
        return _json(server.env.revert(req.result, req.idempotency_key))


def _handler(server: SimServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle on, a keep-alive client waits
        # for the delayed ACK (~40ms) on every call.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every second would drown the terminal

        def _dispatch(self, routes: dict[str, Route]) -> None:
            parsed = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    raise ApiError(413, f"body: {length} bytes; at most {MAX_BODY_BYTES}")
                body = self.rfile.read(length) if length > 0 else b""
                route = routes.get(parsed.path)
                if route is None:
                    raise ApiError(404, f"no route {parsed.path}")
                status, content_type, text = route(server, query, body)
            except ApiError as exc:
                status, content_type, text = _json({"error": str(exc)}, exc.status)
            except ValueError as exc:
                status, content_type, text = _json({"error": str(exc)}, 400)
            payload = text.encode()
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._dispatch(GET)

        def do_POST(self) -> None:
            self._dispatch(POST)

    return Handler
