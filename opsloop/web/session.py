"""Console sessions: a random id kept server-side (state/console-sessions.db) with the
identity, its role, a CSRF token and a flash message; the cookie holds the id signed with
the console secret (HMAC-SHA256), so a forged or tampered cookie is refused before any
lookup and rotating the secret ends every session."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opsloop.settings import Settings

SECRET_FILE = "console-secret"
SESSIONS_FILE = "console-sessions.db"
MIN_SECRET_CHARS = 32


class SessionConfigError(ValueError):
    """A console secret that cannot sign sessions; the message never shows it."""


def console_secret(settings: Settings) -> bytes:
    """OPSLOOP_CONSOLE_SECRET, or the secret generated once into the state dir (0600)."""
    if settings.console_secret is not None:
        value = settings.console_secret.get_secret_value()
        if len(value) < MIN_SECRET_CHARS:
            raise SessionConfigError(f"OPSLOOP_CONSOLE_SECRET is shorter than "
                                     f"{MIN_SECRET_CHARS} characters")
        return value.encode()
    path = settings.state_dir / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < MIN_SECRET_CHARS:
        raise SessionConfigError(f"{path}: the console secret is shorter than "
                                 f"{MIN_SECRET_CHARS} characters; delete the file to have a "
                                 "new one generated (every session ends)")
    return value.encode()


def sign(secret: bytes, value: str) -> str:
    mac = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    return f"{value}.{mac}"


def unsign(secret: bytes, signed: str | None) -> str | None:
    """The value of a cookie `sign` made with `secret`; None for anything else."""
    if not signed or "." not in signed or len(signed) > 512:
        return None
    value, mac = signed.rsplit(".", 1)
    expected = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    return value if hmac.compare_digest(mac, expected) else None


@dataclass(frozen=True)
class Session:
    id: str
    name: str
    role: str
    via: str  # "token" or "user": how the person signed in
    ref: str  # the token's fingerprint, or the user's password generation
    csrf: str
    expires: float


class SessionStore:
    """Sessions in SQLite; one short connection per call, so any worker thread may use it."""

    def __init__(self, path: Path, lifetime_seconds: float) -> None:
        self.path = path
        self.lifetime = lifetime_seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, name TEXT, "
                       "role TEXT, via TEXT, ref TEXT, csrf TEXT, expires REAL, flash TEXT)")

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:
                yield db
        finally:
            db.close()

    def create(self, name: str, role: str, via: str, ref: str) -> Session:
        session = Session(secrets.token_urlsafe(32), name, role, via, ref,
                          secrets.token_urlsafe(32), time.time() + self.lifetime)
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                       (session.id, name, role, via, ref, session.csrf, session.expires))
        return session

    def get(self, session_id: str) -> Session | None:
        with self._db() as db:
            row = db.execute("SELECT id, name, role, via, ref, csrf, expires FROM sessions "
                             "WHERE id = ?", (session_id,)).fetchone()
        if row is None or row[6] < time.time():
            return None
        return Session(*row)

    def end(self, session_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def flash(self, session_id: str, message: str) -> None:
        with self._db() as db:
            db.execute("UPDATE sessions SET flash = ? WHERE id = ?", (message, session_id))

    def take_flash(self, session_id: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT flash FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None or row[0] is None:
                return None
            db.execute("UPDATE sessions SET flash = NULL WHERE id = ?", (session_id,))
        return str(row[0])


class SignInThrottle:
    """At most `allowed` failed sign-ins per client address in `window` seconds: a token is
    too long to guess, but a password is not. Kept in memory (a restart forgets), bounded."""

    MAX_CLIENTS = 10_000

    def __init__(self, allowed: int = 5, window: float = 300.0) -> None:
        self.allowed = allowed
        self.window = window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window]
            if recent:
                self._failures[client] = recent
            else:
                self._failures.pop(client, None)
            if len(recent) < self.allowed:
                return 0.0
            return self.window - (now - recent[0])

    def failed(self, client: str) -> None:
        with self._lock:
            if client not in self._failures and len(self._failures) >= self.MAX_CLIENTS:
                self._failures.pop(next(iter(self._failures)))
            self._failures.setdefault(client, []).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
