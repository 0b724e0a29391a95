"""`opsloop rollouts list|show` on a flagd file and on a simulation, as text and --json."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from opsloop.cli import rollouts
from opsloop.cli.render import Ui, UserError
from opsloop.rollouts import flagd
from opsloop.settings import Settings


def run(argv: list[str], settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    rollouts.register(sub, argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(argv)
    assert args.handler(args, settings, Ui()) == 0
    return capsys.readouterr().out


@pytest.fixture
def managed(tmp_path: Path) -> Settings:
    """policies/ with rec-model-v7 (the simulator's flag at 50%) managed."""
    policies = tmp_path / "policies"
    shutil.copytree(Settings().policies_dir, policies)
    text = (policies / "rollouts.yaml").read_text()
    (policies / "rollouts.yaml").write_text(text.replace(
        "flags: {}", "flags:\n  rec-model-v7: {service: recommendations, interval: 5m}"))
    return Settings(work_dir=tmp_path / "work", policies_dir=policies)


def test_list_reads_a_flagd_file(tmp_path: Path, managed: Settings,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {
        "rec-model-v7": flagd.rollout_flag(25, service="recommendations"),
        "dark-mode": flagd.disabled(flagd.rollout_flag(100, service="web"))}}))
    rows = json.loads(run(["rollouts", "list", "--flag-file", str(path), "--json"], managed,
                          capsys))
    assert [(r["key"], r["enabled"], r["percent"], r["managed"], r["next_step"])
            for r in rows] == [("rec-model-v7", True, 25, True, 50),
                               ("dark-mode", False, 0, False, None)]
    text = run(["rollouts", "--flag-file", str(path)], managed, capsys)
    assert "rec-model-v7" in text and "DISABLED" in text


def test_show_gives_the_step_the_analysis_and_the_decision(
        managed: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    row = json.loads(run(["rollouts", "show", "rec-model-v7", "--scenario", "bad_deploy",
                          "--minutes", "10", "--json"], managed, capsys))
    assert (row["key"], row["percent"], row["steps"]) == ("rec-model-v7", 50, [1, 5, 25, 50,
                                                                              100])
    # A healthy simulation: five clean measurements, budget normal, the step long done.
    assert row["analysis"]["phase"] == "Successful" and row["budget"]["state"] == "normal"
    assert len(row["analysis"]["metrics"][0]["measurements"]) == 5
    assert row["decision"] == {"action": "advance", "to_percent": 100,
                               "rule": "rollouts.yaml:flags.rec-model-v7.advances."
                                       "needs_approval", "reason": row["decision"]["reason"]}
    text = run(["rollouts", "show", "rec-model-v7", "--scenario", "bad_deploy"], managed,
               capsys)
    assert "analysis:" in text and "decision:" in text


def test_an_unmanaged_flag_or_a_broken_file_is_a_user_error(
        tmp_path: Path, managed: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="does not manage 'dark-mode'"):
        run(["rollouts", "show", "dark-mode", "--scenario", "bad_deploy"], managed, capsys)
    bad = tmp_path / "bad.json"
    bad.write_text('{"flags": {"x": {"state": "ON", "variants": {"on": true}}}}')
    with pytest.raises(UserError, match="flags/x/state"):
        run(["rollouts", "list", "--flag-file", str(bad)], managed, capsys)
