"""The HTTP API of `opsloop serve`: assembled here, routes in webhook.py and routes.py.

Every error is JSON `{"detail": ...}` with the field it is about; bad input is a 4xx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsloop.api.auth import ANONYMOUS, Principal, Role, TokenTable
from opsloop.api.runtime import IntakeRuntime

API_TITLE = "opsloop"
_bearer = HTTPBearer(auto_error=False, description="name:role:token from OPSLOOP_API_TOKENS")


def authorize(role: Role) -> Callable[..., Principal]:
    """A dependency: the caller's identity, if its token grants `role` (401 / 403 if not)."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        tokens: TokenTable = request.app.state.tokens
        if not tokens.enabled:
            return ANONYMOUS
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token: send Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = tokens.lookup(credentials.credentials)
        if principal is None:
            raise HTTPException(401, "unknown or revoked token",
                                headers={"WWW-Authenticate": "Bearer"})
        if not principal.may(role):
            raise HTTPException(403, f"{principal.name} has role {principal.role.value}; "
                                     f"this needs {role.value}")
        return principal

    return dependency


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", ""))}
              for e in exc.errors()[:50]]
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": errors}))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail},
                        headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Not bad input: a fault of ours or of a backend. Say so without a traceback.
    return JSONResponse(status_code=500,
                        content={"detail": f"internal error: {type(exc).__name__}: {exc}"})


def create_app(runtime: IntakeRuntime, tokens: TokenTable) -> FastAPI:
    from opsloop.api import routes, webhook  # routes import this module for `authorize`

    app = FastAPI(
        title=API_TITLE,
        version="1",
        description=(
            "The operations loop's API: an Alertmanager webhook receiver (payload version 4), "
            "incidents, approvals, signals and postmortems. Bearer tokens carry one role: "
            "ingest, read, approve or admin."
        ),
    )
    app.state.runtime = runtime
    app.state.tokens = tokens
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

    if not tokens.enabled:
        @app.middleware("http")
        async def warn_unauthenticated(request: Request, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["X-Opsloop-Warning"] = "unauthenticated: no API tokens configured"
            return response

    app.include_router(webhook.router)
    app.include_router(routes.router)

    @app.get("/healthz", tags=["health"], summary="the process is alive")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "auth": "tokens" if tokens.enabled else "disabled"}

    @app.get("/readyz", tags=["health"], summary="ready to take alerts and run incidents",
             responses={503: {"description": "a dependency is not ready"}})
    def readyz() -> JSONResponse:
        checks = _readiness(runtime)
        ready = all(c["ok"] for c in checks.values())
        return JSONResponse(status_code=200 if ready else 503,
                            content={"ready": ready, "checks": checks})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                webhook.schema_components())
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
