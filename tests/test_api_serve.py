"""`opsloop serve` from the command line: it binds before it says anything, so a busy port is
one readable line; without tokens it prints the local approver token and answers with it."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsloop.api.server import BindFailed, ServerThread, host_port, listen
from opsloop.cli.main import main


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield int(holder.getsockname()[1])
    finally:
        holder.close()


def test_serve_on_a_busy_port_says_so_in_one_line_before_any_banner(
    busy_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPSLOOP_API_TOKENS", raising=False)
    code = main(["serve", "--port", str(busy_port), "--work-dir", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert code != 0
    assert f"cannot listen on 127.0.0.1:{busy_port}" in err
    assert "in use" in err
    assert "opsloop serve on" not in err and "WARNING" not in err
    assert "Traceback" not in err
    assert not (tmp_path / "work" / "state" / "api-token").exists()  # no token was issued


def test_a_server_thread_on_a_busy_port_fails_naming_it(busy_port: int) -> None:
    with pytest.raises(BindFailed, match=rf"127\.0\.0\.1:{busy_port}"):
        ServerThread(object(), port=busy_port)
    with pytest.raises(BindFailed, match=r"cannot listen on no-such-host\.invalid:80"):
        listen("no-such-host.invalid", 80)
    assert host_port("::1", 8080) == "[::1]:8080"


@pytest.mark.slow
def test_serve_without_tokens_prints_the_real_port_and_a_local_token_that_decides(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPSLOOP_API_TOKENS", "OPSLOOP_API_TOKENS_FILE")}
    work = tmp_path / "work"
    server = subprocess.Popen(
        [sys.executable, "-m", "opsloop", "serve", "--port", "0", "--work-dir", str(work)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "opsloop serve on" in line:
                break
        text = "".join(lines)
        assert "opsloop serve on http://127.0.0.1:" in text, text
        url = text.split("opsloop serve on ", 1)[1].split(" ", 1)[0]
        assert not url.endswith(":0")
        token_file = work / "state" / "api-token"
        token = token_file.read_text().strip()
        assert token in text
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        anonymous = httpx.post(f"{url}/api/v1/approvals/APR-1/approve", timeout=10)
        assert anonymous.status_code == 401
        answer = httpx.post(f"{url}/api/v1/approvals/APR-1/approve", timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 404  # admitted; there is just no such approval
        assert httpx.get(f"{url}/healthz", timeout=10).json()["auth"] == "open"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert not (work / "state" / "api-token").exists()  # the token leaves with the server
