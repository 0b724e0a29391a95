"""Running the API with uvicorn: the bind rule for unauthenticated mode, a socket bound before
anything is announced, and a server thread for tests and benchmarks."""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from opsloop.api.auth import TokenTable
from opsloop.api.runtime import IntakeRuntime

UNAUTHENTICATED_BANNER = (
    "WARNING: opsloop serve runs without API tokens (OPSLOOP_API_TOKENS or "
    "OPSLOOP_API_TOKENS_FILE). Anyone who can reach {where} can post alerts and read "
    "incidents; deciding needs the local token below. It binds to loopback only until "
    "tokens are set."
)


class BindRefused(ValueError):
    """Serving without tokens on an address other machines can reach."""


class BindFailed(OSError):
    """The address cannot be listened on (in use, not ours, no such host)."""


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (0: a free port), or BindFailed naming both."""
    where = host_port(host, port)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise BindFailed(f"cannot listen on {where}: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = ("; another process is listening there: stop it or pick another --port"
                if exc.errno == errno.EADDRINUSE else "")
        raise BindFailed(f"cannot listen on {where}: {exc.strerror}{hint}") from None
    return sock


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(str(a)).is_loopback for a in addresses)


def check_bind(host: str, authenticated: bool) -> None:
    if not authenticated and not is_loopback(host):
        raise BindRefused(
            f"refusing to serve unauthenticated on {host!r}: set OPSLOOP_API_TOKENS "
            "(name:role:token,...) or OPSLOOP_API_TOKENS_FILE, or bind to 127.0.0.1"
        )


class ServerThread:
    """uvicorn in a background thread, on a port of its choosing when `port` is 0."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning") -> None:
        self.socket = listen(host, port)
        config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.host = host
        self._thread = threading.Thread(target=self.server.run, name="api", daemon=True,
                                        kwargs={"sockets": [self.socket]})

    def start(self, timeout: float = 15.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start on {self.host}")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{host_port(self.host, self.port)}"

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=15)
        self.socket.close()


@contextmanager
def running_api(runtime: IntakeRuntime, tokens: TokenTable,
                host: str = "127.0.0.1", port: int = 0) -> Iterator[ServerThread]:
    """The API and its runtime on a loopback port, stopped (both) on the way out."""
    from opsloop.api.access import answering_names
    from opsloop.api.app import create_app

    check_bind(host, authenticated=not tokens.open)
    server = ServerThread(create_app(runtime, tokens, answering_names(host)), host, port)
    runtime.start()
    try:
        yield server.start()
    finally:
        server.stop()
        runtime.stop()
