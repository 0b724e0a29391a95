"""Bearer tokens with roles, from settings: `OPSLOOP_API_TOKENS="name:role:token,..."` or a
tokens file holding the same entries one per line.

Roles: `ingest` may post alerts and nothing else; `read` sees incidents, approvals,
signals and postmortems; `approve` reads and answers approvals; `admin` may do everything.
With no token configured the API is open — `opsloop serve` then binds only to loopback.
"""

from __future__ import annotations

import hmac
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


ANONYMOUS = Principal(name="anonymous", role=Role.ADMIN, authenticated=False)


@dataclass(frozen=True)
class _Entry:
    token: bytes
    principal: Principal


class TokenTable:
    """Who a bearer token belongs to. Comparison is constant-time per entry."""

    def __init__(self, entries: list[tuple[str, Role, str]]) -> None:
        self._entries = [_Entry(t.encode(), Principal(n, r)) for n, r, t in entries]

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, token: str) -> Principal | None:
        offered = token.encode()
        found = None
        for entry in self._entries:  # no early exit: timing says nothing about which matched
            if hmac.compare_digest(entry.token, offered):
                found = entry.principal
        return found


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
    """Tokens from OPSLOOP_API_TOKENS and OPSLOOP_API_TOKENS_FILE (both may be used)."""
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
    return TokenTable(entries)
