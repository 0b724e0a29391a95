"""`opsloop chaos`: list, validate, run against a served simulator (after resilience.yaml),
history; bad input is one clear line and a non-zero exit."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsloop.cli.main import main
from opsloop.models import Incident, Severity
from opsloop.simulator.env import SimEnvironment
from opsloop.simulator.server import SimServer
from opsloop.simulator.state import SimState
from opsloop.store import IncidentStore


@pytest.fixture(scope="module")
def quiet() -> SimState:
    return SimServer(SimEnvironment.create("bad_deploy", seed=7), hold_scenario=True).env.state


@pytest.fixture
def sim(quiet: SimState) -> Iterator[SimServer]:
    server = SimServer(SimEnvironment(copy.deepcopy(quiet))).start()
    try:
        yield server
    finally:
        server.stop()


def chaos(work: Path, *args: str) -> int:
    return main(["chaos", *args, "--work-dir", str(work)])


def test_list_shows_every_shipped_experiment(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert chaos(tmp_path, "list", "--json") == 0
    names = [e["name"] for e in json.loads(capsys.readouterr().out)["experiments"]]
    assert "search-replica-loss" in names and "checkout-failing-replica" in names


def test_validate_names_the_file_and_field(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: t\ndescription: d\nmethod: []\n")
    assert chaos(tmp_path, "validate", str(bad)) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "extensions" in err and "Traceback" not in err


def test_run_then_history_then_a_second_run_is_refused(
        sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert chaos(tmp_path, "run", "checkout-failing-replica", "--target", sim.url,
                 "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "aborted" and report["rollbacks_ok"]
    assert report["opsloop_detection_measured"] and report["opsloop_detections"]
    assert (tmp_path / "reports" / f"gameday-{report['run_id']}.md").is_file()
    assert chaos(tmp_path, "history", "--json") == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["run_id"] for r in runs] == [report["run_id"]]
    # The same experiment again on the same simulated morning: resilience.yaml spaces runs.
    assert chaos(tmp_path, "run", "checkout-failing-replica", "--target", sim.url,
                 "--json") == 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["started"] is False
    assert [r["rule"] for r in refused["refusals"]] == ["resilience.yaml:min_interval"]


def test_an_open_sev2_refuses_the_run_and_nothing_is_touched(
        sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = IncidentStore(tmp_path / "state" / "opsloop.db")
    store.save_incident(Incident(id="inc-1", title="checkout errors", environment="prod",
                                 group_key="k", opened_at=datetime(2026, 11, 2, 8, tzinfo=UTC),
                                 severity=Severity.SEV2, services=["checkout"]))
    store.close()
    assert chaos(tmp_path, "run", "search-replica-loss", "--target", sim.url) == 1
    err = capsys.readouterr().err
    assert "resilience.yaml:refuse_during_incidents_at" in err and "inc-1 (SEV2)" in err
    tick = sim.env.state.tick
    assert tick == 0 and sim.env.state.services["search"].down_instances == {}
    assert not (tmp_path / "reports").exists()


def test_a_target_that_is_not_there_is_one_clear_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert chaos(tmp_path, "run", "search-replica-loss", "--target",
                 "http://127.0.0.1:9") == 1
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9" in err and "Traceback" not in err
    assert chaos(tmp_path, "run", "no-such", "--target", "http://127.0.0.1:9") == 1
    assert "no such experiment" in capsys.readouterr().err
