"""The agent toolbox: statuses, the allow-list, the cache and the call budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsloop.agents.specialists import SPECIALISTS
from opsloop.models import (
    ChaosExperiment,
    DeployEvent,
    ExperimentStatus,
    FlagChange,
    FlagState,
    LogLine,
    MetricPoint,
    MetricSeries,
    ServiceInfo,
    ToolStatus,
    catalog,
)
from opsloop.tools.toolbox import TOOLS, Outcome, Toolbox, ToolContext, _tool

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


class FakeTelemetry:
    """Two services: `api` calls `db`; api's error ratio jumps 12 minutes ago; also a clock."""

    def __init__(self) -> None:
        self.metric_calls = 0
        self.fail_logs = False

    def now(self) -> datetime:
        return NOW

    def services(self) -> list[ServiceInfo]:
        return [
            ServiceInfo(
                name="api", tier=1, dependencies=["db", "provider"], replicas=4, version="1.1"
            ),
            ServiceInfo(name="db", tier=1, replicas=3, version="16"),
        ]

    def _series(self, service: str, metric: str) -> list[float]:
        if service not in {"api", "db"}:
            raise KeyError(f"unknown service {service!r}")
        if metric == "error_ratio":
            return [0.001] * 108 + [0.2] * 12 if service == "api" else [0.0005] * 120
        if metric == "latency_p99_ms":
            return [100.0] * 120
        if metric == "replicas":
            return [4.0] * 120
        raise KeyError(f"unknown metric {metric!r}")

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        self.metric_calls += 1
        values = self._series(service, metric)[-minutes:]
        start = NOW - timedelta(minutes=len(values) - 1)
        return MetricSeries(
            service=service,
            metric=metric,
            points=[
                MetricPoint(at=start + timedelta(minutes=i), value=v) for i, v in enumerate(values)
            ],
        )

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        vals = self._series(service, metric)[-minutes:]
        return sum(vals) / len(vals)

    def logs(
        self, service: str, minutes: int, pattern: str | None = None, limit: int = 200
    ) -> list[LogLine]:
        if self.fail_logs:
            raise ConnectionError("log backend unreachable")
        return [
            LogLine(
                at=NOW - timedelta(minutes=i),
                service=service,
                level="ERROR",
                message=f"upstream db timeout after {i}ms",
            )
            for i in range(5)
        ] + [LogLine(at=NOW, service=service, level="INFO", message="request ok")]

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]:
        return [
            DeployEvent(
                at=NOW - timedelta(minutes=13), service="api", version="1.1", previous_version="1.0"
            )
        ]

    def flags(self, service: str | None = None) -> list[FlagState]:
        return [
            FlagState(
                key="beta",
                service="api",
                enabled=True,
                rollout_percent=20,
                updated_at=NOW - timedelta(minutes=30),
            )
        ]

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        return []

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]:
        return [
            ChaosExperiment(
                id="exp-1",
                title="kill a db replica",
                target_service="db",
                status=ExperimentStatus.RUNNING,
                started_at=NOW - timedelta(minutes=20),
            )
        ]


@pytest.fixture
def telemetry() -> FakeTelemetry:
    return FakeTelemetry()


def test_metric_stat_aggregates(telemetry: FakeTelemetry) -> None:
    tools = Toolbox(telemetry)
    r = tools.call("metric_stat", service="api", metric="error_ratio", minutes=10, agg="max")
    assert r.status is ToolStatus.OK and r.data["value"] == 0.2
    assert "api error_ratio max over 10m" in r.summary
    last = tools.call("metric_stat", service="api", metric="replicas", agg="last")
    assert last.data["value"] == 4 and isinstance(last.data["value"], int)


def test_metric_change_reports_ratio_and_minute_of_onset(telemetry: FakeTelemetry) -> None:
    r = Toolbox(telemetry, clock=telemetry).call(
        "metric_change", service="api", metric="error_ratio", minutes=5, baseline_minutes=60
    )
    assert r.status is ToolStatus.OK
    assert r.data["ratio"] == pytest.approx(200.0)
    assert r.data["changed"] is True
    assert r.data["onset_minutes_ago"] == 11.0  # 12 bad points, the newest at now


def test_unchanged_metric_has_no_onset(telemetry: FakeTelemetry) -> None:
    r = Toolbox(telemetry).call("metric_change", service="db", metric="latency_p99_ms")
    assert r.data["ratio"] == 1.0 and r.data["onset_minutes_ago"] is None


def test_unknown_metric_is_an_error_result_not_an_exception(telemetry: FakeTelemetry) -> None:
    r = Toolbox(telemetry).call("metric_stat", service="api", metric="happiness")
    assert r.status is ToolStatus.ERROR and "happiness" in r.error


def test_backend_failure_becomes_status_error(telemetry: FakeTelemetry) -> None:
    telemetry.fail_logs = True
    r = Toolbox(telemetry).call("log_search", service="api", pattern="timeout")
    assert r.status is ToolStatus.ERROR and "ConnectionError" in r.error


def test_bad_arguments_are_reported(telemetry: FakeTelemetry) -> None:
    tools = Toolbox(telemetry)
    assert "needs argument 'metric'" in tools.call("metric_stat", service="api").error
    assert (
        "unknown argument" in tools.call("metric_stat", service="api", metric="x", window=3).error
    )
    assert (
        "agg must be"
        in tools.call("metric_stat", service="api", metric="error_ratio", agg="median").error
    )
    assert (
        "positive"
        in tools.call("metric_stat", service="api", metric="error_ratio", minutes=0).error
    )
    assert tools.calls == 1  # argument errors never reach the backend; the bad agg did


def test_no_data_when_the_window_is_empty(telemetry: FakeTelemetry) -> None:
    class Empty(FakeTelemetry):
        def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
            return MetricSeries(service=service, metric=metric)

    r = Toolbox(Empty()).call("metric_stat", service="api", metric="error_ratio")
    assert r.status is ToolStatus.NO_DATA


def test_log_search_counts_matches_with_samples(telemetry: FakeTelemetry) -> None:
    tools = Toolbox(telemetry)
    r = tools.call("log_search", service="api", pattern="upstream db TIMEOUT", minutes=10)
    assert r.data["count"] == 5 and len(r.data["samples"]) == 3
    regex = tools.call("log_search", service="api", pattern=r"timeout after \d+ms", level="ERROR")
    assert regex.data["count"] == 5
    broken = tools.call("log_search", service="api", pattern="timeout (", minutes=10)
    assert broken.status is ToolStatus.OK and broken.data["count"] == 0  # literal fallback


@pytest.mark.parametrize("pattern", ["(a+)+$", r"(\w*x)*y", "x" * 201])
def test_log_search_refuses_catastrophic_or_huge_patterns(
    telemetry: FakeTelemetry, pattern: str
) -> None:
    r = Toolbox(telemetry).call("log_search", service="api", pattern=pattern)
    assert r.status is ToolStatus.ERROR


def test_deploys_flags_dependencies_experiments_and_info(telemetry: FakeTelemetry) -> None:
    tools = Toolbox(telemetry, clock=telemetry)
    deploys = tools.call("recent_deploys", service="api", minutes=60).data
    assert deploys["count"] == 1 and deploys["latest"]["previous_version"] == "1.0"
    assert deploys["latest"]["age_minutes"] == 13.0
    assert tools.call("recent_flag_changes", service="api").data["count"] == 0
    assert tools.call("flag_states", service="api").data["latest"]["key"] == "beta"
    deps = tools.call("dependency_health", service="api").data
    assert deps["worst"]["name"] == "db" and deps["count"] == 2
    assert {
        "name": "provider",
        "error_ratio": None,
        "latency_p99_ms": None,
        "observed": False,
    } in deps["dependencies"]
    exps = tools.call("running_experiments", service="api").data
    assert exps["count"] == 1 and exps["latest"]["on_dependency"] is True
    assert tools.call("service_info", service="api").data["replicas"] == 4
    assert tools.call("service_info", service="nope").status is ToolStatus.ERROR


def test_tool_outside_the_allowed_set_is_refused(telemetry: FakeTelemetry) -> None:
    tools = Toolbox(telemetry, allowed={"metric_stat"})
    r = tools.call("recent_deploys", service="api")
    assert r.status is ToolStatus.ERROR
    assert r.error == "tool recent_deploys is not available to this specialist"
    assert tools.names() == ["metric_stat"] and tools.calls == 0
    assert [t["name"] for t in tools.describe()] == ["metric_stat"]


def test_identical_calls_are_served_from_the_cache(telemetry: FakeTelemetry) -> None:
    tools = Toolbox(telemetry)
    first = tools.call("metric_stat", service="api", metric="error_ratio")
    again = tools.call(
        "metric_stat", {"service": "api", "metric": "error_ratio", "minutes": "10", "agg": "avg"}
    )
    assert again == first
    assert tools.calls == 1 and tools.cache_hits == 1 and telemetry.metric_calls == 1


def test_call_budget_stops_runaway_loops(telemetry: FakeTelemetry) -> None:
    tools = Toolbox(telemetry, max_calls=2)
    for minutes in (5, 10):
        assert (
            tools.call("metric_stat", service="api", metric="error_ratio", minutes=minutes).status
            is ToolStatus.OK
        )
    over = tools.call("metric_stat", service="api", metric="error_ratio", minutes=15)
    assert over.status is ToolStatus.ERROR and "budget of 2" in over.error
    assert tools.calls == 2
    cached = tools.call("metric_stat", service="api", metric="error_ratio", minutes=5)
    assert cached.status is ToolStatus.OK  # answering from the cache costs nothing


def test_every_tool_documents_itself() -> None:
    assert set(TOOLS) == set(catalog.TOOLS)  # every catalog tool is implemented, and no other
    assert all(spec.doc for spec in TOOLS.values())


def test_a_tool_that_disagrees_with_the_catalog_is_refused() -> None:
    def metric_trend(ctx: ToolContext, service: str, metric: str, minutes: int = 30) -> Outcome:
        """A drifted copy: its default is not the catalog's."""
        raise AssertionError("never called")

    def unlisted(ctx: ToolContext, service: str) -> Outcome:
        """Not in the catalog at all."""
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="differs from the catalog"):
        _tool(metric_trend)
    with pytest.raises(TypeError, match="not in the catalog"):
        _tool(unlisted)
    assert TOOLS["metric_trend"].params["minutes"].default == 60  # the registry is unchanged


def test_the_model_is_told_the_catalog_parameters(telemetry: FakeTelemetry) -> None:
    described = {d["name"]: d["parameters"] for d in Toolbox(telemetry).describe()}
    assert described["log_search"] == {
        "service": {"type": "str", "required": True},
        "pattern": {"type": "str", "required": True},
        "minutes": {"type": "int", "required": False, "default": 15},
        "level": {"type": "str", "required": False, "default": None},
    }


def test_specialists_only_hold_catalog_tools() -> None:
    for spec in SPECIALISTS.values():
        assert spec.tools <= set(catalog.TOOLS), spec.name
