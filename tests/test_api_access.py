"""Who may decide, and from where: never anonymously, never from another site's page, never
under a name the server does not answer to (DNS rebinding). Over a real loopback server."""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import alert, bearer, webhook, work_awaiting_approval

from opsloop.api.access import answering_names, foreign_request
from opsloop.api.auth import LocalToken, Role, TokenTable, serving_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import running_api
from opsloop.policy import load_policies
from opsloop.settings import Settings

Served = tuple[httpx.Client, str, LocalToken, Settings]


@pytest.fixture
def open_api(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """No token configured, as `opsloop serve` runs it: reads open, a local approver token."""
    settings = Settings(work_dir=tmp_path / "work", user="dana")
    incident_id = work_awaiting_approval(tmp_path_factory, settings.work_dir)
    tokens, local = serving_tokens(settings)
    assert local is not None
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    with running_api(runtime, tokens) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, incident_id, local, settings


def pending_id(client: httpx.Client) -> str:
    [waiting] = client.get("/api/v1/approvals").json()
    return str(waiting["id"])


def test_without_configured_tokens_a_decision_needs_the_local_token_and_names_its_holder(
    open_api: Served,
) -> None:
    client, incident_id, local, _ = open_api
    assert stat.S_IMODE(local.path.stat().st_mode) == 0o600
    assert local.path.read_text().strip() == local.token
    approval = pending_id(client)  # reading needs no token on loopback
    anonymous = client.post(f"/api/v1/approvals/{approval}/approve", json={"reason": "go"})
    assert anonymous.status_code == 401
    assert "never anonymous" in anonymous.json()["detail"]
    assert pending_id(client) == approval
    answer = client.post(f"/api/v1/approvals/{approval}/approve", json={"reason": "go"},
                         headers=bearer(local.token))
    assert answer.status_code in (200, 202), answer.text
    assert answer.json()["by"] == "dana"
    shown = client.get(f"/api/v1/incidents/{incident_id}").json()
    assert [c["approval"]["by"] for c in shown["incident"]["actions"]] == ["dana"]


def test_a_cross_site_text_plain_post_decides_nothing(open_api: Served) -> None:
    client, _, local, _ = open_api
    approval = pending_id(client)
    path = f"/api/v1/approvals/{approval}/approve"
    # What a page on another site can send without a preflight, even holding the token.
    forged = client.post(path, content=b'{"reason": "x"}', headers={
        "Content-Type": "text/plain", "Origin": "http://attacker.example",
        **bearer(local.token)})
    assert forged.status_code == 403 and "cross-origin" in forged.json()["detail"]
    plain = client.post(path, content=b'{"reason": "x"}',
                        headers={"Content-Type": "text/plain", **bearer(local.token)})
    assert plain.status_code == 415
    assert plain.json()["detail"][0]["loc"] == "headers.content-type"
    form = client.post(path, data={"reason": "x"}, headers=bearer(local.token))
    assert form.status_code == 415
    assert pending_id(client) == approval  # nothing was decided
    own = client.post(path, json={"reason": "from our own page"},
                      headers={"Origin": str(client.base_url).rstrip("/"),
                               **bearer(local.token)})
    assert own.status_code in (200, 202), own.text


def test_a_page_reaching_loopback_under_its_own_name_is_refused(open_api: Served) -> None:
    client, _, _, _ = open_api
    port = client.base_url.port
    rebound = client.get("/api/v1/incidents", headers={"Host": f"attacker.example:{port}"})
    assert rebound.status_code == 400 and "does not answer to" in rebound.json()["detail"]
    ingest = client.post("/api/v1/alerts/alertmanager", json=webhook(alert("web")),
                         headers={"Host": f"attacker.example:{port}"})
    assert ingest.status_code == 400
    assert client.get("/api/v1/intake").json()["received"] == 0
    assert client.get("/api/v1/incidents",
                      headers={"Host": f"localhost:{port}"}).status_code == 200


@pytest.mark.parametrize(("host", "origin", "status"), [
    ("127.0.0.1:8080", None, None),
    ("localhost:8080", "http://localhost:8080", None),
    ("[::1]:8080", "http://[::1]:8080", None),
    ("127.0.0.1", "http://127.0.0.1:80", None),
    (None, None, 400),
    ("127.0.0.1:notaport", None, 400),
    ("user@127.0.0.1:8080", None, 400),
    ("attacker.example:8080", None, 400),
    ("127.0.0.1:8080", "null", 403),
    ("127.0.0.1:8080", "http://attacker.example", 403),
    ("127.0.0.1:8080", "http://127.0.0.1:9999", 403),
    ("127.0.0.1:8080", "https://127.0.0.1:8080", 403),
    ("127.0.0.1:8080", "http://localhost:8080", 403),  # same machine, another origin
])
def test_host_and_origin_must_be_this_servers_own(host: str | None, origin: str | None,
                                                  status: int | None) -> None:
    refused = foreign_request(host, origin, "http", answering_names("127.0.0.1"))
    assert (refused[0] if refused else None) == status


def test_the_names_a_server_answers_to() -> None:
    assert answering_names("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}
    assert answering_names("10.0.0.5", ["Opsloop.Internal"]) == {
        "127.0.0.1", "localhost", "::1", "10.0.0.5", "opsloop.internal"}
    assert answering_names("0.0.0.0") is None  # any name: such a bind needs tokens
    assert "ops.example" in (answering_names("::", ["ops.example"]) or set())


def test_no_table_lets_an_anonymous_caller_decide() -> None:
    with pytest.raises(ValueError, match="always needs a token"):
        TokenTable([], frozenset({Role.APPROVE}))


def test_the_api_modules_import_one_way() -> None:
    """app.py assembles routes.py and webhook.py; nothing it assembles imports it back."""
    package = Path(__file__).resolve().parent.parent / "opsloop" / "api"
    for module in package.glob("*.py"):
        if module.name in ("app.py", "server.py"):
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                assert "opsloop.api.app" not in names, f"{module.name} imports app"
