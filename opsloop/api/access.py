"""Who may call the API: a bearer token checked per route, and a guard in front of every
route that refuses requests under a name this server does not answer to (a DNS-rebinding
page reaches loopback under its own name) or sent by a browser from another site's page."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from opsloop.api.auth import ANONYMOUS, LOCAL_TOKEN_FILE, Principal, Role, TokenTable

_bearer = HTTPBearer(auto_error=False, description="name:role:token from OPSLOOP_API_TOKENS, "
                                                   "or the local token `opsloop serve` printed")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# What every route behind `authorize` may answer besides its own statuses (OpenAPI).
AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "no bearer token, or one this server does not know"},
    403: {"description": "the token's role does not allow this"},
}


def admit(tokens: TokenTable, offered: str | None, needed: Role) -> Principal:
    """The caller, if `offered` (a bearer token or None) grants `needed`; 401 / 403 if not."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if offered is None:
        if needed in tokens.open_roles:
            return ANONYMOUS
        if tokens.open:
            raise HTTPException(
                401, f"this needs the {needed.value} role, which is never anonymous: send the "
                     "token `opsloop serve` printed at start (also in <work dir>/state/"
                     f"{LOCAL_TOKEN_FILE}) as Authorization: Bearer <token>", headers=challenge)
        raise HTTPException(401, "missing bearer token: send Authorization: Bearer <token>",
                            headers=challenge)
    principal = tokens.lookup(offered)
    if principal is None:
        raise HTTPException(401, "unknown or revoked token", headers=challenge)
    if not principal.may(needed):
        raise HTTPException(403, f"{principal.name} has role {principal.role.value}; "
                                 f"this needs {needed.value}")
    return principal


def authorize(role: Role) -> Callable[..., Principal]:
    """A route dependency: the caller's identity, if its token grants `role`."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        if credentials is not None and credentials.scheme.lower() != "bearer":
            raise HTTPException(401, f"{credentials.scheme} credentials: send Authorization: "
                                     "Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
        offered = credentials.credentials if credentials is not None else None
        return admit(request.app.state.tokens, offered, role)

    return dependency


def answering_names(bound_host: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """The host names requests may be addressed to: the bound host, loopback names and
    `extra`. None (any name) for a wildcard bind with no names given; such a bind needs
    tokens (`check_bind`), so a rebinding page gains nothing by reaching it."""
    names = {n.strip().strip("[]").lower() for n in extra if n.strip()}
    bound = bound_host.strip().strip("[]").lower()
    if bound in _WILDCARDS and not names:
        return None
    return frozenset(LOOPBACK_NAMES | names | ({bound} - _WILDCARDS))


def _endpoint(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.path or parts.query or parts.username is not None:
        return None
    return scheme, parts.hostname.rstrip("."), port or _DEFAULT_PORTS.get(scheme, 0)


def foreign_request(host: str | None, origin: str | None, scheme: str,
                    names: frozenset[str] | None) -> tuple[int, str] | None:
    """Why a request must be refused before any route sees it (status, message), or None.

    Host must be a name this server answers to; Origin, which browsers send on cross-site
    and state-changing requests, must be this server's own scheme://host:port."""
    if not host:
        return 400, "no Host header: send the host:port you connected to"
    ours = _endpoint(scheme, host)
    if ours is None:
        return 400, f"Host header {host[:200]!r} is not a host[:port]"
    if names is not None and ours[1] not in names:
        return 400, (f"this server does not answer to {ours[1][:200]!r}; it answers to "
                     f"{', '.join(sorted(names))} (opsloop serve --allow-host NAME adds one)")
    if origin is None:
        return None
    split = urlsplit(origin) if origin != "null" else None
    theirs = _endpoint(split.scheme, split.netloc) if split and split.scheme else None
    if theirs != ours:
        return 403, (f"cross-origin request refused: Origin {origin[:200]!r} is not this "
                     f"server ({scheme}://{host[:200]})")
    return None


class SameOriginOnly:
    """ASGI middleware applying `foreign_request` to every HTTP request."""

    def __init__(self, app: ASGIApp, names: frozenset[str] | None) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            refused = foreign_request(headers.get("host"), headers.get("origin"),
                                      scope.get("scheme", "http"), self.names)
            if refused is not None:
                status, message = refused
                await JSONResponse(status_code=status, content={"detail": message})(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)
