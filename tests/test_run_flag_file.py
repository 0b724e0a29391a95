"""Pointing opsloop at a team's flagd file: the environment reference names it, the flags
the agents read come from it, the flag actions write it (and the simulator follows it),
metrics still come from the environment; a missing or broken file stops `opsloop run` at
start with what is wrong and where, without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.environments import (
    RemoteEnvironment,
    UnknownEnvironment,
    open_environment,
    remote_ref,
    with_flag_file,
)
from opsloop.models import ActionStatus, RemediationAction
from opsloop.rollouts import flagd
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment
from opsloop.simulator.server import SimServer

FLAG = "new-checkout-flow"


def write_flags(path: Path) -> Path:
    path.write_text(json.dumps({"flags": {
        FLAG: flagd.rollout_flag(25, service="checkout", owner="payments"),
        "search-v2": flagd.rollout_flag(5, service="search")}}, indent=2))
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SimServer, Path]]:
    flag_file = write_flags(tmp_path / "flags.json")
    env = SimEnvironment.create("bad_deploy", seed=7)
    env.flag_file = flag_file
    env.follow_flag_file()
    server = SimServer(env).start()
    yield server, flag_file
    server.stop()


def test_flags_come_from_the_file_and_flag_actions_write_it(
        served: tuple[SimServer, Path], tmp_path: Path) -> None:
    server, flag_file = served
    ref = remote_ref(server.url, flag_file=flag_file)
    assert ref == f"remote:sim={server.url},flags={flag_file}"
    production = open_environment(ref, Settings(work_dir=tmp_path / "work"))
    try:
        assert isinstance(production, RemoteEnvironment)
        flags = {f.key: f for f in production.flags()}
        assert set(flags) == {FLAG, "search-v2"}  # the file's, not the simulator's four
        assert flags[FLAG].rollout_percent == 25 and flags[FLAG].owner == "payments"
        # Metrics (and per-variant traffic) still come from the environment.
        assert production.metric("checkout", "error_ratio", 5).points
        production.wait(3)
        assert production.variant_counts("checkout", FLAG, 3)["on"]["requests"] > 0
        kill = RemediationAction(id="kill-1", type="disable_flag", service="checkout",
                                 params={"flag": FLAG})
        result = production.execute(kill, "key-kill-1")
        assert result.status is ActionStatus.SUCCEEDED, result.detail
        assert json.loads(flag_file.read_text())["flags"][FLAG]["state"] == "DISABLED"
        (change,) = production.flag_changes("checkout", 60)
        assert (change.to_percent, change.enabled) == (0, False)
        assert change.at == server.env.now()  # stamped on production's clock
        # The simulator follows the file: the next minute, checkout serves no one `on`.
        production.wait(1)
        record = server.env.state.flag("checkout", FLAG)
        assert record is not None and record.enabled is False
        # A deploy is not a flag action: it goes to the environment's own actuator.
        other = production.execute(RemediationAction(id="r", type="restart", service="search"),
                                   "key-restart")
        assert other.status is ActionStatus.SUCCEEDED and "search" in other.detail
    finally:
        production.close()


def test_a_flag_with_no_update_stamp_dates_from_the_files_change_on_productions_clock(
        served: tuple[SimServer, Path], tmp_path: Path) -> None:
    """A team's file rarely carries metadata.updatedAt: its flags changed when the file did,
    read on production's clock (a simulated one runs days apart from the wall's)."""
    server, flag_file = served
    assert all("updatedAt" not in f["metadata"]
               for f in json.loads(flag_file.read_text())["flags"].values())
    production = open_environment(remote_ref(server.url, flag_file=flag_file),
                                  Settings(work_dir=tmp_path / "work"))
    try:
        now = production.now()
        for state in production.flags():
            assert abs((now - state.updated_at).total_seconds()) < 120, (state, now)
    finally:
        production.close()


def test_the_reference_carries_the_flag_file_for_a_later_process(tmp_path: Path) -> None:
    flag_file = write_flags(tmp_path / "flags.json")
    ref = with_flag_file("remote:sim=http://127.0.0.1:9100,prometheus=http://p:9090",
                         flag_file)
    assert ref == f"remote:sim=http://127.0.0.1:9100,prometheus=http://p:9090,flags={flag_file}"
    with pytest.raises(UnknownEnvironment, match="needs a remote environment"):
        with_flag_file("sim:abc", flag_file)
    settings = Settings(work_dir=tmp_path / "work")
    with pytest.raises(UnknownEnvironment, match="absolute path"):
        open_environment("remote:sim=http://127.0.0.1:9,flags=flags.json", settings)
    with pytest.raises(UnknownEnvironment, match=r"no flag file at /nowhere/flags\.json"):
        open_environment("remote:sim=http://127.0.0.1:9,flags=/nowhere/flags.json", settings)


BROKEN = {
    "missing": (None, "cannot read: No such file or directory"),
    "not json": ('{\n  "flags": {\n    "x": ,\n  }\n}\n', "line 3, column 10: not JSON"),
    "schema": (json.dumps({"flags": {FLAG: {"state": "ON", "variants": {"on": True}}}}),
               f"flags/{FLAG}/state: 'ON' is not one of"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_flag_file_stops_run_at_start_saying_where(tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    path = tmp_path / "flags.json"
    if text is not None:
        path.write_text(text)
    env = {**os.environ, "OPSLOOP_WORK_DIR": str(tmp_path / "work")}
    env.pop("OPSLOOP_SERVE_ENVIRONMENT", None)
    done = subprocess.run([sys.executable, "-m", "opsloop", "run", "--flag-file", str(path),
                           "--port", "0", "--sim-port", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert expected in done.stderr and str(path) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
