"""Bearer tokens with roles, from settings: `OPSLOOP_API_TOKENS="name:role:token,..."` or a
tokens file holding the same entries one per line.

Roles: `ingest` may post alerts and nothing else; `read` sees incidents, approvals,
signals and postmortems; `approve` reads and answers approvals; `admin` may do everything.
With no token configured, posting alerts and reading need no token and `opsloop serve` binds
only to loopback; deciding still does: serve then issues a local approver token at start.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from opsloop.settings import Settings

MIN_TOKEN_CHARS = 16


class Role(StrEnum):
    INGEST = "ingest"
    READ = "read"
    APPROVE = "approve"
    ADMIN = "admin"


# What each role may do besides itself: approvers read what they approve; admins do all.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.INGEST: frozenset({Role.INGEST}),
    Role.READ: frozenset({Role.READ}),
    Role.APPROVE: frozenset({Role.APPROVE, Role.READ}),
    Role.ADMIN: frozenset(Role),
}


class TokenConfigError(ValueError):
    """A token entry that cannot be used; the message says which entry, never the secret."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    authenticated: bool = True

    def may(self, needed: Role) -> bool:
        return needed in GRANTS[self.role]


# Who calls without a token where no token is configured. Never an approver: a decision
# always carries the name of a token's holder.
ANONYMOUS = Principal(name="anonymous", role=Role.READ, authenticated=False)
UNAUTHENTICATED_ROLES = frozenset({Role.INGEST, Role.READ})
LOCAL_TOKEN_FILE = "api-token"


@dataclass(frozen=True)
class _Entry:
    token: bytes
    principal: Principal


class TokenTable:
    """Who a bearer token belongs to, and what callers without one may do (`open_roles`).
    Comparison is constant-time per entry."""

    def __init__(self, entries: list[tuple[str, Role, str]],
                 open_roles: frozenset[Role] = frozenset()) -> None:
        if Role.APPROVE in open_roles or Role.ADMIN in open_roles:
            raise ValueError("deciding always needs a token")
        self._entries = [_Entry(t.encode(), Principal(n, r)) for n, r, t in entries]
        self.open_roles = open_roles

    @property
    def open(self) -> bool:
        """Some requests need no token (no token configured: loopback only)."""
        return bool(self.open_roles)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, token: str) -> Principal | None:
        offered = token.encode()
        found = None
        for entry in self._entries:  # no early exit: timing says nothing about which matched
            if hmac.compare_digest(entry.token, offered):
                found = entry.principal
        return found

    def holder(self, fingerprint: str) -> Principal | None:
        """Who holds the token with this `token_fingerprint`, while it is still configured:
        a console session keeps the fingerprint, never the token, so revoking the token or
        changing its role ends or changes the session."""
        offered = fingerprint.encode()
        found = None
        for entry in self._entries:
            if hmac.compare_digest(token_fingerprint(entry.token.decode()).encode(), offered):
                found = entry.principal
        return found


def token_fingerprint(token: str) -> str:
    """A one-way name for a token (SHA-256), safe to keep where the token must not be."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_entries(text: str, source: str, separator: str = ",") -> list[tuple[str, Role, str]]:
    """`name:role:token` entries; errors name the source and the entry, not the secret."""
    entries: list[tuple[str, Role, str]] = []
    seen: set[str] = set()
    raw_items = text.split(separator) if separator != "\n" else text.splitlines()
    for number, raw in enumerate(raw_items, start=1):
        item = raw.split("#", 1)[0].strip() if separator == "\n" else raw.strip()
        if not item:
            continue
        where = f"{source} entry {number}"
        parts = item.split(":", 2)
        if len(parts) != 3:
            raise TokenConfigError(f"{where}: expected name:role:token")
        name, role, token = (p.strip() for p in parts)
        if not name:
            raise TokenConfigError(f"{where}: the name is empty")
        if role not in Role.__members__.values():
            raise TokenConfigError(f"{where} ({name}): unknown role {role!r}; roles: "
                                   f"{', '.join(r.value for r in Role)}")
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenConfigError(f"{where} ({name}): the token is shorter than "
                                   f"{MIN_TOKEN_CHARS} characters")
        if token in seen:
            raise TokenConfigError(f"{where} ({name}): the same token is listed twice")
        seen.add(token)
        entries.append((name, Role(role), token))
    return entries


def load_tokens(settings: Settings) -> TokenTable:
    """Tokens from OPSLOOP_API_TOKENS and OPSLOOP_API_TOKENS_FILE (both may be used); with
    none, a table open to ingest and read and closed to decisions."""
    entries = token_entries(settings)
    return TokenTable(entries, frozenset() if entries else UNAUTHENTICATED_ROLES)


def token_entries(settings: Settings) -> list[tuple[str, Role, str]]:
    """The configured `name:role:token` entries, checked."""
    entries: list[tuple[str, Role, str]] = []
    if settings.api_tokens is not None:
        entries += parse_entries(settings.api_tokens.get_secret_value(), "OPSLOOP_API_TOKENS")
    if settings.api_tokens_file is not None:
        path = Path(settings.api_tokens_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenConfigError(f"tokens file {path}: cannot read it ({exc.strerror})") from None
        entries += parse_entries(text, f"tokens file {path}", separator="\n")
    tokens = [t for _, _, t in entries]
    if len(set(tokens)) != len(tokens):
        raise TokenConfigError("the same token appears in OPSLOOP_API_TOKENS and the tokens file")
    return entries


@dataclass(frozen=True)
class LocalToken:
    """The approver token `opsloop serve` issues when none is configured."""

    principal: Principal
    token: str
    path: Path

    def discard(self) -> None:
        """Remove the file, unless a later serve has replaced it with its own token."""
        with contextlib.suppress(OSError):
            if self.path.read_text(encoding="utf-8").strip() == self.token:
                self.path.unlink()


def local_token_path(settings: Settings) -> Path:
    return settings.state_dir / LOCAL_TOKEN_FILE


def issue_local_token(settings: Settings) -> LocalToken:
    """A fresh random approver token in the name of the user who started serve, written
    owner-only (0600) to the state dir so that user's local tools can read it."""
    token = secrets.token_urlsafe(32)
    path = local_token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, 0o600)  # a file left by an older serve may have looser bits
        out.write(token + "\n")
    return LocalToken(Principal(settings.user, Role.APPROVE), token, path)


def serving_tokens(settings: Settings) -> tuple[TokenTable, LocalToken | None]:
    """The configured tokens; with none configured, the open table plus a local approver."""
    entries = token_entries(settings)
    if entries:
        return TokenTable(entries), None
    local = issue_local_token(settings)
    return TokenTable([(local.principal.name, local.principal.role, local.token)],
                      UNAUTHENTICATED_ROLES), local
