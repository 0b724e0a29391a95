"""The simulator serves and evaluates its flags as flagd does: its cohorts are flagd's
`fractional` buckets (checked key by key against the real OpenFeature flagd provider), the
document `sim-serve` serves at /flags.json is read by that provider in file mode, it counts
each variant's requests, errors and conversions, and it can follow a team's flagd file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from opsloop.rollouts import flagd
from opsloop.simulator import SimEnvironment, SimState, flags
from opsloop.simulator.events import schedule
from opsloop.simulator.remote import SimClient
from opsloop.simulator.server import SimServer

KEYS = 10_000
TOLERANCE = 2.0  # percentage points
FLAG = "new-checkout-flow"


def provider_variants(path: Path, key: str, domain: str, keys: int = KEYS) -> list[bool]:
    """What the real flagd provider (file mode) serves each synthetic key `user-i`."""
    provider = FlagdProvider(resolver_type=ResolverType.FILE,
                             offline_flag_source_path=str(path))
    api.set_provider_and_wait(provider, domain)
    try:
        client = api.get_client(domain)
        got = []
        for i in range(keys):
            details = client.get_boolean_details(key, False,
                                                 EvaluationContext(targeting_key=f"user-{i}"))
            assert details.error_code is None, details.error_message
            got.append(bool(details.value))
        return got
    finally:
        provider.shutdown()


@pytest.fixture(scope="module")
def base() -> SimState:
    """A fresh bad_deploy simulation, built once; tests take copies."""
    return SimEnvironment.create("bad_deploy", seed=7).state


@pytest.fixture
def env(base: SimState) -> SimEnvironment:
    return SimEnvironment(base.model_copy(deep=True))


def roll_out(env: SimEnvironment, percent: int, **params: object) -> None:
    schedule(env.state, env.state.tick + 1, "flag", "checkout", key=FLAG, enabled=True,
             percent=percent, author="test", **params)
    env.wait(1)


def test_flagd_bucketing_matches_the_provider_key_by_key(tmp_path: Path) -> None:
    flag = flagd.rollout_flag(25, service="checkout")
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {FLAG: flag}}))
    ours = [flagd.evaluate(FLAG, flag, f"user-{i}") == flagd.ON for i in range(KEYS)]
    assert ours == provider_variants(path, FLAG, "by-key")
    assert flagd.evaluate(FLAG, flagd.disabled(flag), "user-1") is None


@pytest.mark.parametrize("percent", [1, 5, 25, 50, 75])
def test_the_simulated_cohort_is_flagds_split_within_two_points(
        env: SimEnvironment, percent: int) -> None:
    roll_out(env, percent)
    record = env.state.flag("checkout", FLAG)
    assert record is not None
    share = 100 * flags.on_share(record)
    print(f"weight {percent}%: the simulator serves `on` to {share:.2f}% of {KEYS} keys")
    assert abs(share - percent) <= TOLERANCE


def test_sim_serve_serves_a_flagd_document_the_provider_reads_as_the_simulator_does(
        env: SimEnvironment, tmp_path: Path) -> None:
    roll_out(env, 25, variant_error_ratio=0.2)
    server = SimServer(env).start()
    try:
        document = httpx.get(f"{server.url}/flags.json", timeout=5).json()
    finally:
        server.stop()
    assert flagd.problems(document) == []
    served = document["flags"][FLAG]
    assert served["targeting"] == {"fractional": [["on", 25], ["off", 75]]}
    assert served["metadata"]["service"] == "checkout"
    assert document["flags"]["rec-model-v7"]["metadata"]["owner"] == "discovery"
    path = tmp_path / "served.flags.json"
    path.write_text(json.dumps(document))
    on = provider_variants(path, FLAG, "served")
    observed = 100 * sum(on) / KEYS
    record = env.state.flag("checkout", FLAG)
    assert record is not None
    print(f"served 25%: the provider serves `on` to {observed:.2f}% of {KEYS} keys")
    assert abs(observed - 25) <= TOLERANCE
    # The cohort the simulated checkout suffers is exactly the one flagd would serve.
    assert observed == pytest.approx(100 * flags.on_share(record))


def test_variant_counts_show_the_cohorts_errors_and_an_experiments_effect(
        env: SimEnvironment) -> None:
    roll_out(env, 50, variant_error_ratio=0.1, variant_conversion={"on": 0.08})
    env.wait(60)
    counts = env.variant_counts("checkout", FLAG, 60)
    on, off = counts["on"], counts["off"]
    share = on["requests"] / (on["requests"] + off["requests"])
    print(f"60 min at 50%: {counts}")
    assert abs(100 * share - 100 * flags.on_share(env.state.flag("checkout", FLAG))) <= 1
    # The `on` cohort fails at the service's ratio and, independently, at its variant's 10%.
    off_ratio = off["errors"] / off["requests"]
    assert on["errors"] / on["requests"] == pytest.approx(1 - (1 - off_ratio) * 0.9, abs=0.01)
    assert on["conversions"] / (on["requests"] - on["errors"]) == pytest.approx(0.08, abs=0.005)
    assert off["conversions"] / (off["requests"] - off["errors"]) == pytest.approx(0.05,
                                                                                 abs=0.005)
    # A shorter window counts fewer minutes.
    assert env.variant_counts("checkout", FLAG, 10)["on"]["requests"] < on["requests"] / 4


def test_variant_counts_say_why_when_there_are_none(env: SimEnvironment) -> None:
    with pytest.raises(KeyError, match="no flag 'nope' on service 'checkout'"):
        env.variant_counts("checkout", "nope", 60)
    with pytest.raises(KeyError, match="unknown service"):
        env.variant_counts("nowhere", FLAG, 60)
    # dark-mode serves everyone: it splits no traffic, so nothing is counted.
    with pytest.raises(KeyError, match="no per-variant traffic recorded for flag 'dark-mode'"):
        env.variant_counts("web", "dark-mode", 60)


def test_counting_variants_is_deterministic_and_survives_save_and_load(
        base: SimState, tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        env = SimEnvironment(base.model_copy(deep=True))
        roll_out(env, 5)
        env.wait(30)
        runs.append(env.variant_counts("checkout", FLAG, 30))
    assert runs[0] == runs[1]
    env.save(tmp_path / "sim.json")
    assert SimEnvironment.load(tmp_path / "sim.json").variant_counts("checkout", FLAG, 30) \
        == runs[0]


def test_a_save_from_before_variant_counts_still_loads(base: SimState, tmp_path: Path) -> None:
    old = json.loads(base.model_dump_json())
    old["schema_version"] = 1
    del old["variant_counts"]
    for flag in old["flags"]:
        del flag["kind"], flag["variant_conversion"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    env = SimEnvironment.load(tmp_path / "old.json")
    env.wait(5)
    assert env.variant_counts("recommendations", "rec-model-v7", 5)["on"]["requests"] > 0


def test_variant_counts_over_http_match_the_simulator(env: SimEnvironment) -> None:
    roll_out(env, 25)
    env.wait(20)
    server = SimServer(env).start()
    client = SimClient(server.url)
    try:
        assert client.variant_counts("checkout", FLAG, 20) == env.variant_counts(
            "checkout", FLAG, 20)
        with pytest.raises(KeyError, match="no per-variant traffic"):
            client.variant_counts("web", "dark-mode", 20)
        assert client.flagd_document()["flags"][FLAG]["state"] == "ENABLED"
    finally:
        client.close()
        server.stop()


@pytest.fixture
def flag_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {
        FLAG: flagd.rollout_flag(25, service="checkout", owner="payments"),
        "search-v2": flagd.rollout_flag(10, service="search", kind="experiment"),
        "elsewhere": flagd.rollout_flag(10, service="not-simulated")}}))
    yield path


def test_the_simulator_follows_a_flag_file_as_flagd_would(env: SimEnvironment,
                                                          flag_file: Path) -> None:
    env.flag_file = flag_file
    env.wait(1)
    record = env.state.flag("checkout", FLAG)
    assert record is not None and (record.enabled, record.rollout_percent) == (True, 25)
    added = env.state.flag("search", "search-v2")
    assert added is not None and (added.rollout_percent, added.kind) == (10, "experiment")
    assert env.state.flag("not-simulated", "elsewhere") is None
    assert env.flag_changes("checkout", 5)[-1].author == flags.FILE_AUTHOR
    document = json.loads(flag_file.read_text())
    document["flags"][FLAG] = flagd.disabled(document["flags"][FLAG])
    flag_file.write_text(json.dumps(document))
    env.wait(1)
    assert record.enabled is False
    # An invalid file changes nothing (flagd keeps its last good flags) and says why.
    flag_file.write_text('{"flags": {"x": {"state": "ON", "variants": {"a": 1}}}}')
    env.wait(1)
    assert record.enabled is False and env.flag_file_problems
    assert "flags/x/state" in env.flag_file_problems[0]


def test_counting_variants_never_moves_the_physics(base: SimState) -> None:
    """rec-model-v7 (no failing cohort) split 50/50 is counted every minute; at 100% it is
    not. The fleet's telemetry must be identical either way."""
    counted, uncounted = (SimEnvironment(base.model_copy(deep=True)) for _ in range(2))
    record = uncounted.state.flag("recommendations", "rec-model-v7")
    assert record is not None
    record.rollout_percent = 100
    counted.wait(30)
    uncounted.wait(30)
    assert counted.variant_counts("recommendations", "rec-model-v7", 30)["on"]["requests"]
    with pytest.raises(KeyError, match="no per-variant traffic"):
        uncounted.variant_counts("recommendations", "rec-model-v7", 30)
    assert counted.state.series == uncounted.state.series
    assert counted.state.logs == uncounted.state.logs
