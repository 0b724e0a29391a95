"""The real thing, end to end: the simulator scraped by a real Prometheus evaluating rules
generated from policies/alerts.yaml, a real Alertmanager posting to `opsloop serve`, a fault
injected, and the incident diagnosed with evidence queried from that Prometheus.

Skipped only when the prometheus / alertmanager binaries are absent (CI installs them with
scripts/install-prometheus.sh). Loopback ports only; everything is started and stopped here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_stack import (
    ALERTMANAGER,
    PROMETHEUS,
    Proc,
    alertmanager,
    free_port,
    http_ok,
    opsloop_serve,
    prometheus,
    scraping,
    wait_for,
)

from opsloop.environments import remote_ref
from opsloop.fingerprint import label_fingerprint
from opsloop.policy import load_policies
from opsloop.prometheus_rules import alerting_rules
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.server import SimServer
from opsloop.tools.promql import load_promql

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or ALERTMANAGER is None,
    reason="prometheus / prometheus-alertmanager not installed "
           "(scripts/install-prometheus.sh installs them from Debian's packages)",
)

MINUTE_SECONDS = 0.5  # one simulated minute per half second: an hour of history in 30s
BASELINE_MINUTES = 24  # healthy minutes Prometheus scrapes before the fault
INGEST = "alertmanager-e2e-ingest-token"
APPROVE = "oncall-e2e-approve-token-0001"
SETTLED = {"mitigated", "awaiting_approval"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    procs: list[Proc] = []
    env = SimEnvironment.create("bad_deploy", seed=7)
    sim = SimServer(env, minute_seconds=MINUTE_SECONDS, hold_scenario=True).start()
    try:
        settings = Settings()
        rules = alerting_rules(load_policies(settings.policies_dir).alerts.rules,
                               load_promql(settings.promql_path), MINUTE_SECONDS,
                               labels={"env": "prod"}, interval=MINUTE_SECONDS)
        serve_port, am_port = free_port(), free_port()
        prom, prom_port = prometheus(tmp_path, sim.url.removeprefix("http://"), rules,
                                     am_port, "500ms")
        procs.append(prom)
        prom_url = f"http://127.0.0.1:{prom_port}"
        serve = opsloop_serve(tmp_path, serve_port, {
            "OPSLOOP_API_TOKENS": f"alertmanager:ingest:{INGEST},ana:approve:{APPROVE}",
            "OPSLOOP_SERVE_ENVIRONMENT": remote_ref(sim.url, prom_url),
            # serve's own burn-rate evaluation would open the incident first (checkout burns
            # its budget 200x); here the incident must come through Alertmanager.
            "OPSLOOP_SLO_EVALUATION_SECONDS": "3600",
        })
        procs.append(serve)
        serve_url = f"http://127.0.0.1:{serve_port}"
        procs.append(alertmanager(tmp_path, f"{serve_url}/api/v1/alerts/alertmanager",
                                  INGEST, am_port))
        logs = lambda: "\n".join(p.logs() for p in procs)  # noqa: E731
        wait_for("prometheus", http_ok(f"{prom_url}/-/ready"), 30, logs)
        wait_for("the first scrape", scraping(prom_url), 30, logs)
        wait_for("alertmanager", http_ok(f"http://127.0.0.1:{am_port}/-/ready"), 30, logs)
        wait_for("opsloop serve", http_ok(f"{serve_url}/readyz"), 60, logs)
        yield {"sim": sim, "env": env, "prometheus": prom_url, "serve": serve_url,
               "alertmanager": f"http://127.0.0.1:{am_port}", "logs": logs,
               "queries": tmp_path / "queries.log"}
    finally:
        for proc in reversed(procs):
            proc.stop()
        sim.stop()


def _incidents(serve: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {APPROVE}"}
    found: list[dict[str, Any]] = httpx.get(f"{serve}/api/v1/incidents", headers=headers,
                                            timeout=5).json()
    return found


def _incident(serve: str, incident_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {APPROVE}"}
    body: dict[str, Any] = httpx.get(f"{serve}/api/v1/incidents/{incident_id}",
                                     headers=headers, timeout=5).json()
    return body


def _wait_status(s: dict[str, Any], statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [i for i in _incidents(s["serve"]) if i["status"] in statuses]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no incident reached {statuses} in {timeout:.0f}s: "
                         f"{_incidents(s['serve'])}\n{s['logs']()}")


def test_a_fault_becomes_one_diagnosed_incident_through_prometheus_and_alertmanager(
    stack: dict[str, Any],
) -> None:
    s = stack
    sim: SimServer = s["sim"]
    start = sim.clock()["tick"]
    wait_for("healthy baseline in Prometheus",
             lambda: sim.clock()["tick"] >= start + BASELINE_MINUTES, 30)
    assert _incidents(s["serve"]) == [], "a healthy fleet opened an incident"

    sim.release_scenario()  # checkout 2.14.0 goes out and fails ~30% of orders
    summary = _wait_status(s, SETTLED, 120)
    incidents = _incidents(s["serve"])
    assert len(incidents) == 1, f"one outage, one incident: {incidents}"

    record = _incident(s["serve"], summary["id"])
    incident = record["incident"]
    assert incident["environment"].startswith("remote:sim=")
    assert {a["source"] for a in incident["anomalies"]} == {"alertmanager"}
    assert {a["labels"]["alertname"] for a in incident["anomalies"]} == {"HighErrorRate"}
    assert "checkout" in incident["services"]
    root = incident["root_cause"]
    assert root is not None and root["category"] == "bad_deploy", root
    assert root["service"] == "checkout"
    # Supporting metric checks hold; a refuting one (a dependency that failed first) must not.
    metric_evidence = [e for e in root["evidence"]
                       if e["tool"] in {"metric_stat", "metric_change"} and e["status"] == "ok"
                       and not e["expectation"].startswith("refuted")]
    assert metric_evidence and all(e["holds"] for e in metric_evidence), root["evidence"]
    assert not any(e["holds"] for e in root["evidence"]
                   if e["expectation"].startswith("refuted")), root["evidence"]

    # The evidence came from that Prometheus: its query log holds the specialists' PromQL.
    queries = s["queries"].read_text()
    assert 'opsloop_sim_error_ratio{service=~\\"checkout\\"}' in queries, queries[-2000:]

    # Alertmanager's own fingerprints are the ones intake computes.
    am_alerts = httpx.get(f"{s['alertmanager']}/api/v2/alerts", timeout=5).json()
    assert am_alerts
    for alert in am_alerts:
        assert alert["fingerprint"] == label_fingerprint(alert["labels"])

    if summary["status"] == "awaiting_approval":
        pending = httpx.get(f"{s['serve']}/api/v1/approvals",
                            headers={"Authorization": f"Bearer {APPROVE}"}, timeout=5).json()
        assert pending and pending[0]["action"]["type"] == "rollback_deploy"
        ingest_try = httpx.post(f"{s['serve']}/api/v1/approvals/{pending[0]['id']}/approve",
                                headers={"Authorization": f"Bearer {INGEST}"}, timeout=5)
        assert ingest_try.status_code == 403  # the webhook's token cannot approve
        answer = httpx.post(f"{s['serve']}/api/v1/approvals/{pending[0]['id']}/approve",
                            json={"reason": "e2e: roll it back"},
                            headers={"Authorization": f"Bearer {APPROVE}"}, timeout=10)
        assert answer.status_code in (200, 202), answer.text
        assert answer.json()["by"] == "ana"
        summary = _wait_status(s, {"mitigated"}, 60)
        incident = _incident(s["serve"], summary["id"])["incident"]
        assert [c["approval"]["by"] for c in incident["actions"]] == ["ana"]

    assert s["env"].state.services["checkout"].version != "2.14.0", "not rolled back"
