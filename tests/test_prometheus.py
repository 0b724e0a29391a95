"""PromQL from config, alert rules generated from alerts.yaml, and the Prometheus client's
behaviour when Prometheus is down, overloaded or refuses a query.

Queries against a real Prometheus are in tests/e2e (they need the binary); the failures
here come from a loopback server scripted to fail the way Prometheus does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsloop.policy import load_policies
from opsloop.policy.schema.alerts import AlertRule
from opsloop.prometheus_rules import alerting_rules, rule_expr
from opsloop.settings import Settings
from opsloop.tools.prometheus import PrometheusClient, PrometheusError
from opsloop.tools.promql import PromQLError, duration, load_promql, regex_literal
from opsloop.tools.toolbox import Toolbox


@pytest.fixture
def promql(settings: Settings) -> Any:
    return load_promql(settings.promql_path)


def test_service_names_are_escaped_for_a_regex_inside_a_promql_string() -> None:
    assert regex_literal("api-gateway") == "api-gateway"
    assert regex_literal('a.b"c') == 'a\\\\.b\\"c'  # RE2 \. then PromQL-string escaped


def test_durations_use_the_largest_exact_unit() -> None:
    assert [duration(s) for s in (300, 3600, 0.5, 2.5, 86400 * 3, 90)] == [
        "5m", "1h", "500ms", "2500ms", "3d", "90s"]


def test_queries_and_averages_come_from_the_mapping(promql: Any) -> None:
    assert promql.query("error_ratio", "checkout") == \
        'opsloop_sim_error_ratio{service=~"checkout"}'
    assert promql.average("error_ratio", "checkout", 3600, 60) == \
        'avg_over_time((opsloop_sim_error_ratio{service=~"checkout"})[1h:1m])'
    with pytest.raises(KeyError, match="no PromQL for metric 'queue_depth'"):
        promql.query("queue_depth", "checkout")


@pytest.mark.parametrize(("body", "message"), [
    ({"version": 1, "metrics": {"error_rate": 'x{service=~"{service}"}'}}, "unknown metric"),
    ({"version": 1, "metrics": {"error_ratio": "x"}}, "must contain {service}"),
    ({"version": 1, "metrics": {"error_ratio": 'x{service=~"{service}"}'},
      "average": {"error_ratio": 'y{service=~"{service}"}'}}, "must contain {window}"),
    ({"version": 2, "metrics": {}}, "version"),
])
def test_a_bad_mapping_file_names_the_file_and_field(tmp_path: Path, body: dict[str, Any],
                                                     message: str) -> None:
    path = tmp_path / "promql.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(PromQLError, match=message) as caught:
        load_promql(path)
    assert str(path) in str(caught.value)
    with pytest.raises(PromQLError, match="file not found"):
        load_promql(tmp_path / "missing.yaml")


def test_alert_rules_say_what_alerts_yaml_says(promql: Any) -> None:
    errors = AlertRule(name="HighErrorRate", metric="error_ratio", aggregate="avg",
                       window_minutes=5, op=">", threshold=0.05, for_minutes=2)
    assert rule_expr(errors, promql) == \
        'avg_over_time((opsloop_sim_error_ratio{service=~".+"})[5m:1m]) > 0.05'
    latency = AlertRule(name="HighLatencyP99", metric="latency_p99_ms", window_minutes=5,
                        threshold=2.0, baseline_offset_minutes=60, services=["search", "web"])
    assert rule_expr(latency, promql, minute_seconds=0.5) == (
        "(avg_over_time((1000 * opsloop_sim_latency_p99_seconds{service=~\"search|web\"})"
        "[2500ms:500ms]) / (avg_over_time((1000 * opsloop_sim_latency_p99_seconds"
        "{service=~\"search|web\"})[2500ms:500ms] offset 30s) > 0)) > 2.0")


def test_generated_rules_carry_labels_annotations_and_for(settings: Settings,
                                                          promql: Any) -> None:
    rules = load_policies(settings.policies_dir).alerts.rules
    [group] = alerting_rules(rules, promql, labels={"env": "prod"})["groups"]
    high = next(r for r in group["rules"] if r["alert"] == "HighErrorRate")
    assert high["for"] == "1m"  # opsloop fires on the 2nd minute: pending for one
    assert high["labels"] == {"env": "prod", "severity": "page"}
    assert high["annotations"]["summary"] == \
        "{{ $labels.service }}: error ratio {{ $value | humanizePercentage }} over 5m"
    assert high["annotations"]["runbook"] == "high-error-rate"
    memory = next(r for r in group["rules"] if r["alert"] == "MemoryHigh")
    assert memory["expr"].startswith("max_over_time(")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_generated_rule_file(tmp_path: Path, settings: Settings,
                                                  promql: Any) -> None:
    rules = alerting_rules(load_policies(settings.policies_dir).alerts.rules, promql, 0.5,
                           labels={"env": "prod"}, interval=0.5)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


class Scripted:
    """A loopback server answering each request with the next scripted (status, body)."""

    def __init__(self, script: list[tuple[int, dict[str, Any]]]) -> None:
        self.script = list(script)
        self.calls: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.calls.append(self.rfile.read(length).decode())
                status, body = outer.script.pop(0) if outer.script else (500, {})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Any]:
    servers: list[Scripted] = []

    def make(script: list[tuple[int, dict[str, Any]]]) -> Scripted:
        servers.append(Scripted(script))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


VECTOR = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"service": "checkout"}, "value": [1764158281.5, "0.31"]}]}}


def test_an_overloaded_prometheus_is_retried(scripted: Any) -> None:
    server = scripted([(503, {"status": "error", "error": "too many queries"}), (200, VECTOR)])
    client = PrometheusClient(server.url, attempts=3)
    [series] = client.instant("up")
    assert series.points == [(1764158281.5, 0.31)]
    assert len(server.calls) == 2


def test_a_refused_query_is_reported_with_prometheus_reason_and_not_retried(
    scripted: Any,
) -> None:
    server = scripted([(400, {"status": "error", "errorType": "bad_data",
                              "error": "parse error at char 4"})])
    with pytest.raises(PrometheusError, match="bad_data: parse error at char 4"):
        PrometheusClient(server.url).instant("rate(")
    assert len(server.calls) == 1


def test_prometheus_down_is_a_clear_error_and_a_tool_error_not_a_crash(
    settings: Settings,
) -> None:
    from opsloop.tools.prometheus import watch_only

    client = PrometheusClient("http://127.0.0.1:9", timeout=0.5, attempts=2)
    with pytest.raises(PrometheusError, match=r"cannot reach Prometheus at http://127.0.0.1:9"):
        client.range("up", 0, 60, 15)
    production = watch_only(client, load_promql(settings.promql_path))
    result = Toolbox(production, clock=production).call("metric_stat", service="checkout",
                                                        metric="error_ratio")
    assert result.status.value == "error"
    assert "after 2 attempts" in result.error


def test_a_long_range_is_read_in_chunks_prometheus_accepts(scripted: Any) -> None:
    from opsloop.tools.prometheus import PrometheusMetrics
    from opsloop.tools.promql import PromQLMap, PromQLPolicy

    def matrix(first: int, count: int) -> dict[str, Any]:
        values = [[60.0 * (first + i), "0.5"] for i in range(count)]
        return {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"service": "web"}, "values": values}]}}

    server = scripted([(200, matrix(0, 10_000)), (200, matrix(10_000, 10_000)),
                       (200, matrix(20_000, 5000))])
    policy = PromQLPolicy(version=1, metrics={"error_ratio": 'e{service=~"{service}"}'})
    metrics = PrometheusMetrics(PrometheusClient(server.url), PromQLMap(policy),
                                wall_now=lambda: 60.0 * 24_999)
    series = metrics.metric("web", "error_ratio", 25_000)
    assert len(server.calls) == 3
    assert len(series.points) == 25_000
    assert series.points[0].at.timestamp() == 0.0
    bounds = [dict(p.split("=") for p in call.split("&")) for call in server.calls]
    assert [(float(b["start"]), float(b["end"])) for b in bounds] == [
        (0.0, 599_940.0), (600_000.0, 1_199_940.0), (1_200_000.0, 1_499_940.0)]
