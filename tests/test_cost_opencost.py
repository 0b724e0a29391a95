"""OpenCost's /allocation API as a spend source for the cost agent: files, a real HTTP server
on loopback speaking its response shape, named bad rows, and requested-vs-used CPU feeding
the rightsizing proposals.

The fixture tests/data/opencost/allocation.json follows OpenCost's AllocationJSON (core/pkg/
opencost/allocation_json.go): every cost field, the request/usage averages, null where
OpenCost could not compute a value.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from pydantic import ValidationError
from test_cost_agent import fleet, report, run_agent, with_cost

from opsloop.policy import Policies
from opsloop.policy.schema.capacity import OpenCostSource
from opsloop.scheduled.agents.cost import opencost_dir
from opsloop.scheduled.agents.cost_opencost import cpu_requested_vs_used, fetch, read_files
from opsloop.settings import Settings

DATA = Path(__file__).parent / "data" / "opencost"
RUN = datetime(2026, 11, 2, 9, tzinfo=UTC)  # the fleet's clock: 09:00 Monday


def allocation(controller: str, start: datetime, *, cpu: float, ram: float,
               cores_requested: float, cores_used: float) -> dict[str, Any]:
    """One hour of one controller, shaped as OpenCost writes it."""
    stamp = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {"name": controller, "properties": {"cluster": "prod-eu-1", "namespace": "discovery",
                                               "controller": controller,
                                               "controllerKind": "deployment"},
            "window": stamp, **stamp, "minutes": 60,
            "cpuCoreRequestAverage": cores_requested, "cpuCoreUsageAverage": cores_used,
            "ramByteRequestAverage": 17179869184, "ramByteUsageAverage": 8589934592,
            "cpuCost": cpu, "gpuCost": 0, "ramCost": ram, "pvCost": 0, "networkCost": 0,
            "loadBalancerCost": 0, "sharedCost": 0, "externalCost": 0,
            "totalCost": round(cpu + ram, 6)}


def hourly_response(days: int, ram_spike_hours: int = 0) -> dict[str, Any]:
    """`days` of hourly steps up to the run: recommendations requesting 16 cores and using
    1.6 (10%), $0.20/h CPU and $0.05/h RAM (2% noise), RAM x10 for the last hours; and a
    batch worker the fleet does not know, requesting 4 cores and using 0.2."""
    rng = np.random.default_rng(5)
    steps = []
    for h in range(days * 24):
        start = RUN - timedelta(hours=days * 24 - h)
        spike = h >= days * 24 - ram_spike_hours
        noise = 1 + 0.02 * rng.standard_normal(2)
        steps.append({"recommendations-deploy": allocation(
            "recommendations-deploy", start, cpu=round(0.2 * noise[0], 6),
            ram=round(0.05 * noise[1] * (10 if spike else 1), 6),
            cores_requested=16, cores_used=1.6),
            "batch-worker": allocation("batch-worker", start, cpu=0.1, ram=0.02,
                                       cores_requested=4, cores_used=0.2)})
    return {"code": 200, "data": steps}


class OpenCostServer:
    """A loopback HTTP server answering /allocation with a fixed body; records the queries."""

    def __init__(self, body: dict[str, Any], status: int = 200) -> None:
        self.queries: list[dict[str, list[str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                server.queries.append({"path": [parsed.path], **parse_qs(parsed.query)})
                data = json.dumps(body).encode()
                self.send_response(status if parsed.path == "/allocation" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[OpenCostServer] = []

    def make(body: dict[str, Any], status: int = 200) -> OpenCostServer:
        servers.append(OpenCostServer(body, status))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def test_an_opencost_response_becomes_charges_per_cost_component() -> None:
    source = OpenCostSource(service_from="namespace", services={"checkout": "checkout-svc"})
    read = read_files([DATA / "allocation.json"], source)
    assert read.problems == []
    by = {(c.service, c.usage_type): c for c in read.charges}
    assert {s for s, _ in by} == {"checkout-svc", "search", "__idle__"}
    checkout = {u: c.effective_cost for (s, u), c in by.items() if s == "checkout-svc"}
    assert checkout == pytest.approx({"k8s-cpu": 0.126, "k8s-ram": 0.0338, "k8s-pv": 0.0014,
                                      "k8s-network": 0.004, "k8s-load-balancer": 0.025,
                                      "k8s-shared": 0.01})
    # What totalCost holds beyond the components (OpenCost's adjustments) is kept, so every
    # allocation's charges add up to its totalCost.
    search = {u: c.effective_cost for (s, u), c in by.items() if s == "search"}
    assert search["k8s-adjustment"] == pytest.approx(-0.003, abs=1e-9)
    for service, total in (("checkout-svc", 0.2002), ("search", 0.1269), ("__idle__", 0.5)):
        assert sum(c.effective_cost for c in read.charges if c.service == service) == \
            pytest.approx(total)
    charge = by[("checkout-svc", "k8s-cpu")]
    assert (charge.region, charge.resource) == ("prod-eu-1", "checkout/checkout-api")
    assert charge.start == datetime(2026, 11, 2, 6, tzinfo=UTC)
    assert charge.end - charge.start == timedelta(hours=1)
    # Requested vs used CPU per service; null (OpenCost's NaN) is absent, not zero.
    used = cpu_requested_vs_used(read.requested, RUN - timedelta(hours=6), RUN)
    assert used["checkout-svc"] == {"minutes": 60, "p95": 0.08, "cores_requested": 4.0,
                                    "cores_used": 0.32}
    assert "__idle__" not in used
    # By a label instead: the service is the label's value.
    by_label = read_files([DATA / "allocation.json"], OpenCostSource(service_from="label:app"))
    assert {c.service for c in by_label.charges} == {"checkout", "search", "__idle__"}


def test_bad_allocations_are_named_by_file_position_field_and_value_and_the_rest_loaded(
        ) -> None:
    read = read_files([DATA / "bad.json", DATA / "missing.json"], OpenCostSource())
    named = [(Path(p.file).name, p.line, p.column, p.value) for p in read.problems]
    assert named[:4] == [
        ("bad.json", 1, "data[0].web/web.cpuCost", "0.12"),
        ("bad.json", 2, "data[0].api/api.window.start", "yesterday"),
        ("bad.json", 3, "data[0].batch/report.end", "2026-11-02T06:00:00Z"),
        ("bad.json", 4, "data[0].cache/redis.totalCost", "null"),
    ]
    assert [p.problem for p in read.problems[:4]] == [
        "not a finite number", read.problems[1].problem, "not after start",
        "required and missing (or null)"]
    assert "not an RFC 3339 UTC date-time" in read.problems[1].problem
    assert named[4][:2] == ("missing.json", 0) and "unreadable" in read.problems[4].problem
    # The one good allocation is loaded.
    assert [(c.service, c.usage_type, c.effective_cost) for c in read.charges] == [
        ("auth", "k8s-cpu", 0.02), ("auth", "k8s-ram", 0.01)]


def test_fetch_queries_the_configured_opencost_hour_by_hour(serve: Any) -> None:
    server = serve(json.loads((DATA / "allocation.json").read_text()))
    source = OpenCostSource(url=server.url + "/", service_from="namespace")
    got = fetch(source, RUN - timedelta(days=1), RUN)
    (query,) = server.queries
    assert query == {"path": ["/allocation"],
                     "window": ["2026-11-01T09:00:00Z,2026-11-02T09:00:00Z"],
                     "step": ["1h"], "aggregate": ["namespace"]}
    saved = read_files([DATA / "allocation.json"], source)
    assert got.problems == [] and got.charges == saved.charges
    # An OpenCost that fails is a named problem, not a traceback.
    broken = serve({"code": 500, "message": "prometheus unreachable"}, status=500)
    failed = fetch(OpenCostSource(url=broken.url), RUN - timedelta(days=1), RUN)
    assert failed.charges == [] and "OpenCost not read" in failed.problems[0].problem
    assert failed.problems[0].file == broken.url + "/allocation"
    # An answer that is not the /allocation shape is named too.
    odd = serve({"code": 200, "data": {"not": "a list"}})
    wrong = fetch(OpenCostSource(url=odd.url), RUN - timedelta(days=1), RUN)
    assert "not an OpenCost /allocation response" in wrong.problems[0].problem
    # Unconfigured, nothing is asked of anyone.
    assert fetch(OpenCostSource(), RUN - timedelta(days=1), RUN).charges == []


def test_the_cost_agent_reads_opencost_finds_its_anomaly_and_rightsizes_from_requests(
        serve: Any, settings: Settings, shipped_policies: Policies) -> None:
    server = serve(hourly_response(8, ram_spike_hours=6))
    policies = with_cost(shipped_policies, opencost=OpenCostSource(
        url=server.url, services={"recommendations-deploy": "recommendations"}))
    analysis = run_agent(fleet(5), settings, policies)
    data = report(analysis)
    (query,) = server.queries
    assert query["aggregate"] == ["controller"] and query["step"] == ["1h"]
    assert data["sources"][f"OpenCost {server.url}"] == 8 * 24 * 2 * 2
    # Answer key: RAM spend x10 for the last 6 hours ($0.05/h -> $0.50/h).
    (anomaly,) = [a for a in data["anomalies"] if a["decision"]["action"] != "list"]
    assert (anomaly["service"], anomaly["region"], anomaly["usage_type"]) == (
        "recommendations", "prod-eu-1", "k8s-ram")
    assert anomaly["start"].startswith("2026-11-02T03:00") and anomaly["ongoing"]
    assert anomaly["expected_usd"] == pytest.approx(6 * 0.05, rel=0.1)
    assert anomaly["actual_usd"] == pytest.approx(6 * 0.5, rel=0.05)
    assert anomaly["decision"]["action"] == "raise"
    assert [f.subject for f in analysis.findings] == ["recommendations prod-eu-1 k8s-ram"]
    # Requested 16 cores, used 1.6 (10%): 8 replicas x 10% / 50% target -> 2 replicas. The
    # simulator's own CPU for recommendations (~27%) would propose nothing.
    (proposal,) = analysis.proposals
    assert proposal.action.describe() == "scale_in(recommendations, replicas=2)"
    (row,) = [r for r in data["rightsizing"] if r["service"] == "recommendations"]
    assert row["source"] == "OpenCost used / requested" and row["opencost"]["p95"] == 0.1
    # The batch worker only OpenCost knows: the requests it could shrink to, no proposal.
    (batch,) = [r for r in data["rightsizing"] if r["service"] == "batch-worker"]
    assert batch["replicas"] is None and batch["requests_target"] == pytest.approx(0.4)
    md = next(p for p in analysis.reports if p.endswith(".md"))
    assert "batch-worker: requests 4.00 CPU cores, uses 0.20" in Path(md).read_text()
    bare = run_agent(fleet(5), Settings(work_dir=settings.work_dir.parent / "bare"),
                     shipped_policies)
    assert bare.proposals == []


def test_saved_responses_are_read_offline_and_bad_ones_reported(
        serve: Any, settings: Settings, shipped_policies: Policies) -> None:
    server = serve(hourly_response(1))  # running, but nobody configured it
    opencost_dir(settings).mkdir(parents=True)
    shutil.copy(DATA / "allocation.json", opencost_dir(settings))
    shutil.copy(DATA / "bad.json", opencost_dir(settings))
    analysis = run_agent(fleet(5), settings, shipped_policies)
    assert server.queries == []
    data = report(analysis)
    # checkout-api 6 components, search-indexer 3 and an adjustment, __idle__ 2; bad.json's
    # one good allocation 2.
    assert any(k.startswith("OpenCost files in") and v == 6 + 4 + 2 + 2
               for k, v in data["sources"].items())
    assert len(data["opencost_problems"]) == 4
    assert "4 bad OpenCost allocation(s)" in analysis.summary
    md = next(p for p in analysis.reports if p.endswith(".md"))
    assert "bad.json:1 data[0].web/web.cpuCost='0.12': not a finite number" in \
        Path(md).read_text()
    # One hour of requested vs used is under half the rightsizing window: not judged.
    rows = {r["service"]: r for r in data["rightsizing"]}
    assert rows["checkout-api"]["replicas"] is None and rows["checkout-api"]["target"] is None
    assert "requests_target" not in rows["checkout-api"] and analysis.proposals == []


def test_capacity_yaml_opencost_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="service_from 'pod'"):
        OpenCostSource(service_from="pod")
    with pytest.raises(ValidationError, match="not an http"):
        OpenCostSource(url="opencost:9003")
    assert OpenCostSource(service_from="label:app").url is None
