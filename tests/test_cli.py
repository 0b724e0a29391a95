"""The command line: listings in JSON, clear errors, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opsloop.cli import main
from opsloop.settings import REPO_ROOT


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_scenarios_lists_at_least_ten(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "scenarios", "--json", "--work-dir", str(tmp_path))
    assert code == 0
    assert len(json.loads(out)) >= 10


def test_empty_listings_are_valid_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for command in ("incidents", "approvals"):
        code, out, _ = run(capsys, command, "--json", "--work-dir", str(tmp_path))
        assert (code, json.loads(out)) == (0, [])


def test_work_dir_comes_from_the_environment(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLOOP_WORK_DIR", str(tmp_path / "elsewhere"))
    code, _, _ = run(capsys, "demo", "--scenario", "disk_filling", "--json")
    assert code == 0
    assert (tmp_path / "elsewhere" / "state" / "opsloop.db").exists()


def test_unknown_incident_is_a_message_not_a_traceback(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    code, _, err = run(capsys, "show", "INC-9999", "--work-dir", str(tmp_path))
    assert code == 1
    assert "no incident 'INC-9999'" in err and "Traceback" not in err


def test_unknown_scenario_names_the_valid_ones(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    code, _, err = run(capsys, "demo", "--scenario", "nope", "--work-dir", str(tmp_path))
    assert code == 1
    assert "unknown scenario nope" in err and "bad_deploy" in err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--seed", "many"])
    assert exc.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_policy_check_passes_on_the_shipped_policies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "check", str(REPO_ROOT / "policies"))
    assert code == 0 and "policies OK" in out


def test_policy_check_names_file_field_and_value(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", broken)
    path = broken / "remediation.yaml"
    text = path.read_text()
    assert "max_auto_per_service_per_hour: 3" in text
    path.write_text(text.replace("max_auto_per_service_per_hour: 3",
                                 "max_auto_per_service_per_hour: lots"))
    code, out, _ = run(capsys, "policy", "check", str(broken), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    [problem] = [p for p in report["problems"] if p["level"] == "error"]
    assert problem["file"].endswith("remediation.yaml")
    assert "max_auto_per_service_per_hour" in problem["field"]
    assert problem["value"] == "lots"


def test_a_broken_policy_stops_the_demo_before_anything_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", broken)
    (broken / "severity.yaml").write_text("version: 1\nrules: [\n")
    monkeypatch.setenv("OPSLOOP_POLICIES_DIR", str(broken))
    code, _, err = run(capsys, "demo", "--scenario", "disk_filling", "--work-dir",
                       str(tmp_path / "work"))
    assert code == 1
    assert "severity.yaml" in err and "Traceback" not in err
    assert not (tmp_path / "work" / "state" / "opsloop.db").exists()


def test_listings_load_neither_the_model_stack_nor_chromadb(tmp_path: Path) -> None:
    # Seconds of imports that `approvals`, `show` and friends never use: a fresh interpreter
    # shows what a command really loads (this one has loaded everything already).
    heavy = ("langchain_openai", "openai", "chromadb", "matplotlib", "langgraph")
    script = (
        "import sys\n"
        "from opsloop.cli import main\n"
        "from opsloop.llm.config import model_client\n"
        "from opsloop.settings import Settings\n"
        "assert model_client(Settings()) is None\n"
        f"for command in ('approvals', 'incidents'):\n"
        f"    assert main([command, '--json', '--work-dir', {str(tmp_path)!r}]) == 0\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"



def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("opsloop 0.")


def test_show_names_approval_ids_and_approve_with_an_incident_id_names_them(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # bad_deploy is a SEV1: its rollback waits for a human.
    code, _, _ = run(capsys, "demo", "--scenario", "bad_deploy", "--json",
                     "--work-dir", str(tmp_path))
    assert code == 0
    code, out, _ = run(capsys, "approvals", "--json", "--work-dir", str(tmp_path))
    (request,) = json.loads(out)
    incident = request["incident_id"]
    code, out, _ = run(capsys, "show", incident, "--work-dir", str(tmp_path))
    assert code == 0
    assert request["id"] in out
    assert f"opsloop approve {request['id']}" in " ".join(out.split())
    code, _, err = run(capsys, "approve", incident, "--work-dir", str(tmp_path))
    assert code == 1
    assert f"{incident} is an incident waiting on approval(s) {request['id']}" in err
