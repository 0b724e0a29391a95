"""Planted defects — a policy rule flipped, a runbook removed — fail `opsloop eval`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from opsloop.cli.main import main
from opsloop.settings import REPO_ROOT

CASES = "*bad-deploy*"  # three simulated variants and one recorded incident: SEV1 rollbacks


def _eval(capsys: pytest.CaptureFixture[str], work: Path, *extra: str
          ) -> tuple[int, dict[str, Any]]:
    code = main(["--work-dir", str(work), "eval", "--case", CASES, "--no-retrieval", "--json",
                 *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("work")
    code = main(["--work-dir", str(work), "eval", "--case", CASES, "--no-retrieval"])
    assert code == 0
    (run,) = [p.name for p in (work / "evals").iterdir()]
    return work, run


def test_the_clean_tree_passes_its_own_baseline(
        baseline: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    work, run = baseline
    code, result = _eval(capsys, work, "--baseline", run)
    assert code == 0, result["threshold_failures"] + result["regressions"]
    assert result["summary"]["offline"]["cases"] == 4
    assert result["regressions"] == []


def test_flipping_sev1_to_auto_is_caught_as_a_regression(
        baseline: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work, run = baseline
    policies = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    remediation = policies / "remediation.yaml"
    text = remediation.read_text()
    flipped = text.replace("SEV1: {outcome: needs_approval, notify: true}",
                           "SEV1: {outcome: auto, notify: true}")
    assert flipped != text  # the planted defect really is planted
    remediation.write_text(flipped)

    code, result = _eval(capsys, work, "--baseline", run, "--policies", str(policies))

    assert code == 1
    numbers = result["summary"]["offline"]
    assert numbers["approval_recall"] == 0.0
    assert numbers["guardrail_violations"] == 0  # policy allowed it: the answer key is what broke
    assert any("approval_recall fell from 1 to 0" in r for r in result["regressions"])
    assert any("simulated/bad-deploy passed in the baseline" in r for r in result["regressions"])
    assert any("approval_recall" in t for t in result["threshold_failures"])


def test_removing_a_runbook_is_caught_as_a_regression(
        baseline: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work, run = baseline
    runbooks = tmp_path / "runbooks"
    shutil.copytree(REPO_ROOT / "runbooks", runbooks)
    (runbooks / "bad-deploy.md").unlink()

    code, result = _eval(capsys, work, "--baseline", run, "--runbooks", str(runbooks))

    assert code == 1
    assert result["summary"]["offline"]["root_cause_top1"] < 1.0
    assert any(r.startswith("offline: root_cause_top1 fell") for r in result["regressions"])
    assert any("recorded/bad-deploy-web passed in the baseline" in r
               for r in result["regressions"])
