"""The `Metrics` protocol over a real Prometheus scraping the served simulator: the series it
returns are the simulator's own, minute for minute, on the simulated clock."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_stack import PROMETHEUS, free_port, http_ok, prometheus, scraping, wait_for

from opsloop.environments import open_environment, remote_ref
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.server import SimServer
from opsloop.simulator.state import tick_time

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed "
                                "(scripts/install-prometheus.sh installs it)")
MINUTE_SECONDS = 0.25


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[SimServer, str]]:
    sim = SimServer(SimEnvironment.create("memory_leak", seed=5),
                    minute_seconds=MINUTE_SECONDS).start()
    prom, port = prometheus(tmp_path, sim.url.removeprefix("http://"), {"groups": []},
                            free_port(), "250ms")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for("prometheus", http_ok(f"{url}/-/ready"), 30, prom.logs)
        wait_for("the first scrape", scraping(url), 30, prom.logs)
        start = sim.clock()["tick"]
        wait_for("24 scraped minutes", lambda: sim.clock()["tick"] >= start + 24, 20)
        yield sim, url
    finally:
        prom.stop()
        sim.stop()


def test_prometheus_series_are_the_simulators_own_on_its_clock(
    scraped: tuple[SimServer, str], settings: Settings,
) -> None:
    sim, url = scraped
    env: Any = open_environment(remote_ref(sim.url, url), settings)
    series = env.metric("inventory", "memory_utilization", 15)
    assert 12 <= len(series.points) <= 15
    state = sim.env.state
    values = state.series["inventory"]["memory_utilization"]
    for point in series.points:
        # A point stamped between two ticks holds the minute current then: the earlier one.
        tick = math.floor((point.at - tick_time(0)).total_seconds() / 60)
        index = tick - state.history_start
        # A scrape may land just before the minute it is stamped with turned over.
        assert point.value in (values[index], values[index - 1]), (point, tick)
    latency = env.metric("web", "latency_p99_ms", 5).values()[-1]
    assert latency == pytest.approx(state.series["web"]["latency_p99_ms"][-1], rel=0.5)
    mean = env.average("inventory", "memory_utilization", 10)
    assert mean == pytest.approx(sum(values[-10:]) / 10, rel=0.05)
    with pytest.raises(KeyError):
        env.metric("nope", "error_ratio", 5)
    assert env.metrics.queries[0] == 'opsloop_sim_memory_utilization{service=~"inventory"}'
