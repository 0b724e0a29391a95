"""The webhook over HTTP: what it counts, and that a storm's notification does not stall the
server (health checks are answered while it is parsed and grouped)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import alert, bearer, webhook
from pydantic import SecretStr

from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.api.server import running_api
from opsloop.intake import IntakeStats
from opsloop.models import Anomaly
from opsloop.policy import load_policies
from opsloop.settings import Settings

TOKEN = "webhook-ingest-token-0123456789"
PATH = "/api/v1/alerts/alertmanager"


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[httpx.Client, IntakeRuntime]]:
    settings = settings.model_copy(update={"api_tokens": SecretStr(f"am:ingest:{TOKEN}")})
    runtime = IntakeRuntime(settings, load_policies(settings.policies_dir))
    with running_api(runtime, load_tokens(settings)) as server, \
            httpx.Client(base_url=server.url, timeout=60, headers=bearer(TOKEN)) as client:
        yield client, runtime


def test_rejected_counts_alerts_and_detail_lists_every_problem(
    api: tuple[httpx.Client, IntakeRuntime],
) -> None:
    client, _ = api
    broken: dict[str, Any] = alert("web")
    broken["labels"]["service"] = 7
    broken["status"] = "burning"
    broken["startsAt"] = "yesterday"
    answer = client.post(PATH, json=webhook(alert("checkout"), broken, alert("search")))
    assert answer.status_code == 422
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert {e["loc"] for e in body["detail"]} == {
        "alerts[1].labels.service", "alerts[1].status", "alerts[1].startsAt"}


def test_a_body_declared_as_something_other_than_json_is_415(
    api: tuple[httpx.Client, IntakeRuntime],
) -> None:
    client, runtime = api
    answer = client.post(PATH, content=json.dumps(webhook(alert("web"))).encode(),
                         headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert "application/json" in answer.json()["detail"][0]["msg"]
    assert runtime.grouper.stats.received == 0
    vendor = client.post(PATH, content=json.dumps(webhook(alert("web"))).encode(),
                         headers={"Content-Type": "application/vnd.alertmanager+json"})
    assert vendor.status_code == 200


def test_bodies_that_break_a_parser_are_4xx_on_the_worker_thread_too(
    api: tuple[httpx.Client, IntakeRuntime],
) -> None:
    client, _ = api
    json_type = {"Content-Type": "application/json"}
    deep = client.post(PATH, content=b"[" * 100_000 + b"]" * 100_000, headers=json_type)
    assert (deep.status_code, deep.json()["detail"][0]["loc"]) == (400, "body")
    wide = client.post(PATH, content=b'{"version": "4", "alerts": [' + b",".join(
        [b"1"] * 100_001) + b"]}", headers=json_type)
    assert (wide.status_code, wide.json()["detail"][0]["loc"]) == (413, "alerts")
    assert client.get("/healthz").status_code == 200


# Grouping stand-in for a slower machine: what matters is that it runs off the event loop.
SLOW_GROUPING_SECONDS = 2.0
HEALTH_BOUND_SECONDS = 1.0


def test_health_checks_are_answered_while_a_storm_is_parsed_and_grouped(
    api: tuple[httpx.Client, IntakeRuntime],
) -> None:
    client, runtime = api
    ingest = runtime.ingest

    def slow_ingest(anomalies: list[Anomaly]) -> IntakeStats:
        time.sleep(SLOW_GROUPING_SECONDS)
        return ingest(anomalies)

    runtime.ingest = slow_ingest  # type: ignore[method-assign]
    storm = json.dumps(webhook(*[alert(f"svc-{i % 50}", pod=f"pod-{i}", zone="eu-west-1a")
                                 for i in range(20_000)])).encode()
    assert len(storm) > 3_000_000
    answered: dict[str, Any] = {}

    def post_storm() -> None:
        started = time.monotonic()
        answer = client.post(PATH, content=storm, headers={"Content-Type": "application/json"})
        answered.update(status=answer.status_code, body=answer.json(),
                        seconds=time.monotonic() - started)

    poster = threading.Thread(target=post_storm)
    poster.start()
    waits: list[float] = []
    with httpx.Client(base_url=str(client.base_url), timeout=60) as health:
        while poster.is_alive():
            started = time.monotonic()
            assert health.get("/healthz").status_code == 200
            waits.append(time.monotonic() - started)
            time.sleep(0.05)
    poster.join()
    assert answered["status"] == 200 and answered["body"]["accepted"] == 20_000
    assert answered["seconds"] >= SLOW_GROUPING_SECONDS
    assert len(waits) >= 10, waits
    assert max(waits) < HEALTH_BOUND_SECONDS, f"healthz waited {max(waits):.2f}s"
