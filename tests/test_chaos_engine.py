"""GameDays run by Chaos Toolkit's engine against a real simulator served on loopback."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from opsloop.chaos.engine import run_experiment
from opsloop.chaos.experiments import find, load_experiment
from opsloop.chaos.gameday import history, run_gameday
from opsloop.chaos.report import GameDayReport
from opsloop.settings import REPO_ROOT
from opsloop.simulator.env import SimEnvironment
from opsloop.simulator.server import FaultRequest, SimServer
from opsloop.simulator.state import SimState

EXPERIMENTS = REPO_ROOT / "experiments"


@pytest.fixture(scope="module")
def quiet() -> SimState:
    # A production whose scenario fault is held back: nothing happens but the experiment.
    return SimServer(SimEnvironment.create("bad_deploy", seed=7), hold_scenario=True).env.state


@pytest.fixture
def sim(quiet: SimState) -> Iterator[SimServer]:
    server = SimServer(SimEnvironment(copy.deepcopy(quiet))).start()
    try:
        yield server
    finally:
        server.stop()


def gameday(name: str, sim: SimServer, work: Path, run_id: str = "gd-1") -> GameDayReport:
    return run_gameday(find(EXPERIMENTS, name), sim.url, state_dir=work / "state",
                       reports_dir=work / "reports", run_id=run_id)


def test_losing_one_search_replica_holds_and_search_5_comes_back(sim: SimServer,
                                                                 tmp_path: Path) -> None:
    report = gameday("search-replica-loss", sim, tmp_path)
    assert report.outcome == "held"
    assert report.score == 1.0
    assert report.rollbacks_ok and report.recovered
    assert report.safeguard is None and report.time_to_detect_minutes is None
    # The fault really happened and was really undone, in the simulator behind HTTP.
    record = next(r for r in sim.env.state.experiments if r.experiment.id == "gd-1")
    assert record.experiment.status.value == "aborted"
    assert sim.env.state.services["search"].down_instances == {}
    assert sim.env.state.tick == 20  # three 5-minute steps, then 5 to settle
    journal = json.loads((tmp_path / "state/chaos/gd-1/journal.json").read_text())
    assert journal["status"] == "completed" and not journal["deviated"]
    assert (tmp_path / "state/chaos/gd-1/chaostoolkit.log").read_text()


def test_a_fast_burn_trips_the_safeguard_within_one_step_and_is_rolled_back(
        sim: SimServer, tmp_path: Path) -> None:
    report = gameday("checkout-failing-replica", sim, tmp_path)
    assert report.outcome == "aborted"
    assert report.safeguard == "checkout-fast-burn tripped after let-5-minutes-pass"
    assert report.time_to_detect_minutes == 5  # one step: the burn began in the first one
    journal = json.loads((tmp_path / "state/chaos/gd-1/journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert [r["activity"]["name"] for r in journal["run"]] == [
        "degrade-checkout-3", "let-5-minutes-pass"]
    assert [r["name"] for r in report.rollbacks] == ["heal-checkout-3", "let-checkout-settle"]
    assert report.rollbacks_ok and report.recovered and report.time_to_recover_minutes == 6
    assert sim.env.state.services["checkout"].bad_instance_error == 0.0
    # Errors held a weight of 3 and broke; latency (weight 1) held: 1 / 4.
    assert report.score == 0.25
    assert any("did not hold" in s for s in report.surprises)


def test_a_run_does_not_start_when_the_steady_state_is_not_met(sim: SimServer,
                                                               tmp_path: Path) -> None:
    sim.inject(FaultRequest(kind="bad_instance", service="checkout",
                            params={"instance": "checkout-1", "error_ratio": 0.9}))
    sim.advance(6)
    report = gameday("checkout-failing-replica", sim, tmp_path)
    assert report.outcome == "refused_before_start"
    journal = json.loads((tmp_path / "state/chaos/gd-1/journal.json").read_text())
    assert journal["run"] == []  # the method never ran
    assert not any(p.before for p in report.probes[:1])


def test_the_engine_runs_off_the_main_thread(sim: SimServer, tmp_path: Path) -> None:
    reports: list[GameDayReport] = []
    worker = threading.Thread(target=lambda: reports.append(
        gameday("checkout-failing-replica", sim, tmp_path)))
    worker.start()
    worker.join(timeout=60)
    assert reports and reports[0].outcome == "aborted" and reports[0].rollbacks_ok


def test_reports_are_kept_and_read_back_in_order(sim: SimServer, tmp_path: Path) -> None:
    gameday("search-replica-loss", sim, tmp_path, run_id="gd-a")
    gameday("checkout-failing-replica", sim, tmp_path, run_id="gd-b")
    (tmp_path / "reports" / "gameday-broken.json").write_text("{")
    reports, problems = history(tmp_path / "reports")
    assert [r.run_id for r in reports] == ["gd-a", "gd-b"]
    assert len(problems) == 1 and "gameday-broken.json" in problems[0]
    markdown = (tmp_path / "reports" / "gameday-gd-b.md").read_text()
    assert "Outcome: **aborted**" in markdown and "heal-checkout-3: succeeded" in markdown


def test_in_real_time_the_safeguard_stops_a_long_pause_within_its_interval(
        quiet: SimState, tmp_path: Path) -> None:
    # A realtime simulator (a minute every 20 ms) and a method that injects the fault, then
    # waits 20 s of wall time: only the background check can stop it in time.
    document = yaml.safe_load((EXPERIMENTS / "checkout-failing-replica.yaml").read_text())
    inject, heal = document["method"][0], document["rollbacks"][0]
    document["method"] = [{**inject, "pauses": {"after": 20}}]
    document["rollbacks"] = [heal]
    document["controls"][0]["provider"]["arguments"]["interval"] = 0.2
    path = tmp_path / "realtime.json"
    path.write_text(json.dumps(document))
    server = SimServer(SimEnvironment(copy.deepcopy(quiet)), minute_seconds=0.02).start()
    try:
        started = time.monotonic()
        journal = run_experiment(load_experiment(path), server.url, tmp_path / "run", "rt-1")
        took = time.monotonic() - started
        # The heal is a fault scheduled for the next simulated minute: let the clock reach it.
        deadline = time.monotonic() + 3
        while (server.env.state.services["checkout"].bad_instance_error
               and time.monotonic() < deadline):
            time.sleep(0.02)
    finally:
        server.stop()
    assert journal["status"] == "interrupted"
    assert journal["safeguard"]["tripped"]["after"] == "interval"
    assert took < 5  # not the 20 s pause
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == ["heal-checkout-3"]
    assert server.env.state.services["checkout"].bad_instance_error == 0.0
