"""The console on top of the API: `create_console_app` is the API's app (api.app.create_app,
unchanged, its OpenAPI document the API's alone) with the console's routes, its static
files and its two refusals (sign in first; the error page) added."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsloop.api.app import _http_error, _validation_error, create_app
from opsloop.api.auth import TokenTable
from opsloop.api.bodies import loc_text
from opsloop.api.runtime import IntakeRuntime
from opsloop.web import actions, pages, signin
from opsloop.web.context import (
    Console,
    ConsoleError,
    LoginRequired,
    login_redirect,
    render,
    viewer_of,
)
from opsloop.web.session import (
    SESSIONS_FILE,
    SessionConfigError,
    SessionStore,
    console_secret,
)
from opsloop.web.users import UserFileError, load_users

STATIC = Path(__file__).parent / "static"
# No inline script or style anywhere, so the policy can forbid them: an alert text that got
# past escaping still could not run.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


_NOT_CONSOLE = ("/api/", "/healthz", "/readyz", "/metrics", "/docs", "/redoc",
                "/openapi.json", "/static/")


def _is_console(path: str) -> bool:
    return not path.startswith(_NOT_CONSOLE)


def console_url(host: str, port: int) -> str:
    """Where people open the console, for `opsloop run`/`serve` to print."""
    shown = f"[{host}]" if ":" in host else host
    if host in ("", "0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}/"


class ConsoleConfigError(ValueError):
    """The console cannot start as configured (its secret, its user file); the message says
    which setting or file and what to do."""


def create_console_app(runtime: IntakeRuntime, tokens: TokenTable,
                       names: frozenset[str] | None = None) -> FastAPI:
    """The API over `runtime` with the web console at `/`. A bad secret or user file is a
    ConsoleConfigError now, not a surprise at the first sign-in."""
    settings = runtime.settings
    try:
        secret = console_secret(settings)
        load_users(settings.console_users_file)
    except (SessionConfigError, UserFileError) as exc:
        raise ConsoleConfigError(str(exc)) from None
    app = create_app(runtime, tokens, names)
    app.state.console = Console(
        runtime=runtime, tokens=tokens, secret=secret,
        sessions=SessionStore(settings.state_dir / SESSIONS_FILE,
                              settings.console_session_hours * 3600),
        users_file=settings.console_users_file)

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(login_redirect(exc.after), status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleError)
        return render(request, "error.html", viewer_of(request), status=exc.status,
                      message=exc.message, status_code=exc.status)

    async def bad_request(request: Request, exc: Exception) -> Response:
        # A console URL with a malformed part is the console's error page; the API's stay
        # JSON naming the field.
        if not _is_console(request.url.path):
            return await _validation_error(request, exc)
        assert isinstance(exc, RequestValidationError)
        where = ", ".join(loc_text(e.get("loc", ())) for e in exc.errors()[:3])
        return render(request, "error.html", viewer_of(request), status=422,
                      message=f"this address is not one the console has ({where})",
                      status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not _is_console(request.url.path):
            return await _http_error(request, exc)
        assert isinstance(exc, StarletteHTTPException)
        return render(request, "error.html", viewer_of(request), status=exc.status_code,
                      message=str(exc.detail), status_code=exc.status_code)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(ConsoleError, refused)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StarletteHTTPException, http_error)

    @app.middleware("http")
    async def console_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if not request.url.path.startswith("/api/"):
            for name, value in _HEADERS.items():
                response.headers.setdefault(name, value)
        if request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "max-age=300"
        return response

    app.include_router(signin.router)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
