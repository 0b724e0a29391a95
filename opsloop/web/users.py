"""The console's local user file: `name:role:scrypt$n$r$p$salt$hash` lines, `#` comments.

Passwords are hashed with the standard library's scrypt (RFC 7914) under a random salt;
the file never holds a password. `python -m opsloop.web.users add NAME --role ROLE` adds or
replaces a user, reading the password from stdin (or prompting on a terminal).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsloop.api.auth import Role
from opsloop.settings import Settings, load_settings

# scrypt's cost: 2**14 with r=8 takes ~50 ms and 16 MiB, the interactive-login figure
# RFC 7914 section 2 gives.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_CHARS = 12
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


class UserFileError(ValueError):
    """A user file that cannot be used; the message names the file and line, never a hash."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str

    @property
    def generation(self) -> str:
        """Changes when the password does: a session made before a change ends with it."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:32]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` hashes to `stored`; False for a wrong one or a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        offered = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                                 p=int(p), maxmem=64 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(offered, expected)


def parse_users(text: str, source: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source} line {number}"
        parts = line.split(":", 2)
        if len(parts) != 3:
            raise UserFileError(f"{where}: expected name:role:scrypt$...")
        name, role, stored = (p.strip() for p in parts)
        if not name or not set(name) <= _NAME_CHARS:
            raise UserFileError(f"{where}: the name {name[:60]!r} must be letters, digits, "
                                "'.', '_', '@' or '-'")
        if role not in Role.__members__.values():
            raise UserFileError(f"{where} ({name}): unknown role {role!r}; roles: "
                                f"{', '.join(r.value for r in Role)}")
        if not stored.startswith("scrypt$") or stored.count("$") != 5:
            raise UserFileError(f"{where} ({name}): the password hash is not scrypt$n$r$p$"
                                "salt$hash; add the user again with `python -m "
                                "opsloop.web.users add`")
        if name in users:
            raise UserFileError(f"{where}: {name} is listed twice")
        users[name] = User(name, Role(role), stored)
    return users


def load_users(path: Path | None) -> dict[str, User]:
    """The users of the file at `path`; none when no file is configured."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserFileError(f"users file {path}: no such file (OPSLOOP_CONSOLE_USERS_FILE); "
                            "create it with `python -m opsloop.web.users add NAME --role "
                            "ROLE`") from None
    except OSError as exc:
        raise UserFileError(f"users file {path}: cannot read it ({exc.strerror})") from None
    return parse_users(text, f"users file {path}")


def add_user(path: Path, name: str, role: Role, password: str) -> None:
    """Add `name`, or replace its role and password, keeping every other line as it was."""
    if not name or not set(name) <= _NAME_CHARS:
        raise UserFileError(f"the name {name[:60]!r} must be letters, digits, '.', '_', '@' "
                            "or '-'")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserFileError(f"the password is shorter than {MIN_PASSWORD_CHARS} characters")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    parse_users("\n".join(lines), f"users file {path}")  # refuse to extend a broken file
    entry = f"{name}:{role.value}:{hash_password(password)}"
    kept = [x for x in lines if x.split("#", 1)[0].split(":", 1)[0].strip() != name]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join([*kept, entry]) + "\n")
    os.replace(tmp, path)


def _add_arguments(add: argparse.ArgumentParser) -> None:
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--file", type=Path, default=None,
                     help="the users file (default: OPSLOOP_CONSOLE_USERS_FILE)")


def _add_command(name: str, role: str, path: Path | None) -> int:
    """Add a user with the password from stdin (prompted twice on a terminal); 0, or 2 with
    the reason on stderr."""
    if path is None:
        print("error: no users file: pass --file PATH or set OPSLOOP_CONSOLE_USERS_FILE",
              file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        add_user(path, name, Role(role), password)
    except UserFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{name} ({role}) written to {path}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """`opsloop users add NAME --role ROLE`, for the CLI's parser."""
    p = sub.add_parser("users", parents=[common], help="console users (a local user file)")
    verbs = p.add_subparsers(dest="users_command", metavar="VERB", required=True)
    add = verbs.add_parser("add", parents=[common],
                           help="add a user or replace one's role and password (password "
                                "from stdin, or prompted)")
    _add_arguments(add)
    add.set_defaults(handler=_cli_add)


def _cli_add(args: argparse.Namespace, settings: Settings, ui: Any) -> int:
    return _add_command(args.name, args.role, args.file or settings.console_users_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsloop.web.users",
        description="Add a console user (password from stdin, or prompted on a terminal).")
    verbs = parser.add_subparsers(dest="verb", required=True)
    _add_arguments(verbs.add_parser("add", help="add a user or replace one's role and "
                                               "password"))
    args = parser.parse_args(argv)
    return _add_command(args.name, args.role, args.file or load_settings().console_users_file)


if __name__ == "__main__":
    raise SystemExit(main())
