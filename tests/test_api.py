"""`opsloop serve`'s API over a real loopback HTTP server: tokens and roles, the webhook,
incidents, approvals with the caller's identity, learn documents, health, OpenAPI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from opsloop.api.auth import TokenConfigError, load_tokens, parse_entries
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import BindRefused, check_bind, running_api
from opsloop.graph.runner import OperateLoop
from opsloop.policy import Policies, load_policies
from opsloop.settings import Settings
from opsloop.watch import run_scenario

INGEST, READ, APPROVE, ADMIN = (f"{r}-token-0123456789abcdef" for r in
                                ("ingest", "read", "approve", "admin"))
TOKENS = f"am:ingest:{INGEST},viewer:read:{READ},ana:approve:{APPROVE},root:admin:{ADMIN}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def quick_policies(settings: Settings) -> Policies:
    """The shipped policies, with incidents opening as soon as their alerts arrive."""
    policies = load_policies(settings.policies_dir)
    intake = policies.intake.model_copy(update={"group_wait_minutes": 0})
    return policies.model_copy(update={"intake": intake})


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[httpx.Client, IntakeRuntime]]:
    settings = settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    runtime = IntakeRuntime(settings, quick_policies(settings))
    with running_api(runtime, load_tokens(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, runtime


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "opsloop", "groupKey": "{}",
            "alerts": list(alerts)}


def alert(service: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {"status": status, "startsAt": "2026-11-26T11:58:01Z",
            "labels": {"alertname": "HighErrorRate", "service": service, "env": "prod",
                       **labels}}


def wait_incidents(client: httpx.Client, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = client.get("/api/v1/incidents", headers=auth(READ)).json()
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} incidents opened")


def test_each_role_may_do_only_its_part(api: tuple[httpx.Client, IntakeRuntime]) -> None:
    client, _ = api
    post = "/api/v1/alerts/alertmanager"
    assert client.post(post, json=webhook(alert("web"))).status_code == 401
    assert client.post(post, json=webhook(alert("web")), headers=auth("x" * 20)).status_code \
        == 401
    assert client.post(post, json=webhook(alert("web")), headers=auth(READ)).status_code == 403
    assert client.post(post, json=webhook(alert("web")), headers=auth(INGEST)).status_code == 200
    assert client.get("/api/v1/incidents", headers=auth(INGEST)).status_code == 403
    for token in (READ, APPROVE, ADMIN):
        assert client.get("/api/v1/incidents", headers=auth(token)).status_code == 200
    refused = client.post("/api/v1/approvals/APR-1/approve", headers=auth(READ))
    assert refused.status_code == 403 and "needs approve" in refused.json()["detail"]
    assert client.get("/healthz").json() == {"status": "ok", "auth": "tokens"}


def test_a_storm_over_http_opens_one_incident(api: tuple[httpx.Client, IntakeRuntime]) -> None:
    client, runtime = api
    for batch in range(5):
        alerts = [alert(f"svc-{i % 4}", pod=f"p{batch}-{i}") for i in range(1000)]
        answer = client.post("/api/v1/alerts/alertmanager", json=webhook(*alerts),
                             headers=auth(INGEST))
        assert answer.json()["accepted"] == 1000
    again = client.post("/api/v1/alerts/alertmanager",
                        json=webhook(*[alert("svc-0", pod=f"p0-{i}") for i in range(0, 1000, 4)]),
                        headers=auth(INGEST)).json()
    assert again["deduplicated"] == 250
    [incident] = wait_incidents(client, 1)
    assert incident["services"] == ["svc-0", "svc-1", "svc-2", "svc-3"]
    assert incident["alerts"] == runtime.settings.max_anomalies_per_incident
    detail = client.get(f"/api/v1/incidents/{incident['id']}", headers=auth(READ)).json()
    assert detail["audit"][0]["kind"] == "opened"
    assert client.get("/api/v1/intake", headers=auth(READ)).json()["alerts_held"] == 5000


def test_bad_alerts_get_422_naming_them_and_the_good_ones_still_count(
    api: tuple[httpx.Client, IntakeRuntime],
) -> None:
    client, runtime = api
    bad = alert("web")
    bad["labels"]["service"] = ["not", "a", "string"]
    answer = client.post("/api/v1/alerts/alertmanager", json=webhook(alert("checkout"), bad),
                         headers=auth(INGEST))
    assert answer.status_code == 422
    body = answer.json()
    assert body["accepted"] == 1 and body["rejected"] == 1
    assert body["detail"][0]["loc"] == "alerts[1].labels.service"
    assert runtime.grouper.stats.received == 1
    not_json = client.post("/api/v1/alerts/alertmanager", content=b"{", headers=auth(INGEST))
    assert not_json.status_code == 400 and not_json.json()["detail"][0]["loc"] == "body"
    huge = client.post("/api/v1/alerts/alertmanager", headers=auth(INGEST),
                       content=b" " * (runtime.settings.api_max_body_bytes + 1))
    assert huge.status_code == 413


def test_approvals_are_answered_over_http_in_the_callers_name(
        settings: Settings, make_loop: Callable[[Settings], OperateLoop]) -> None:
    loop = make_loop(settings)
    try:
        run = run_scenario(loop, "bad_deploy", 7, lambda _: None)
    finally:
        loop.close()
    [incident] = run.incidents
    assert incident.status.value == "awaiting_approval"
    settings = settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    with running_api(runtime, load_tokens(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        [waiting] = client.get("/api/v1/approvals", headers=auth(READ)).json()
        path = f"/api/v1/approvals/{waiting['id']}"
        assert client.post(f"{path}/reject", json={}, headers=auth(APPROVE)).status_code == 422
        extra = client.post(f"{path}/approve", json={"by": "mallory"}, headers=auth(APPROVE))
        assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == "body.by"
        answer = client.post(f"{path}/approve", json={"reason": "go"}, headers=auth(APPROVE))
        assert answer.status_code in (200, 202), answer.text
        assert answer.json()["by"] == "ana"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = client.get(f"/api/v1/incidents/{incident.id}", headers=auth(READ)).json()
            if shown["incident"]["status"] == "mitigated":
                break
            time.sleep(0.2)
        assert shown["incident"]["status"] == "mitigated"
        assert [(c["approval"]["by"], c["approval"]["reason"])
                for c in shown["incident"]["actions"]] == [("ana", "go")]
        assert ("ana", "approval") in [(a["actor"], a["kind"]) for a in shown["audit"]]
        again = client.post(f"{path}/approve", headers=auth(ADMIN))
        assert again.status_code == 409 and "already decided" in again.json()["detail"]
        assert client.post("/api/v1/approvals/NOPE/approve", headers=auth(ADMIN)).status_code \
            == 404
        postmortems = client.get("/api/v1/postmortems", headers=auth(READ)).json()
        assert [p["name"] for p in postmortems] == [f"{incident.id}.md"]
        doc = client.get(f"/api/v1/postmortems/{incident.id}.md", headers=auth(READ)).json()
        assert f"incident: {incident.id}" in doc["markdown"]
        assert client.get("/api/v1/postmortems/..%2Fstate.md",
                          headers=auth(READ)).status_code == 404
        assert client.get("/api/v1/signals", headers=auth(READ)).status_code == 200


def test_the_openapi_document_describes_the_webhook_and_the_bearer_scheme(
    api: tuple[httpx.Client, IntakeRuntime],
) -> None:
    client, _ = api
    doc = client.get("/openapi.json").json()
    assert "/api/v1/alerts/alertmanager" in doc["paths"]
    webhook_schema = doc["components"]["schemas"]["AlertmanagerWebhook"]
    assert {"version", "alerts"} <= set(webhook_schema["required"])
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    assert client.get("/readyz").json()["ready"] is True


def test_without_tokens_serve_stays_on_loopback_and_says_so(settings: Settings) -> None:
    check_bind("127.0.0.1", authenticated=False)
    check_bind("localhost", authenticated=False)
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        with pytest.raises(BindRefused, match="unauthenticated"):
            check_bind(host, authenticated=False)
    check_bind("0.0.0.0", authenticated=True)
    runtime = IntakeRuntime(settings, quick_policies(settings))
    with running_api(runtime, load_tokens(settings)) as server:
        answer = httpx.post(f"{server.url}/api/v1/alerts/alertmanager",
                            json=webhook(alert("web")))
        assert answer.status_code == 200
        assert answer.headers["X-Opsloop-Warning"].startswith("unauthenticated")
        assert httpx.get(f"{server.url}/healthz").json()["auth"] == "open"


def test_serve_refuses_a_public_bind_without_tokens_in_one_readable_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsloop.cli.main import main

    monkeypatch.delenv("OPSLOOP_API_TOKENS", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--work-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "refusing to serve unauthenticated on '0.0.0.0'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("text", "message"), [
    ("alice:approve", "expected name:role:token"),
    ("alice:root:0123456789abcdef", "unknown role 'root'"),
    ("alice:read:short", "shorter than 16"),
    (":read:0123456789abcdef", "name is empty"),
    ("a:read:0123456789abcdef,b:admin:0123456789abcdef", "listed twice"),
])
def test_bad_token_entries_are_named_without_echoing_the_secret(text: str, message: str) -> None:
    with pytest.raises(TokenConfigError, match=message) as caught:
        parse_entries(text, "OPSLOOP_API_TOKENS")
    assert "0123456789abcdef" not in str(caught.value)


def test_tokens_file_entries_join_the_environment_ones(tmp_path: Path,
                                                       settings: Settings) -> None:
    path = tmp_path / "tokens"
    path.write_text("# on-call\nbob:approve:bob-secret-token-000001  # rotated weekly\n")
    table = load_tokens(settings.model_copy(update={
        "api_tokens": SecretStr(f"am:ingest:{INGEST}"), "api_tokens_file": path}))
    assert len(table) == 2
    assert table.lookup("bob-secret-token-000001") is not None
    assert json.dumps(str(table.lookup(INGEST))).count(INGEST) == 0
