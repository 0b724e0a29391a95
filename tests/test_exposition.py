"""The simulator as a network service: Prometheus exposition, its JSON API, actions and faults
over HTTP, and the `remote:` environment built on them."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from opsloop.environments import UnknownEnvironment, open_environment, remote_ref
from opsloop.models import ActionStatus, RemediationAction
from opsloop.models.catalog import METRICS
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.exposition import CONTENT_TYPE, escape_label_value, render
from opsloop.simulator.remote import SimClient
from opsloop.simulator.server import SimServer


@pytest.fixture
def served() -> Iterator[tuple[SimServer, SimClient]]:
    server = SimServer(SimEnvironment.create("bad_deploy", seed=7), hold_scenario=True).start()
    client = SimClient(server.url)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_every_catalog_metric_is_a_gauge_holding_the_last_simulated_minute() -> None:
    env = SimEnvironment.create("bad_deploy", seed=7)
    text = render(env.state)
    for metric in METRICS:
        exposed = metric.replace("_ms", "_seconds")  # base units, as Prometheus names want
        assert f"# TYPE opsloop_sim_{exposed} gauge" in text
    got = samples(text)
    p99 = env.state.series["web"]["latency_p99_ms"][-1]
    assert got['opsloop_sim_latency_p99_seconds{service="web",team="frontend",tier="1"}'] == \
        pytest.approx(p99 / 1000)
    checkout = env.state.series["checkout"]["error_ratio"][-1]
    assert got['opsloop_sim_error_ratio{service="checkout",team="checkout",tier="1"}'] == checkout
    assert got["opsloop_sim_tick"] == env.state.tick
    assert any(k.startswith("opsloop_sim_service_info{") and 'version="2.13.2"' in k
               for k in got)


def test_label_values_are_escaped_as_the_text_format_requires() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    env = SimEnvironment.create("bad_deploy", seed=7)
    env.state.services["web"].team = 'front"end\nteam\\x'
    assert 'team="front\\"end\\nteam\\\\x"' in render(env.state)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_exposition() -> None:
    text = render(SimEnvironment.create("memory_leak", seed=3).state)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_metrics_are_served_with_the_exposition_content_type(
    served: tuple[SimServer, SimClient],
) -> None:
    server, _ = served
    answer = httpx.get(f"{server.url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE
    assert "opsloop_sim_error_ratio{" in answer.text


def test_the_json_api_answers_like_the_embedded_environment(
    served: tuple[SimServer, SimClient],
) -> None:
    server, client = served
    env = server.env
    assert client.services() == env.services()
    assert client.metric("checkout", "error_ratio", 30) == env.metric("checkout", "error_ratio", 30)
    assert client.average("checkout", "error_ratio", 600) == env.average(
        "checkout", "error_ratio", 600)
    assert client.deploys(None, 600) == env.deploys(None, 600)
    assert client.logs("web", 30, "error", 5) == env.logs("web", 30, "error", 5)
    assert client.flags("checkout") == env.flags("checkout")
    with pytest.raises(KeyError, match="unknown service"):
        client.metric("nope", "error_ratio", 5)


def test_a_manual_clock_moves_only_when_advanced(served: tuple[SimServer, SimClient]) -> None:
    _, client = served
    before = client.now()
    time.sleep(0.2)
    assert client.now() == before
    client.wait(3)
    assert (client.now() - before).total_seconds() == 180


def test_a_realtime_clock_ticks_on_schedule() -> None:
    server = SimServer(SimEnvironment.create("bad_deploy", seed=7), minute_seconds=0.05).start()
    try:
        start = server.clock()["tick"]
        time.sleep(0.6)
        assert 6 <= server.clock()["tick"] - start <= 16
        scale = SimClient(server.url).timescale()
        assert scale.minute_seconds == 0.05
        with pytest.raises(httpx.HTTPStatusError):
            httpx.post(f"{server.url}/api/advance", json={"minutes": 1}).raise_for_status()
    finally:
        server.stop()


def test_actions_over_http_run_once_per_key_and_revert(
    served: tuple[SimServer, SimClient],
) -> None:
    server, client = served
    action = RemediationAction(id="a1", type="scale_out", service="web", params={"replicas": 9})
    first = client.execute(action, "INC-1:a1")
    again = client.execute(action, "INC-1:a1")
    assert first.status is ActionStatus.SUCCEEDED and not first.replayed
    assert again.replayed and server.env.state.services["web"].replicas == 9
    undone = client.revert(first, "revert:INC-1:a1")
    assert undone.status is ActionStatus.SUCCEEDED
    assert server.env.state.services["web"].replicas == 6


def test_faults_are_injected_now_and_bad_ones_are_named(
    served: tuple[SimServer, SimClient],
) -> None:
    server, client = served
    url = f"{server.url}/api/faults"
    bad_kind = httpx.post(url, json={"kind": "meteor", "service": "web"})
    assert bad_kind.status_code == 422 and "kind" in bad_kind.json()["error"]
    assert httpx.post(url, json={"kind": "leak", "service": "nope"}).status_code == 404
    wrong = httpx.post(url, json={"kind": "leak", "service": "web", "in_minutes": -1})
    assert wrong.status_code == 422 and wrong.json()["error"].startswith("in_minutes")
    assert httpx.post(url, content=b"{").status_code == 422
    client.inject("leak", "inventory", {"rate": 0.01})
    client.wait(5)
    assert server.env.state.services["inventory"].leak_rate == 0.01
    released = client.release_scenario()  # bad_deploy's checkout 2.14.0 goes out next minute
    assert released["scheduled"] >= 1
    client.wait(2)
    assert server.env.state.services["checkout"].version == "2.14.0"
    assert httpx.post(f"{server.url}/api/faults/scenario").status_code == 409


def test_a_remote_environment_reference_opens_the_served_simulator(
    served: tuple[SimServer, SimClient], settings: Settings,
) -> None:
    server, _ = served
    env = open_environment(remote_ref(server.url), settings)
    assert env.now() == server.env.now()
    assert env.metric("web", "replicas", 1).values() == [6.0]
    for ref in ("remote:", "remote:sim=ftp://x", "remote:prometheus=http://x",
                "remote:sim=http://x,color=blue", "k8s:prod"):
        with pytest.raises(UnknownEnvironment):
            open_environment(ref, settings)
