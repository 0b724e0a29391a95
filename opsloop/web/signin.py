"""Signing in and out: an API token, or a user of the local user file, becomes a session.

The sign-in form has its own CSRF token (a signed nonce in a cookie and in the form), since
there is no session yet to hold one.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloop.api.auth import Principal, Role, token_fingerprint
from opsloop.web.context import (
    COOKIE,
    LOGIN_COOKIE,
    ConsoleError,
    Viewer,
    console,
    read_form,
    render,
    safe_next,
    viewer_of,
)
from opsloop.web.session import sign, unsign
from opsloop.web.users import UserFileError, load_users, verify_password

router = APIRouter(include_in_schema=False)
log = logging.getLogger("opsloop.web")

def _secure(request: Request) -> bool:
    return request.url.scheme == "https"

def _login_page(request: Request, after: str, status: int = 200, error: str | None = None,
                name: str = "") -> HTMLResponse:
    con = console(request)
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status=status, error=error, after=after,
                      login_csrf=nonce, users=con.users_file is not None, name=name)
    response.set_cookie(LOGIN_COOKIE, sign(con.secret, nonce), max_age=3600, httponly=True,
                        samesite="strict", secure=_secure(request), path="/login")
    return response

@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if viewer_of(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, safe_next(next))

def _identify(request: Request, form: dict[str, str]) -> tuple[Principal, str, str]:
    """(who, via, ref) for the credentials in the form; ConsoleError when they are wrong."""
    con = console(request)
    token = form.get("token", "").strip()
    if token:
        principal = con.tokens.lookup(token)
        if principal is None:
            raise ConsoleError(401, "unknown or revoked token")
        return principal, "token", token_fingerprint(token)
    name, password = form.get("username", "").strip(), form.get("password", "")
    if not name and not password:
        raise ConsoleError(422, "enter an API token" + (
            ", or a user name and password" if con.users_file is not None else ""))
    if con.users_file is None:
        raise ConsoleError(401, "no user file is configured (OPSLOOP_CONSOLE_USERS_FILE): "
                                "sign in with an API token")
    try:
        user = load_users(con.users_file).get(name)
    except UserFileError as exc:
        raise ConsoleError(503, str(exc)) from None
    # A missing user costs the same scrypt as a wrong password: timing names no one.
    stored = user.password_hash if user is not None else _DUMMY_HASH
    if not verify_password(password, stored) or user is None:
        raise ConsoleError(401, "wrong user name or password")
    return Principal(user.name, user.role), "user", user.generation

_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43

@router.post("/login")
async def login(request: Request) -> Response:
    con = console(request)
    form = await read_form(request)
    after = safe_next(form.get("next"))
    nonce = unsign(con.secret, request.cookies.get(LOGIN_COOKIE))
    offered = form.get("csrf", "")
    if nonce is None or not hmac.compare_digest(offered.encode(), nonce.encode()):
        return _login_page(request, after, 403, "the sign-in form expired or did not come "
                                                "from this page: try again")
    client = request.client.host if request.client else "unknown"
    wait = con.throttle.wait(client)
    if wait > 0:
        page = _login_page(request, after, 429, f"too many failed sign-ins from {client}: "
                                                f"try again in {math.ceil(wait)} s")
        page.headers["Retry-After"] = str(math.ceil(wait))
        return page
    try:
        principal, via, ref = _identify(request, form)
    except ConsoleError as exc:
        if exc.status == 401:
            con.throttle.failed(client)
            log.warning("console sign-in refused from %s: %s", client, exc.message)
        return _login_page(request, after, exc.status, exc.message,
                           name=form.get("username", ""))
    con.throttle.succeeded(client)
    if not principal.may(Role.READ):
        return _login_page(request, after, 403, f"{principal.name} has role "
                           f"{principal.role.value}, which cannot use the console (it needs "
                           "read, approve or admin)")
    session = con.sessions.create(principal.name, principal.role.value, via, ref)
    log.info("%s signed in to the console from %s (%s, role %s)", principal.name, client,
             via, principal.role.value)
    response = RedirectResponse(after, status_code=303)
    response.set_cookie(COOKIE, sign(con.secret, session.id),
                        max_age=int(con.sessions.lifetime), httponly=True, samesite="strict",
                        secure=_secure(request), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response

@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer: Viewer | None = viewer_of(request)
    if viewer is None:
        raise ConsoleError(401, "not signed in")
    form = await read_form(request)
    if not hmac.compare_digest(form.get("csrf", "").encode(), viewer.session.csrf.encode()):
        raise ConsoleError(403, "the form's CSRF token is missing or stale: reload the page "
                                "and send it again")
    console(request).sessions.end(viewer.session.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=_secure(request))
    return response
