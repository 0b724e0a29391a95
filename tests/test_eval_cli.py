"""`opsloop eval` from the command line: table, JSON, report with charts, clear errors."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from opsloop.cli.main import main
from opsloop.evals.suite import EvalError, model_settings
from opsloop.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n"


def test_eval_prints_a_table_and_writes_report_and_charts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--work-dir", str(tmp_path), "eval", "--case", "simulated/memory-leak",
                 "--no-retrieval"])
    out = capsys.readouterr()
    assert code == 0
    assert "simulated/memory-leak" in out.out and "root cause top-1" in out.out
    assert "[1/1] offline simulated/memory-leak: pass" in out.err
    (run,) = list((tmp_path / "evals").iterdir())
    report = (run / "report.md").read_text()
    assert "## Summary" in report and "![accuracy](charts/accuracy.png)" in report
    for chart in ("accuracy", "times", "cases"):
        assert (run / "charts" / f"{chart}.png").read_bytes().startswith(PNG)
    result = json.loads((run / "result.json").read_text())
    assert result["cases"][0]["incidents"][0]["root_cause"] == "memory_leak@inventory"


def test_bad_input_is_one_clear_line_and_a_non_zero_exit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--work-dir", str(tmp_path), "eval", "--suite", "nope"]) == 1
    assert "unknown suite 'nope'; suites:" in capsys.readouterr().err
    assert main(["--work-dir", str(tmp_path), "eval", "--case", "no/such/*"]) == 1
    assert "no case matches" in capsys.readouterr().err
    assert main(["--work-dir", str(tmp_path), "eval", "--baseline", "missing-run"]) == 1
    assert "baseline 'missing-run' not found" in capsys.readouterr().err
    assert not (tmp_path / "evals").exists()  # nothing half-written


def test_broken_case_files_are_reported_with_their_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "evals" / "cases" / "mine"
    case.mkdir(parents=True)
    (case / "case.yaml").write_text("kind: recorded\ntitle: x\nexpected: []\n")
    code = main(["--work-dir", str(tmp_path / "w"), "eval", "--evals-dir",
                 str(tmp_path / "evals")])
    assert code == 1
    assert ("mine/case.yaml: expected: a recorded case needs at least one incident"
            in capsys.readouterr().err)


def test_each_model_label_maps_to_a_settings_override() -> None:
    settings = Settings(work_dir=Path("w"), llm_model="configured", llm_base_url="http://x/v1")
    assert model_settings(settings, "offline", None).llm_model is None
    chosen = model_settings(settings, "qwen2.5", "http://127.0.0.1:9/v1")
    assert (chosen.llm_model, chosen.llm_base_url) == ("qwen2.5", "http://127.0.0.1:9/v1")
    assert model_settings(settings, "qwen2.5", None).llm_base_url == "http://x/v1"


def test_a_build_without_the_model_path_refuses_model_runs() -> None:
    class Bare(Settings):  # the Settings of a build without the model fields
        pass

    Bare.model_fields.pop("llm_model", None)
    with pytest.raises(EvalError, match="model path is not configured"):
        model_settings(Bare(), "gpt-x", None)


def test_models_run_side_by_side_through_the_scripted_server(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--work-dir", str(tmp_path), "eval", "--case", "simulated/flag-rollout-errors",
                 "--model", "offline", "scripted", "--no-retrieval", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result["threshold_failures"]
    offline, scripted = result["summary"]["offline"], result["summary"]["scripted"]
    assert offline["model_calls"] == 0 and offline["tokens"] == 0
    assert scripted["model_calls"] > 0 and scripted["tokens"] > 0
    assert offline["root_cause_top1"] == scripted["root_cause_top1"] == 1.0


def test_eval_retrieval_prints_what_the_retrieval_eval_measured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[list[str]] = []

    def evaluate_backends(settings: Settings, names: list[str],
                          progress: object = None) -> list[dict[str, object]]:
        seen.append(names)
        return [{"backend": "hashing", "queries": 3, "recall_at_1": 0.5}]

    module = types.ModuleType("opsloop.evals.retrieval")
    module.evaluate_backends = evaluate_backends  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opsloop.evals.retrieval", module)
    code = main(["--work-dir", str(tmp_path), "eval", "retrieval", "--backend", "hashing",
                 "--json"])
    assert (code, seen) == (0, [["hashing"]])
    assert json.loads(capsys.readouterr().out) == [
        {"backend": "hashing", "queries": 3, "recall_at_1": 0.5}]


def test_a_broken_recording_stops_the_run_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "evals" / "cases" / "recorded" / "mine"
    (case / "alerts").mkdir(parents=True)
    (case / "case.yaml").write_text(
        "kind: recorded\ntitle: x\nrecording: {now: '2025-01-01T10:00:00Z'}\nexpected:\n"
        "  service: web\n  severity: SEV1\n  specialists: incident\n"
        "  root_cause: {category: bad_deploy}\n  approval: true\n")
    (case / "services.yaml").write_text("- {name: web, tier: 1, replicas: 1, version: '1'}\n")
    (case / "alerts" / "01.json").write_text(json.dumps({"version": "3", "alerts": []}))
    work = tmp_path / "w"
    code = main(["--work-dir", str(work), "eval", "--evals-dir", str(tmp_path / "evals")])
    assert code == 1
    assert "mine/alerts/01.json: not an Alertmanager v4 payload" in capsys.readouterr().err
    assert not (work / "evals").exists()
