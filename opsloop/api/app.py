"""The HTTP API of `opsloop serve`: assembled here, routes in webhook.py and routes.py,
who may call in access.py, request bodies in bodies.py (imports go one way: here).

Every error is JSON `{"detail": ...}` with the field it is about; bad input is a 4xx.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsloop.alertmanager import PayloadError
from opsloop.api import agent_routes, cost_routes, people_routes, rollout_routes, routes, webhook
from opsloop.api.access import SameOriginOnly, answering_names
from opsloop.api.auth import TokenTable
from opsloop.api.bodies import MAX_ERRORS_SHOWN, loc_text, payload_error
from opsloop.api.metrics import CONTENT_TYPE, exposition
from opsloop.api.runtime import IntakeRuntime

API_TITLE = "opsloop"
log = logging.getLogger("opsloop.api")
# FastAPI documents its own 422 body; ours names each field as one string (`body.reason`,
# `alerts[3].labels.service`), or is one sentence for a refused change.
_ERROR_SCHEMAS: dict[str, Any] = {
    "ValidationError": {
        "title": "FieldProblem", "type": "object", "required": ["loc", "msg"],
        "properties": {"loc": {"type": "string", "description": "where, e.g. body.reason"},
                       "msg": {"type": "string", "description": "what is wrong"}},
    },
    "HTTPValidationError": {
        "title": "Problems", "type": "object", "required": ["detail"],
        "properties": {"detail": {"anyOf": [
            {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
            {"type": "string"}]}},
    },
}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": loc_text(e.get("loc", ())), "msg": str(e.get("msg", ""))}
              for e in exc.errors()[:MAX_ERRORS_SHOWN]]
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": errors}))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail},
                        headers=getattr(exc, "headers", None))


class FaultsAnswered:
    """ASGI middleware: a fault of ours or of a backend (not bad input) is logged with its
    traceback and answered 500 without internals, since an exception's text can carry a
    stored record's contents. Answered here rather than by Starlette's last-resort handler,
    which re-raises and so drops the caller's connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def sending(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            where = f"{scope.get('method', '?')} {scope.get('path', '?')}"
            log.exception("internal error answering %s", where)
            if answered:  # too late for a status: the connection is all that can go
                raise
            await JSONResponse(status_code=500, content={
                "detail": f"internal error answering {where}: the server's log has the "
                          "details"})(scope, receive, send)


def create_app(runtime: IntakeRuntime, tokens: TokenTable,
               names: frozenset[str] | None = None) -> FastAPI:
    """The API over `runtime`. `names`: host names it answers to (default: the configured
    bind host and loopback; see `answering_names`)."""
    app = FastAPI(
        title=API_TITLE,
        version="1",
        description=(
            "The operations loop's API: an Alertmanager webhook receiver (payload version 4), "
            "incidents, approvals, signals and postmortems. Bearer tokens carry one role: "
            "ingest, read, approve or admin. With no token configured, posting alerts and "
            "reading need none, but deciding needs the token `opsloop serve` prints at start."
        ),
    )
    app.state.runtime = runtime
    app.state.tokens = tokens
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(PayloadError, payload_error)

    if tokens.open:
        @app.middleware("http")
        async def warn_unauthenticated(request: Request, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["X-Opsloop-Warning"] = (
                "unauthenticated: no API tokens configured; deciding needs the local token")
            return response

    app.add_middleware(SameOriginOnly, names=names if names is not None else
                       answering_names(runtime.settings.serve_host))
    app.add_middleware(FaultsAnswered)  # the outermost: it answers for everything inside

    app.include_router(webhook.router)
    app.include_router(routes.router)
    app.include_router(agent_routes.router)
    app.include_router(rollout_routes.router)
    app.include_router(cost_routes.router)
    app.include_router(people_routes.router)

    @app.get("/healthz", tags=["health"], summary="the process is alive")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "auth": "open" if tokens.open else "tokens"}

    @app.get("/readyz", tags=["health"], summary="ready to take alerts and run incidents",
             responses={503: {"description": "a dependency is not ready"}})
    def readyz() -> JSONResponse:
        checks = _readiness(runtime)
        ready = all(c["ok"] for c in checks.values())
        return JSONResponse(status_code=200 if ready else 503,
                            content={"ready": ready, "checks": checks})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(content=exposition(runtime), media_type=CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(webhook.schema_components())
            components.update(routes.schema_components())
            components.update(_ERROR_SCHEMAS)  # what the handlers above really answer
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _readiness(runtime: IntakeRuntime) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    try:
        runtime.read(lambda s: s.pending())
        checks["store"] = {"ok": True}
    except Exception as exc:
        checks["store"] = {"ok": False, "error": str(exc)}
    checks["dispatcher"] = {"ok": runtime.alive()}
    if runtime.env is not None:
        try:
            checks["environment"] = {"ok": True, "now": runtime.now().isoformat(),
                                     "ref": runtime.environment}
        except Exception as exc:
            checks["environment"] = {"ok": False, "ref": runtime.environment, "error": str(exc)}
    else:
        checks["environment"] = {"ok": True, "ref": None,
                                 "note": "none configured: incidents are recorded, not run"}
    return checks
