"""What every console route shares: who is signed in, the CSRF check on every form, the
templates, and the two ways a request is refused (a page sends the person to sign in; an
action answers 401/403)."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from opsloop.api.auth import Principal, Role, TokenTable
from opsloop.api.runtime import IntakeRuntime
from opsloop.web.session import Session, SessionStore, SignInThrottle, unsign
from opsloop.web.users import UserFileError, load_users

COOKIE = "opsloop_session"
LOGIN_COOKIE = "opsloop_login"
# A form is a reason, a few parameters or one postmortem; anything near this is not one.
MAX_FORM_BYTES = 1024 * 1024
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# Untrusted text (alert text, logs, runbook text, model output) is escaped in every
# template, whatever its file name.
TEMPLATES.env.autoescape = True


class ConsoleError(Exception):
    """A refusal shown as the console's error page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginRequired(Exception):
    """A page asked for without a session: the person is sent to sign in, then back."""

    def __init__(self, after: str) -> None:
        super().__init__(after)
        self.after = after


@dataclass(frozen=True)
class Console:
    runtime: IntakeRuntime
    tokens: TokenTable
    secret: bytes
    sessions: SessionStore
    users_file: Path | None
    throttle: SignInThrottle = field(default_factory=SignInThrottle)


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: their session and their identity as the API knows it."""

    session: Session
    principal: Principal

    @property
    def name(self) -> str:
        return self.principal.name

    def may(self, role: Role) -> bool:
        return self.principal.may(role)


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def current_role(con: Console, session: Session) -> Role | None:
    """The session's role now: a revoked token, a removed user or a changed password ends
    it (None); a changed role applies at once."""
    if session.via == "token":
        holder = con.tokens.holder(session.ref)
        return holder.role if holder is not None and holder.name == session.name else None
    try:
        user = load_users(con.users_file).get(session.name)
    except UserFileError:
        return None
    return user.role if user is not None and user.generation == session.ref else None


def viewer_of(request: Request) -> Viewer | None:
    con = console(request)
    session_id = unsign(con.secret, request.cookies.get(COOKIE))
    session = con.sessions.get(session_id) if session_id else None
    if session is None:
        return None
    role = current_role(con, session)
    if role is None or not Principal(session.name, role).may(Role.READ):
        return None
    return Viewer(session, Principal(session.name, role))


def page_viewer(request: Request) -> Viewer:
    """A route dependency for pages: the viewer, or off to the sign-in page."""
    viewer = viewer_of(request)
    if viewer is None:
        after = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(after)
    return viewer


async def read_form(request: Request) -> dict[str, str]:
    """An HTML form's fields (url-encoded, as browsers send them), capped in size."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ConsoleError(413, f"the form is over {MAX_FORM_BYTES} bytes")
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise ConsoleError(415, "the console takes HTML forms "
                                "(application/x-www-form-urlencoded)")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConsoleError(400, f"the form cannot be read: {exc}") from None
    return dict(pairs)


async def action_form(request: Request, needed: Role) -> tuple[Viewer, dict[str, str]]:
    """For every POST: a session (else 401), its CSRF token (else 403), the role (else 403)."""
    viewer = viewer_of(request)
    if viewer is None:
        raise ConsoleError(401, "not signed in, or the session has ended: sign in again")
    form = await read_form(request)
    offered = form.get("csrf", "")
    if not offered or not hmac.compare_digest(offered.encode(), viewer.session.csrf.encode()):
        raise ConsoleError(403, "the form's CSRF token is missing or stale: reload the page "
                                "and send it again")
    if not viewer.may(needed):
        raise ConsoleError(403, f"{viewer.name} has role {viewer.principal.role.value}; this "
                                f"needs {needed.value}")
    return viewer, form


def render(request: Request, template: str, viewer: Viewer | None, status: int = 200,
           *, show_flash: bool = True, **context: Any) -> HTMLResponse:
    """A page (or, with show_flash=False, a fragment that must not consume the message a
    redirect left for the page)."""
    flash = None
    if viewer is not None and status == 200 and show_flash:
        flash = console(request).sessions.take_flash(viewer.session.id)
    queue = (len(console(request).runtime.read(lambda s: s.pending()))
             if viewer is not None and show_flash else 0)
    return TEMPLATES.TemplateResponse(request, template, status_code=status, context={
        "viewer": viewer, "csrf": viewer.session.csrf if viewer else "", "queue": queue,
        "may_approve": viewer.may(Role.APPROVE) if viewer else False,
        "flash": flash, "now": time.time(), **context})


def login_redirect(after: str) -> str:
    return f"/login?next={quote(after, safe='')}"


def safe_next(after: str | None) -> str:
    """Only a path on this server: never `//host` or `https://...` (an open redirect)."""
    if not after or not after.startswith("/") or after.startswith("//") or "\\" in after:
        return "/"
    return after
